"""Which CNI a node runs and that CNI's rules (issue 20, class 5): the CNI configuration the
runtime loads, the CNI's interfaces and DaemonSets, Cilium's rp_filter needs, and the pod
address plan per IPAM (node podCIDRs, Calico IPPools, Cilium's cluster-pool)."""

from __future__ import annotations

import base64
import ipaddress
import json
import subprocess
from pathlib import Path

from kubeaccept.api import kubeapi
from kubeaccept.checks import cni
from kubeaccept.facts import SCRIPT
from kubeaccept.facts.cni import host_local_subnets, parse, uses_pod_cidr
from kubeaccept.model.apistate import ApiState

from .factory import NO_API, cni_cluster, context, facts, judge, on_cluster
from .test_api_checks import healthy, pod
from .test_node_checks import failed, sysctl_with

FIXTURES = Path(__file__).parent / "fixtures" / "cni"


def conf_section(*names: str, extra: str = "") -> str:
    """The `cni-conf` section as gather.sh prints it for these fixture files."""
    lines = [f"/etc/cni/net.d/{n} {base64.b64encode((FIXTURES / n).read_bytes()).decode()}"
             for n in names]
    return "\n".join(lines + ([extra] if extra else []))


def links(*names: str) -> str:
    return "\n".join(f"{i}: {n}: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1450 qdisc noqueue"
                     for i, n in enumerate(("lo", "eth0", *names), 1))


