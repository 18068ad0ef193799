"""The lab as a Kubernetes cluster: Nodes by kwok with the hosts' addresses, the pod network
over VXLAN, CoreDNS answering, exec into the dnsutils pod, and a dnsutils pod the suite makes
and removes itself."""

from __future__ import annotations

import ipaddress

from lab import cluster

from .suite import run_suite


def test_nodes_are_the_hosts_with_pod_cidrs_inside_the_pod_subnet(lab):
    kube = lab.kube()
    nodes = {n["metadata"]["name"]: n for n in kube.items("/api/v1/nodes")}
    assert set(nodes) == {h.name for h in lab.hosts if h.is_node}
    pod_net = ipaddress.ip_network("10.244.0.0/16")
    for h in lab.hosts:
        if not h.is_node:
            continue
        node = nodes[h.name]
        ips = [a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP"]
        assert ips == [h.ip] and cluster.ready(node)
        assert ipaddress.ip_network(node["spec"]["podCIDR"]).subnet_of(pod_net)
        assert node["status"]["nodeInfo"]["kubeletVersion"] == "v1.37.2"


def test_cluster_dns_answers_from_every_node_across_the_vxlan(lab):
    for h in lab.hosts:
        if h.is_node:
            out = lab.runtime(h).sh("dig +short +time=2 +tries=1 @10.96.0.10 "
                                    "kubernetes.default.svc.cluster.local")
            assert out.strip() == "10.96.0.1", f"{h.name}: {out}"
    w1 = lab.runtime(lab.host("w1"))
    assert "vxlan id 1" in w1.sh("ip -d link show flannel.1") and "dstport 8472" in \
        w1.sh("ip -d link show flannel.1")


def test_the_suite_creates_dnsutils_when_absent_and_removes_it(lab, tmp_path):
    kube = lab.kube()
    kube.call("DELETE", "/api/v1/namespaces/default/pods/dnsutils?gracePeriodSeconds=0")
    cluster.wait_for("dnsutils to go", lambda: kube.get(cluster.DNSUTILS) is None, 30)
    try:
        run = run_suite(str(lab.inventory), tmp_path / "j.xml", "tests/test_dns.py", "-k", "cluster_dns and not node_",
                        "--dnsutils-image=registry.example/dnsutils:test")
        assert run.outcomes == {"cluster_dns": "passed"}, run.output[-3000:]
        evidence = run.properties["cluster_dns"]["evidence"]
        assert "created for this check" in evidence and "Address: 10.96.0.1" in evidence
        assert kube.get(cluster.DNSUTILS) is None  # removed: the suite made it
    finally:
        lab.heal()
    assert kube.get(cluster.DNSUTILS) is not None


def test_the_existing_dnsutils_pod_is_used_and_kept(lab, tmp_path):
    uid = lab.kube().get(cluster.DNSUTILS)["metadata"]["uid"]
    run = run_suite(str(lab.inventory), tmp_path / "j.xml", "tests/test_dns.py", "-k", "cluster_dns and not node_")
    assert run.outcomes == {"cluster_dns": "passed"}, run.output[-3000:]
    assert "created for this check" not in run.properties["cluster_dns"]["evidence"]
    assert lab.kube().get(cluster.DNSUTILS)["metadata"]["uid"] == uid
