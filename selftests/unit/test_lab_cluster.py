"""The lab's cluster objects, pod network and kwok settings, as data (no lab needed)."""

from __future__ import annotations

import json

import yaml

from lab import cluster, podnet
from lab.faults import FAULTS
from lab.plan import plan


def test_kubeadm_config_and_flannel_agree_and_dns_service_is_on_its_address():
    objs = {(o["kind"], o["metadata"]["name"]): o for o in cluster.objects()}
    conf = yaml.safe_load(objs["ConfigMap", "kubeadm-config"]["data"]["ClusterConfiguration"])
    assert conf["networking"]["podSubnet"] == "10.244.0.0/16"
    assert conf["controlPlaneEndpoint"] == "198.18.0.100:6443"
    net = json.loads(objs["ConfigMap", "kube-flannel-cfg"]["data"]["net-conf.json"])
    assert net["Network"] == conf["networking"]["podSubnet"]
    assert net["Backend"]["Type"] == "vxlan"
    assert objs["Service", "kube-dns"]["spec"]["clusterIP"] == "10.96.0.10"
    assert objs["Deployment", "coredns"]["spec"]["replicas"] == 2
    assert {"kube-flannel-ds", "kube-proxy", "fluentd"} <= {n for k, n in objs
                                                           if k == "DaemonSet"}


def test_nodes_carry_kubeadm_labels_and_control_plane_taint():
    cp, w = [cluster.node_object(h) for h in plan(1) if h.name in ("cp1", "w1")]
    assert "node-role.kubernetes.io/control-plane" in cp["metadata"]["labels"]
    assert cp["spec"]["taints"][0]["effect"] == "NoSchedule"
    assert "taints" not in w["spec"]


def test_kwok_is_the_nodes_kubelet_on_10250_with_exec_rules():
    w1 = next(h for h in plan(1) if h.name == "w1")
    argv = cluster.kwok_argv("/x/kubelet", w1)
    assert "--manage-single-node=w1" in argv and f"--node-ip={w1.ip}" in argv
    assert "--server-address=0.0.0.0:10250" in argv
    docs = list(yaml.safe_load_all(cluster.kwok_config()))
    execs = [d for d in docs if d["kind"] == "Exec"]
    assert execs[0]["metadata"] == {"name": "dnsutils", "namespace": "default"}


def test_a_pod_marked_not_ready_is_made_ready_again_keeping_its_ip():
    """The node lifecycle controller sets Ready=False on the pods of a Node that missed its
    heartbeats (its kubelet lost its connection with a powered-off apiserver); a kubelet
    reports them Ready again with the same IP. Patching podIPs again appends a second IP of
    the same family, which the API server rejects ("may specify no more than one IP for
    each IP family"), and the pod would stay NotReady for good."""
    docs = {d["metadata"]["name"]: d for d in yaml.safe_load_all(cluster.kwok_config())
            if d["kind"] == "Stage"}
    first = docs["lab-pod-running"]["spec"]
    again = docs["lab-pod-ready-again"]["spec"]
    assert {"key": ".status.podIP", "operator": "DoesNotExist"} in \
        first["selector"]["matchExpressions"]
    assert {"key": ".status.podIP", "operator": "Exists"} in \
        again["selector"]["matchExpressions"]
    template = again["next"]["statusTemplate"]
    assert "podIP" not in template and "type: Ready, status: \"True\"" in template


def test_pod_network_node_script_routes_each_peer_over_vxlan():
    hosts = [h for h in plan(2) if h.is_node]
    cidrs = {h.name: f"10.244.{i}.0/24" for i, h in enumerate(hosts)}
    me, peers = hosts[0], [(p, cidrs[p.name]) for p in hosts[1:]]
    script = podnet.node_script(me, cidrs[me.name], peers)
    assert "dstport 8472" in script and f"local {me.ip}" in script
    assert "ip addr add 10.244.0.254/24 dev cni0" in script
    for peer, cidr in peers:
        assert f"ip route replace {cidr} via {cidr.split('/')[0]} dev flannel.1 onlink" in script
        assert f"dst {peer.ip}" in script
    assert podnet.vtep_mac(hosts[0]) != podnet.vtep_mac(hosts[1])


def test_nat_rules_spread_over_endpoints_and_reject_without_any():
    rules = podnet.nat_rules({("10.96.0.10", 53, "UDP"): ["10.244.0.1:53", "10.244.0.2:53"],
                              ("10.96.0.1", 443, "TCP"): []})
    assert rules.startswith("*nat\n") and rules.endswith("COMMIT\n")
    assert "--probability 0.50000" in rules
    assert rules.count("-j DNAT --to-destination 10.244.0.") == 2
    assert "-d 10.96.0.1/32 -p tcp -m tcp --dport 443 -j REJECT" in rules


def test_every_fault_names_tests_or_says_nothing_must_fail():
    for fault in FAULTS.values():
        assert fault.action is not None, fault.name
        for template, words in fault.expect:
            assert "[" in template or template.startswith("cluster_"), (fault.name, template)
            assert words, (fault.name, template)
    assert FAULTS["calico-loose-rpf"].expect == ()


def test_a_pod_ip_from_kwoks_default_range_is_told_apart():
    """kwok hands out its own range (its --cidr, default 10.0.0.1/24) to a pod scheduled
    before its node has a podCIDR; no sandbox can route that, so the lab replaces such pods."""
    from lab.inside import _outside_pod_cidr

    cidrs = {"w2": "10.244.4.0/24", "w3": None}
    pod = {"spec": {"nodeName": "w2"}, "status": {"podIP": "10.0.0.3"}}
    assert _outside_pod_cidr(pod, cidrs)
    assert not _outside_pod_cidr({**pod, "status": {"podIP": "10.244.4.3"}}, cidrs)
    assert not _outside_pod_cidr({**pod, "status": {}}, cidrs)
    assert not _outside_pod_cidr({**pod, "spec": {"nodeName": "w3"}}, cidrs)


def test_more_nodes_than_the_pod_subnet_holds_are_refused_before_anything_is_built(tmp_path):
    """kube-controller-manager gives each Node a /24 of 10.244.0.0/16: a 500-host lab had 256
    Nodes with a podCIDR and "CIDRNotAvailable" events for the rest, and timed out."""
    import os

    import pytest

    from lab.lab import Lab
    from lab.system import LabError

    if os.geteuid() != 0:
        pytest.skip("the lab's machine check wants root")
    with pytest.raises(LabError, match=r"256 node /24 ranges .* at most 253 workers"):
        Lab(tmp_path / "lab").up(254, control_plane=True)
    assert not (tmp_path / "lab").exists()


def test_a_recorded_sandbox_pid_is_trusted_only_while_it_is_a_pause():
    """Each lab host numbers its own processes: a stale or foreign pid may name anything
    there, and podexec must neither reuse nor kill that."""
    import os
    import subprocess
    import time

    from lab.podexec import _is_pause

    pause = subprocess.Popen(["sleep", "infinity"])
    try:
        deadline = time.monotonic() + 5  # until the forked child has exec'd sleep
        while not _is_pause(pause.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _is_pause(pause.pid)
        assert not _is_pause(os.getpid())
    finally:
        pause.kill()
        pause.wait()
    assert not _is_pause(pause.pid)