# --- gather.sh's cni-conf section, run here ----------------------------------------------------
def run_section(tmp_path: Path) -> str:
    """gather.sh's own cni-conf lines, run by sh over a directory standing in for
    /etc/cni/net.d."""
    body = SCRIPT[SCRIPT.index("sec cni-conf\n"):SCRIPT.index("sec addresses;")]
    body = body.replace("/etc/cni/net.d", str(tmp_path / "net.d")).replace("sec cni-conf\n", "")
    return subprocess.run(["sh", "-c", body], capture_output=True, text=True, check=True,
                          env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"}).stdout


def test_gather_reads_the_cni_files_the_runtime_reads_and_masks_tokens(tmp_path):
    d = tmp_path / "net.d"
    d.mkdir()
    for n in ("10-flannel.conflist", "05-cilium.conflist"):
        (d / n).write_bytes((FIXTURES / n).read_bytes())
    # Calico's kubeconfig beside its conflist holds a service account token: named, not read
    (d / "calico-kubeconfig").write_text("token: SECRET\n")
    # old Calico manifests put the token into the conflist itself
    (d / "20-old.conf").write_text('{"name": "k8s", "type": "calico", '
                                   '"policy": {"type": "k8s", "k8s_auth_token": "SECRET"}}')
    (d / "99-big.json").write_text(" " * 70000)
    out = run_section(tmp_path)
    assert "SECRET" not in out and "calico-kubeconfig !other" in out
    parsed = parse(out.replace(str(d), "/etc/cni/net.d"))
    assert [f.name for f in parsed.files] == ["05-cilium.conflist", "10-flannel.conflist",
                                              "20-old.conf", "99-big.json"]
    assert parsed.others == ("calico-kubeconfig",)
    assert parsed.active.name == "05-cilium.conflist"  # libcni: the first by name
    old = next(f for f in parsed.files if f.name == "20-old.conf")
    assert old.conf["policy"]["k8s_auth_token"] == "***" and old.types == ["calico"]
    assert next(f for f in parsed.files if f.name == "99-big.json").error == "larger than 64 KiB"
    assert parse(run_section(tmp_path / "absent")).exists is False


# --- host-local, as containernetworking/plugins v1.9.0 runs it ---------------------------------
def test_host_local_ranges_read_as_host_local_reads_them():
    """host-local v1.9.0's own answers (fixtures/cni/README.md): the address it handed out
    lies in the subnets kubeaccept reads from the same input (`ranges` and the older
    `subnet`); `usePodCidr` is no subnet to it, and is what marks Calico's podCIDR IPAM."""
    for case in ("ranges", "subnet"):
        conf = json.loads((FIXTURES / f"host-local-{case}.in.json").read_text())
        result = json.loads((FIXTURES / f"host-local-1.9.0-{case}.out").read_text())
        address = ipaddress.ip_interface(result["ips"][0]["address"])
        assert [address in net for net in host_local_subnets(conf["ipam"])] == [True], case
    conf = json.loads((FIXTURES / "host-local-usePodCidr.in.json").read_text())
    error = json.loads((FIXTURES / "host-local-1.9.0-usePodCidr.out").read_text())
    assert error["msg"] == "invalid CIDR address: usePodCidr"
    assert host_local_subnets(conf["ipam"]) == [] and uses_pod_cidr(conf["ipam"])


# --- which CNI a node runs ----------------------------------------------------------------------
def test_detect_from_the_active_conflist_and_interfaces():
    """Calico's, Canal's, flannel's and Cilium's conflists as their manifests/agent write
    them (fixtures/cni/README.md), with the interfaces each makes."""
    cases = {
        ("10-calico.conflist", "cali3f1a2b4c5d6", "vxlan.calico"): {"calico"},
        ("10-canal.conflist", "flannel.1", "cali3f1a2b4c5d6"): {"calico", "flannel"},
        ("10-flannel.conflist", "flannel.1", "cni0"): {"flannel"},
        ("05-cilium.conflist", "cilium_host", "cilium_net", "lxc_health"): {"cilium"},
    }
    for (conf, *ifaces), want in cases.items():
        f = facts(cni_conf=conf_section(conf), links=links(*ifaces))
        found = cni.detect("n1", "192.0.2.11", f, NO_API)
        assert found.cnis == want, (conf, found)
        assert found.evidence[0].startswith(f"/etc/cni/net.d/{conf}: plugins ")
    canal = cni.detect("n1", "192.0.2.11", facts(cni_conf=conf_section("10-canal.conflist")),
                       NO_API)
    assert "ipam host-local (usePodCidr: the node's podCIDR)" in canal.evidence[0]
    nothing = cni.detect("n1", "192.0.2.11", facts(cni_conf="!no-dir"), NO_API)
    assert nothing.cnis == frozenset() and nothing.label == "no CNI identified"


def test_cluster_view_reads_daemonsets_images_and_their_pods_nodes():
    calico = {"metadata": {"namespace": "calico-system", "name": "calico-node"},
              "spec": {"template": {"spec": {"containers": [
                  {"name": "calico-node", "image": "quay.io/calico/node:v3.28.2"}]}}}}
    state = healthy(daemonsets=[calico], pods=[
        pod("calico-system", "calico-node-abcde", "w1", [], ("DaemonSet", "calico-node"))])
    view = cni.cluster_view(state)
    assert [(d.key, d.version) for d in view.daemonsets] == [("calico-system/calico-node",
                                                             (3, 28, 2))]
    assert view.pods == {"w1": frozenset({"calico"})}
    assert view.node_name("w1", "?") == "w1" and view.node_name("x", "192.0.2.22") == "w2"
    found = cni.detect("w1", "192.0.2.21", facts("w1"), view)
    assert found.cnis == {"calico"} and found.felix_reads_all is False
    assert cni.image_version("docker.io/calico/node:v3.11.3@sha256:ab") == (3, 11, 3)
    assert cni.image_version("quay.io/calico/node:master") is None


# --- Cilium's rp_filter rules -------------------------------------------------------------------
def cilium_node(**sysctls: str):
    lines = sysctl_with(**{f"net.ipv4.conf.{k}.rp_filter": v for k, v in {
        "cilium_host": "0", "cilium_net": "0", "lxc_health": "0", "lxc8e1f2a3b4c5d": "0",
        **sysctls}.items()})
    return context(facts(sysctl=lines, cni_conf=conf_section("05-cilium.conflist"), links=links(
        "cilium_host", "cilium_net", "cilium_vxlan", "lxc_health", "lxc8e1f2a3b4c5d")))


def test_cilium_interfaces_need_rp_filter_off():
    """cilium pkg/datapath/loader/base.go (Reinitialize) writes conf/all/rp_filter=0 and the
    device setup writes rp_filter=0 on each Cilium device; tools/sysctlfix/main.go writes
    `net.ipv4.conf.lxc*.rp_filter = 0` and `net.ipv4.conf.cilium_*.rp_filter = 0` to
    /etc/sysctl.d/99-zzz-override_cilium.conf. The kernel uses max(all, iface)."""
    ok = judge("node_rp_filter", node=cilium_node(all="0"), cluster_cni=NO_API)
    assert not failed(ok)
    assert next(f for f in ok if f.subject == "n1:lxc_health").expected == "0 (Cilium interface)"
    # systemd-sysctl gave a new endpoint veth loose mode (Cilium issue 10645)
    veth = failed(judge("node_rp_filter", node=cilium_node(all="0", lxc8e1f2a3b4c5d="2"),
                        cluster_cni=NO_API))
    assert [f.subject for f in veth] == ["n1:lxc8e1f2a3b4c5d"]
    assert "99-zzz-override_cilium.conf" in veth[0].fix and "10645" in veth[0].why
    assert "sysctl -w net.ipv4.conf.lxc8e1f2a3b4c5d.rp_filter=0" in veth[0].fix
    # conf/all=1 (strict, fine elsewhere) is wrong on every Cilium interface
    strict = failed(judge("node_rp_filter", node=cilium_node(all="1"), cluster_cni=NO_API))
    assert {f.subject for f in strict} == {"n1:cilium_host", "n1:cilium_net", "n1:lxc_health",
                                          "n1:lxc8e1f2a3b4c5d"}
    assert "Kernel's RPF check" not in strict[0].why
    assert "net.ipv4.conf.all.rp_filter=0" in strict[0].fix


def test_cilium_before_its_agent_made_interfaces_judges_conf_all():
    node = context(facts(sysctl=sysctl_with(), cni_conf="!no-dir"))
    out = judge("node_rp_filter", node=node, cluster_cni=cni_cluster(
        "cilium", "quay.io/cilium/cilium:v1.18.6"))
    bad = failed(out)
    assert [f.subject for f in bad] == ["n1:all"] and bad[0].expected == "0 (Cilium)"


# --- the pod address plan per IPAM --------------------------------------------------------------
def ds(ns, name, container, image):
    return {"metadata": {"namespace": ns, "name": name}, "spec": {"template": {"spec": {
        "containers": [{"name": container, "image": image}]}}}}


CALICO_DS = ds("calico-system", "calico-node", "calico-node", "quay.io/calico/node:v3.28.2")
CILIUM_DS = ds("kube-system", "cilium", "cilium-agent", "quay.io/cilium/cilium:v1.18.6")


def pool(name, cidr, disabled=False):
    return {"apiVersion": "crd.projectcalico.org/v1", "kind": "IPPool",
            "metadata": {"name": name},
            "spec": {"cidr": cidr, "ipipMode": "Always", "natOutgoing": True,
                     "disabled": disabled, "blockSize": 26, "nodeSelector": "all()"}}


def without_pod_cidrs(state: ApiState) -> ApiState:
    for n in state.nodes:
        n["spec"].pop("podCIDR", None)
        n["spec"].pop("podCIDRs", None)
    return state


def subjects(findings):
    return {f.subject: f for f in findings}


def test_calico_ipam_uses_ippools_not_node_podcidrs():
    """Calico's calico-ipam assigns from IPPools (crd.projectcalico.org/v1 IPPool spec.cidr);
    tigera docs (Configure default IP pools): pools must lie inside the Kubernetes pod CIDR,
    which kube-proxy uses to tell pod traffic."""
    state = without_pod_cidrs(healthy(daemonsets=[CALICO_DS], pods=[],
                                      calico_ippools=[pool("default-ipv4-ippool", "10.244.0.0/16")]))
    out = judge("cluster_pod_network", api=state, cluster=on_cluster(ips=[]))
    assert not failed(out)
    by = subjects(out)
    assert by["pod network IPAM"].observed.startswith("Calico (calico-ipam: IPPools)")
    assert by["node w1 podCIDR"].ok and "does not give pods addresses" in by["node w1 podCIDR"].note
    assert by["Calico IPPool default-ipv4-ippool"].ok
    # a pool outside podSubnet, one over the Services, and no pool at all
    state = without_pod_cidrs(healthy(daemonsets=[CALICO_DS], pods=[], calico_ippools=[
        pool("default-ipv4-ippool", "192.168.0.0/16"), pool("svc", "10.96.0.0/16")]))
    bad = subjects(failed(judge("cluster_pod_network", api=state, cluster=on_cluster(ips=[]))))
    assert set(bad) == {"Calico IPPool default-ipv4-ippool", "Calico IPPool svc"}
    assert "outside podSubnet 10.244.0.0/16" in bad["Calico IPPool default-ipv4-ippool"].observed
    assert "overlaps serviceSubnet 10.96.0.0/12" in bad["Calico IPPool svc"].observed
    none = failed(judge("cluster_pod_network", api=healthy(daemonsets=[CALICO_DS], pods=[]),
                        cluster=on_cluster(ips=[])))
    assert [f.subject for f in none] == ["Calico IPPools"]


def test_calico_pool_over_a_node_address():
    state = healthy(daemonsets=[CALICO_DS], pods=[],
                    calico_ippools=[pool("default-ipv4-ippool", "192.0.2.0/24", disabled=True)])
    bad = subjects(failed(judge("cluster_pod_network", api=state, cluster=on_cluster(
        ips=["192.0.2.11"]))))
    assert "node cp1 InternalIP 192.0.2.11 inside Calico IPPool default-ipv4-ippool 192.0.2.0/24" in \
        bad["address 192.0.2.11"].observed


def test_canal_and_flannel_use_node_podcidrs():
    """Canal's conflist: host-local with usePodCidr (manifests/canal.yaml): the node podCIDR
    is the pods' range, so a node without one fails as on flannel."""
    canal = ds("kube-system", "canal", "calico-node", "docker.io/calico/node:v3.28.2")
    state = healthy(daemonsets=[canal], pods=[])
    del state.nodes[0]["spec"]["podCIDR"], state.nodes[0]["spec"]["podCIDRs"]
    bad = failed(judge("cluster_pod_network", api=state, cluster=on_cluster(ips=[])))
    assert [f.subject for f in bad] == ["node cp1 podCIDR"]
    # the nodes' active conflist alone says so too (no CNI DaemonSet in the API)
    f = facts(cni_conf=conf_section("10-canal.conflist"))
    state = healthy(daemonsets=[], pods=[])
    del state.nodes[0]["spec"]["podCIDR"], state.nodes[0]["spec"]["podCIDRs"]
    out = judge("cluster_pod_network", api=state, cluster=on_cluster(facts={"w1": f}))
    assert [x.subject for x in failed(out)] == ["node cp1 podCIDR"]
    assert "Calico (host-local usePodCidr)" in subjects(out)["pod network IPAM"].observed


def cilium_config(**data):
    return {"kube-system/cilium-config": {"data": data}}


def test_cilium_cluster_pool_against_services_and_nodes():
    """cilium-config `ipam: cluster-pool` with `cluster-pool-ipv4-cidr` (cilium
    pkg/ipam/option; the operator's default mode); CiliumNode spec.ipam.podCIDRs."""
    cms = {**healthy().configmaps, **cilium_config(**{
        "ipam": "cluster-pool", "cluster-pool-ipv4-cidr": "10.0.0.0/8",
        "cluster-pool-ipv4-mask-size": "24"})}
    nodes = [{"metadata": {"name": "w1"}, "spec": {"ipam": {"podCIDRs": ["10.0.1.0/24"]}}},
             {"metadata": {"name": "w2"}, "spec": {"ipam": {"podCIDRs": ["172.16.0.0/24"]}}}]
    state = without_pod_cidrs(healthy(daemonsets=[CILIUM_DS], pods=[], configmaps=cms,
                                      cilium_nodes=nodes))
    bad = subjects(failed(judge("cluster_pod_network", api=state,
                                cluster=on_cluster(ips=["10.0.2.15"]))))
    # Cilium's default pool 10.0.0.0/8 holds kubeadm's serviceSubnet and the node's NAT address
    assert set(bad) == {"Cilium cluster-pool", "CiliumNode w2", "address 10.0.2.15"}
    assert "10.0.0.0/8 overlaps serviceSubnet 10.96.0.0/12" in bad["Cilium cluster-pool"].observed
    assert "Cilium cluster-pool 10.0.0.0/8" in bad["address 10.0.2.15"].observed
    assert "outside the cluster-pool" in bad["CiliumNode w2"].observed
    # ipam: kubernetes hands out node podCIDRs: a node without one fails
    cms = {**healthy().configmaps, **cilium_config(ipam="kubernetes")}
    state = healthy(daemonsets=[CILIUM_DS], pods=[], configmaps=cms)
    del state.nodes[0]["spec"]["podCIDR"], state.nodes[0]["spec"]["podCIDRs"]
    bad = failed(judge("cluster_pod_network", api=state, cluster=on_cluster(ips=[])))
    assert [f.subject for f in bad] == ["node cp1 podCIDR"]


def test_unknown_cni_says_so_and_keeps_cni_neutral_rules():
    cms = {"kube-system/kubeadm-config": healthy().configmaps["kube-system/kubeadm-config"]}
    state = without_pod_cidrs(healthy(daemonsets=[], pods=[], configmaps=cms))
    out = judge("cluster_pod_network", api=state, cluster=on_cluster(ips=[]))
    assert not failed(out)
    ipam = subjects(out)["pod network IPAM"]
    assert ipam.observed == "no CNI identified" and "CNI-neutral" in ipam.note


# --- the API reads ------------------------------------------------------------------------------
class FakeApi:
    endpoint = "https://vip:6443"

    def __init__(self, objects):
        self.objects = objects

    def items(self, path):
        return self.objects.get(path, {}).get("items", [])

    def get(self, path, missing_ok=False, accept="application/json"):
        return self.objects.get(path)  # None: a 404 the caller allowed


def test_read_state_reads_ippools_ciliumnodes_and_cilium_config_where_present():
    v3 = {"items": [pool("p", "10.244.0.0/16")]}
    state = kubeapi.read_state(FakeApi({
        "/apis/projectcalico.org/v3/ippools": v3,
        "/apis/cilium.io/v2/ciliumnodes": {"items": [{"metadata": {"name": "w1"}}]},
        "/api/v1/namespaces/kube-system/configmaps/cilium-config": {"data": {"ipam": "x"}}}))
    assert state.calico_ippools == v3["items"]  # v1 absent (404): Calico's API server's v3
    assert [n["metadata"]["name"] for n in state.cilium_nodes] == ["w1"]
    assert "kube-system/cilium-config" in state.configmaps
    empty = kubeapi.read_state(FakeApi({}))
    assert empty.calico_ippools == [] and empty.cilium_nodes == []


def test_calico_beside_flannel_with_flannels_configuration_is_policy_only():
    """calico-node next to kube-flannel, the nodes' active configuration flannel's (or not
    read): Calico enforces policy only (Canal's split form), so the address plan is
    flannel's: node podCIDRs, and no IPPool is needed. With Calico's own conflist active on a
    node, calico-ipam's IPPools are required again."""
    flannel = ds("kube-flannel", "kube-flannel-ds", "kube-flannel",
                 "ghcr.io/flannel-io/flannel:v0.26.7")
    state = healthy(daemonsets=[flannel, CALICO_DS], pods=[])
    out = judge("cluster_pod_network", api=state, cluster=on_cluster(ips=[]))
    assert not failed(out)
    assert subjects(out)["pod network IPAM"].observed.startswith(
        "flannel (Calico for policy only)")
    del state.nodes[0]["spec"]["podCIDR"], state.nodes[0]["spec"]["podCIDRs"]
    assert [f.subject for f in failed(judge("cluster_pod_network", api=state,
                                            cluster=on_cluster(ips=[])))] == ["node cp1 podCIDR"]
