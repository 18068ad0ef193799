"""The pod network's address plan: kubeadm's podSubnet, flannel's Network and the nodes'
podCIDRs agree where the CNI's IPAM uses them, Calico's IPPools and Cilium's cluster-pool
where present, and neither pods nor Services share addresses with the nodes."""

from __future__ import annotations

import ipaddress
import json
from itertools import combinations

import yaml

from kubeaccept.checks.cni import (
    Ipam,
    calico_pools,
    cilium_node_cidrs,
    cilium_pool,
    cluster_ipam,
)
from kubeaccept.checks.nodes import internal_ips
from kubeaccept.model.apistate import ApiState
from kubeaccept.model.findings import Finding, passed
from kubeaccept.model.hosts import node_ip
from kubeaccept.model.registry import Context, check

KUBEADM_CM = "kube-system/kubeadm-config"
FLANNEL_CMS = ("kube-flannel/kube-flannel-cfg", "kube-system/kube-flannel-cfg")
DEFAULT_SERVICE_SUBNET = "10.96.0.0/12"  # kubeadm's default
NO_CIDR_WHY = (
    "flannel on that node cannot start (\"failed to acquire lease: node ... pod cidr not "
    "assigned\") and the node stays NotReady; pods there get no address")
ALLOCATE_FIX = (
    "kube-controller-manager must run with --allocate-node-cidrs=true --cluster-cidr=<podSubnet> "
    "(kubeadm sets both from networking.podSubnet): check "
    "/etc/kubernetes/manifests/kube-controller-manager.yaml on the control planes")

Net = ipaddress.IPv4Network | ipaddress.IPv6Network


def _nets(text: str | None) -> list[Net]:
    """"10.244.0.0/16" or dual-stack "10.244.0.0/16,fd00:10:244::/56"."""
    return [ipaddress.ip_network(p.strip(), strict=False) for p in (text or "").split(",")
            if p.strip()]


def _fmt(nets: list[Net]) -> str:
    return ",".join(map(str, nets))


def cluster_configuration(state: ApiState) -> tuple[dict | None, str]:
    """(kubeadm-config's ClusterConfiguration, problem)."""
    cm = state.configmaps.get(KUBEADM_CM)
    if cm is None:
        return None, f"ConfigMap {KUBEADM_CM} absent"
    try:
        conf = yaml.safe_load((cm.get("data") or {}).get("ClusterConfiguration") or "") or {}
    except yaml.YAMLError as exc:
        return None, f"{KUBEADM_CM} ClusterConfiguration is not YAML: {str(exc).splitlines()[0]}"
    if not isinstance(conf, dict):
        return None, f"{KUBEADM_CM} ClusterConfiguration is not a mapping"
    return conf, ""


def _kubeadm(state: ApiState) -> tuple[dict | None, str]:
    """(ClusterConfiguration networking, problem)."""
    conf, problem = cluster_configuration(state)
    return (None, problem) if conf is None else (conf.get("networking") or {}, "")


def _flannel(state: ApiState) -> tuple[str, dict | None, str]:
    """(ConfigMap name, net-conf.json, problem); name "" without flannel."""
    for key in FLANNEL_CMS:
        cm = state.configmaps.get(key)
        if cm is None:
            continue
        text = (cm.get("data") or {}).get("net-conf.json", "")
        try:
            return key, json.loads(text), ""
        except ValueError as exc:
            return key, None, f"{key} net-conf.json is not JSON: {exc}"
    return "", None, ""


def _node_cidrs(node: dict) -> list[Net]:
    spec = node.get("spec", {})
    return _nets(",".join(spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR")
                                                     else [])))


def _name(node: dict) -> str:
    return node.get("metadata", {}).get("name", "?")


def _overlap(a: Net, b: Net) -> bool:
    return a.version == b.version and a.overlaps(b)


def _flannel_findings(key: str, conf: dict | None, problem: str,
                      pod_nets: list[Net]) -> list[Finding]:
    subject = "flannel Network"
    if conf is None:
        return [Finding(subject, False, problem, "valid net-conf.json",
                        "flannel cannot start: no pod gets an address, nodes stay NotReady",
                        f"fix net-conf.json in `kubectl -n {key.split('/')[0]} edit cm "
                        f"{key.split('/')[1]}`, then restart the flannel DaemonSet")]
    network = conf.get("Network", "")
    backend = (conf.get("Backend") or {}).get("Type", "?")
    evidence = (f"{key} net-conf.json: {json.dumps(conf, sort_keys=True)}",)
    v4 = [n for n in pod_nets if n.version == 4]
    try:
        net = ipaddress.ip_network(network, strict=False)
    except ValueError:
        net = None
    if net is not None and (not v4 or net == v4[0]):
        return [passed(subject, f"flannel Network {network} (backend {backend})"
                       + (f" = kubeadm podSubnet {v4[0]}" if v4 else ""),
                       "= kubeadm podSubnet", *evidence)]
    ns, name = key.split("/")
    return [Finding(
        subject, False, f"flannel Network {network or '(none)'} != kubeadm podSubnet "
        f"{v4[0] if v4 else _fmt(pod_nets)}", "flannel Network = kubeadm podSubnet",
        "pods get addresses (node podCIDRs from podSubnet) that flannel does not route, and "
        "kube-proxy's clusterCIDR masquerading is wrong: cross-node pod traffic and DNS break",
        f"make Network in net-conf.json equal the podSubnet (`kubeadm init "
        f"--pod-network-cidr`): `kubectl -n {ns} edit cm {name}`, then `kubectl -n {ns} "
        "rollout restart ds/kube-flannel-ds`", evidence)]


@check("cluster_pod_network",
       ("the pod address plan of the CNI the cluster runs: kubeadm `podSubnet`, flannel "
        "`Network` and the nodes' podCIDRs where the IPAM uses them (flannel, host-local "
        "usePodCidr, Cilium `ipam: kubernetes`); Calico IPPools and Cilium's cluster-pool "
        "where present; no overlap with Services or node addresses"),
       area="network",
       needs=('api', 'cluster'),
       reads=("kubeadm-config, kube-flannel-cfg and cilium-config ConfigMaps, Nodes' podCIDRs, "
              "Calico IPPools, CiliumNodes, CNI DaemonSets (API)",
              "each node's /etc/cni/net.d (the CNI config the runtime loads)"),
       asserts=("The CNI and its IPAM come from the CNI DaemonSets (calico-node, canal, "
                "kube-flannel-ds, cilium), cilium-config's `ipam` and the nodes' active CNI "
                "config (`calico-ipam`, `host-local` with `usePodCidr`). Where the IPAM uses "
                "the node podCIDR (flannel; Calico/Canal host-local usePodCidr; Cilium `ipam: "
                "kubernetes`): `kubeadm-config` podSubnet present and every Node has a "
                "podCIDR. Always: flannel's `net-conf.json` Network = podSubnet; podCIDRs "
                "inside podSubnet and disjoint; podSubnet ∩ serviceSubnet = ∅; no node "
                "address inside either. Calico (calico-ipam): at least one IPPool; every "
                "enabled IPPool inside podSubnet when it is set (kube-proxy's clusterCIDR). "
                "Cilium cluster-pool: every CiliumNode's spec.ipam.podCIDRs inside "
                "`cluster-pool-ipv4-cidr`. IPPools and cluster-pool CIDRs, where present, "
                "overlap neither the serviceSubnet nor a node address. Another IPAM (Calico's "
                "IPPools, Cilium's cluster-pool) makes a missing podCIDR a note; no CNI "
                "identified: said, CNI-neutral rules only"),
       prevents="pods get addresses the CNI does not route; cross-node traffic and DNS break")
def cluster_pod_network(ctx: Context) -> list[Finding]:
    state = ctx.api
    node_network_ips = [node_ip(h) for h in ctx.cluster.inventory.hosts]
    ipam = cluster_ipam(state, ctx.cluster.facts)
    networking, problem = _kubeadm(state)
    flannel_key, flannel_conf, flannel_problem = _flannel(state)
    findings = [_ipam_finding(ipam)]
    pod_nets: list[Net] = []
    svc_nets: list[Net] = []
    if networking is None:
        findings.append(Finding(
            "kubeadm podSubnet", False, problem, "kubeadm's ClusterConfiguration",
            "kubeadm join and upgrade read the cluster's configuration from it: they fail, and "
            "the pod network plan cannot be checked",
            "kubeadm init phase upload-config kubeadm --config kubeadm.yaml (the configuration "
            "the cluster was built with)"))
    else:
        try:
            pod_nets = _nets(networking.get("podSubnet"))
            svc_nets = _nets(networking.get("serviceSubnet") or DEFAULT_SERVICE_SUBNET)
        except ValueError as exc:
            problem = f"bad address in networking: {exc}"
        flannel_note = ("" if flannel_key else "; no flannel ConfigMap ("
                        + ", ".join(FLANNEL_CMS) + "): flannel not checked")
        observed = (f"podSubnet {_fmt(pod_nets) or '(none)'}, serviceSubnet "
                    f"{_fmt(svc_nets) or '?'}{flannel_note}")
        evidence = (f"{KUBEADM_CM} ClusterConfiguration networking: {json.dumps(networking)}",)
        if pod_nets and not problem:
            findings.append(passed("kubeadm podSubnet", observed, "podSubnet set",
                                   *evidence))
        elif problem or ipam.uses_pod_cidr:
            findings.append(Finding(
                "kubeadm podSubnet", False, problem or observed,
                "networking.podSubnet set", "no node gets a podCIDR: " + NO_CIDR_WHY,
                "kubeadm init --pod-network-cidr=10.244.0.0/16 (flannel's default), or set "
                f"networking.podSubnet in {KUBEADM_CM} and {ALLOCATE_FIX}", evidence))
        else:
            findings.append(Finding(
                "kubeadm podSubnet", True, observed, "podSubnet set where the IPAM uses "
                "node podCIDRs", evidence=evidence, note=(
                    f"no podSubnet: nodes get no podCIDR, which {ipam.label} does not use"
                    if ipam.known else "no podSubnet, and no CNI identified: whether the "
                    "pod network needs node podCIDRs is unknown")))
    if flannel_key:
        findings += _flannel_findings(flannel_key, flannel_conf, flannel_problem, pod_nets)
    findings += _node_cidr_findings(state, pod_nets, ipam)
    for p in pod_nets:
        for s in svc_nets:
            if _overlap(p, s):
                findings.append(Finding(
                    "podSubnet/serviceSubnet", False, f"podSubnet {p} overlaps "
                    f"serviceSubnet {s}", "disjoint", "Service addresses and pod addresses "
                    "collide: kube-proxy rewrites traffic meant for pods, or pods shadow "
                    "Services", "rebuild with disjoint --pod-network-cidr and --service-cidr"))
    if pod_nets and svc_nets and not any(_overlap(p, s) for p in pod_nets for s in svc_nets):
        findings.append(passed("podSubnet/serviceSubnet", f"{_fmt(pod_nets)} and "
                               f"{_fmt(svc_nets)} disjoint", "disjoint"))
    pools, pool_findings = _calico_findings(state, ipam, pod_nets, svc_nets)
    cilium, cilium_findings = _cilium_findings(state, ipam, svc_nets)
    findings += pool_findings + cilium_findings
    findings += _address_findings(state, node_network_ips, [
        ("podSubnet", pod_nets), ("serviceSubnet", svc_nets), *pools, *cilium])
    return findings


def _ipam_finding(ipam: Ipam) -> Finding:
    """Which plan the rest is judged by: said first, with the evidence."""
    rules = ("node podCIDRs are the pods' addresses" if ipam.uses_pod_cidr else
             "node podCIDRs are not where pods get addresses")
    if ipam.known:
        return passed("pod network IPAM", f"{ipam.label}: {rules}", "a known IPAM",
                      *ipam.evidence)
    return Finding("pod network IPAM", True, f"{ipam.label}", "a known IPAM",
                   evidence=ipam.evidence, note=(
                       "the CNI's IPAM is not one this check knows (flannel, Calico, Cilium, "
                       "host-local): only the CNI-neutral rules were applied (podSubnet, "
                       "serviceSubnet, podCIDRs as allocated, node addresses); see "
                       "`ls /etc/cni/net.d` and `kubectl get ds -A` on the cluster"))


POOL_FIX = ("create the IPPool inside the podSubnet and disable the old one "
            "(`kubectl patch ippools.crd.projectcalico.org NAME --type merge -p "
            "'{\"spec\":{\"disabled\":true}}'`, Calico's \"Migrate from one IP pool to "
            "another\")")


def _calico_findings(state: ApiState, ipam: Ipam, pod_nets: list[Net],
                     svc_nets: list[Net]) -> tuple[list[tuple[str, list[Net]]], list[Finding]]:
    pools = calico_pools(state)
    calico_ipam = ipam.label.startswith("Calico (calico-ipam")
    findings = []
    if calico_ipam and not pools:
        findings.append(Finding(
            "Calico IPPools", False, "no IPPool (crd.projectcalico.org/v1 or "
            "projectcalico.org/v3)", "at least one enabled IPPool",
            "calico-ipam assigns pod addresses from IPPools only: pods stay ContainerCreating",
            "calico-node creates the default pool from CALICO_IPV4POOL_CIDR at start (or the "
            "operator's Installation ipPools): check `kubectl get ippools -o wide` and "
            "calico-node's log", ipam.evidence))
    for name, cidr, disabled in pools:
        subject = f"Calico IPPool {name}"
        evidence = (f"IPPool {name}: spec.cidr {cidr}" + (", disabled" if disabled else ""),)
        clash = [s for s in svc_nets if _overlap(cidr, s)]
        if clash:
            findings.append(Finding(
                subject, False, f"{cidr} overlaps serviceSubnet {_fmt(clash)}", "disjoint",
                "pods get Service addresses: kube-proxy rewrites traffic meant for them",
                POOL_FIX, evidence))
        elif calico_ipam and not disabled and pod_nets and not any(
                cidr.version == p.version and cidr.subnet_of(p) for p in pod_nets):
            findings.append(Finding(
                subject, False, f"{cidr} outside podSubnet {_fmt(pod_nets)}",
                "inside the Kubernetes pod CIDR",
                "kube-proxy tells pod traffic by its clusterCIDR (kubeadm sets it to "
                "podSubnet): pods outside it are treated as external (masqueraded, or not "
                "bypassed), and Calico's documentation requires IP pools inside the pod CIDR",
                POOL_FIX, evidence))
        else:
            findings.append(passed(subject, f"{cidr}" + (" (disabled)" if disabled else ""),
                                   "inside podSubnet, disjoint from Services", *evidence))
    return [(f"Calico IPPool {n}", [c]) for n, c, _ in pools], findings


def _cilium_findings(state: ApiState, ipam: Ipam, svc_nets: list[Net]
                     ) -> tuple[list[tuple[str, list[Net]]], list[Finding]]:
    if ipam.label != "Cilium cluster-pool":
        return [], []
    pool = cilium_pool(state)
    subject = "Cilium cluster-pool"
    evidence = (f"kube-system/cilium-config cluster-pool-ipv4-cidr: "
                f"{_fmt(pool) or '(unset or unparsable)'}",)
    findings = []
    clash = [(p, s) for p in pool for s in svc_nets if _overlap(p, s)]
    if clash:
        findings.append(Finding(
            subject, False, "; ".join(f"{p} overlaps serviceSubnet {s}" for p, s in clash),
            "disjoint", "pods get Service addresses: kube-proxy (or Cilium's service "
            "handling) rewrites traffic meant for them",
            "choose a cluster-pool disjoint from the serviceSubnet (Helm "
            "`ipam.operator.clusterPoolIPv4PodCIDRList`); changing it means re-creating "
            "the CiliumNodes and pods", evidence))
    elif pool:
        findings.append(passed(subject, _fmt(pool), "disjoint from Services", *evidence))
    for name, cidrs in sorted(cilium_node_cidrs(state).items()):
        outside = [c for c in cidrs if pool and not any(
            c.version == p.version and c.subnet_of(p) for p in pool)]
        if not cidrs:
            findings.append(Finding(
                f"CiliumNode {name}", False, "no spec.ipam.podCIDRs",
                "a podCIDR from the cluster-pool", "Cilium's agent on that node has no "
                "addresses to give pods", "check the cilium-operator's log (it allocates them)",
                (f"CiliumNode {name} spec.ipam: {json.dumps({})}",)))
        elif outside:
            findings.append(Finding(
                f"CiliumNode {name}", False, f"podCIDRs {_fmt(outside)} outside the "
                f"cluster-pool {_fmt(pool)}", "inside the cluster-pool", "pods on that node "
                "get addresses the rest of the cluster does not route to it",
                "the cluster-pool changed after allocation: the cilium-operator does not "
                "re-allocate; delete the CiliumNode and restart the node's cilium pod", evidence))
        else:
            findings.append(passed(f"CiliumNode {name}", f"podCIDRs {_fmt(cidrs)}",
                                   "inside the cluster-pool", *evidence))
    return [("Cilium cluster-pool", pool)], findings


def _node_cidr_findings(state: ApiState, pod_nets: list[Net], ipam: Ipam) -> list[Finding]:
    findings = []
    cidrs: list[tuple[str, Net]] = []
    for node in sorted(state.nodes, key=_name):
        name = _name(node)
        subject = f"node {name} podCIDR"
        try:
            mine = _node_cidrs(node)
        except ValueError as exc:
            mine, bad = [], f"spec.podCIDR unparsable: {exc}"
        else:
            bad = "" if mine else "no spec.podCIDR"
        evidence = (f"kubectl get node {name} -o jsonpath='{{.spec.podCIDRs}}' -> "
                    f"{json.dumps(node.get('spec', {}).get('podCIDRs'))}",)
        if bad and not mine and not ipam.uses_pod_cidr:
            findings.append(Finding(subject, True, bad, "a podCIDR where the IPAM uses it",
                                    evidence=evidence, note=(
                                        f"{ipam.label} does not give pods addresses from the "
                                        "node podCIDR" if ipam.known else "no CNI identified:"
                                        " whether pods need a node podCIDR is unknown")))
            continue
        if bad:
            findings.append(Finding(subject, False, bad, "a podCIDR inside podSubnet",
                                    NO_CIDR_WHY, ALLOCATE_FIX, evidence))
            continue
        cidrs += [(name, c) for c in mine]
        outside = [c for c in mine if pod_nets and not any(
            c.version == p.version and c.subnet_of(p) for p in pod_nets)]
        if outside:
            findings.append(Finding(
                subject, False, f"podCIDR {_fmt(outside)} outside podSubnet "
                f"{_fmt(pod_nets)}", "inside podSubnet",
                "pods on that node get addresses the pod network does not route: they cannot "
                "reach pods on other nodes, Services or DNS",
                f"the controller-manager's --cluster-cidr differs from podSubnet: {ALLOCATE_FIX}; "
                f"then `kubectl delete node {name}` and rejoin it to get a new podCIDR",
                evidence))
        else:
            findings.append(passed(subject, f"podCIDR {_fmt(mine)}", "inside podSubnet",
                                   *evidence))
    clashes = [(a, b) for a, b in combinations(cidrs, 2) if a[0] != b[0] and _overlap(a[1], b[1])]
    if clashes:
        findings.append(Finding(
            "node podCIDRs", False, "; ".join(
                f"{a[0]} {a[1]} overlaps {b[0]} {b[1]}" for a, b in clashes), "disjoint",
            "two nodes hand out the same pod addresses: traffic for one pod reaches the other "
            "node's pod, or flannel routes the range to one node only",
            "podCIDRs are allocated by kube-controller-manager; one set by hand (kubelet "
            "--pod-cidr) or left from an older node: `kubectl delete node NAME` and rejoin it"))
    elif len(cidrs) > 1:
        findings.append(passed("node podCIDRs", f"{len(cidrs)} podCIDRs, none overlapping",
                               "disjoint"))
    return findings


def _address_findings(state: ApiState, node_network_ips: list[str],
                      ranges: list[tuple[str, list[Net]]]) -> list[Finding]:
    """No node address inside a pod or Service range (podSubnet, serviceSubnet, Calico
    IPPools, Cilium's cluster-pool)."""
    owners: dict[str, str] = {ip: "inventory host" for ip in node_network_ips}
    for node in state.nodes:
        for ip in internal_ips(node):
            owners[ip] = f"node {_name(node)} InternalIP"
    findings = []
    for ip, who in sorted(owners.items()):
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            continue  # a host name in the inventory: nothing to compare
        hits = [f"{label} {n}" for label, nets in ranges for n in nets if addr in n]
        if hits:
            findings.append(Finding(
                f"address {ip}", False, f"{who} {ip} inside {' and '.join(hits)}",
                "node addresses outside the pod and Service ranges",
                "traffic to that node is routed into the pod network or caught by "
                "kube-proxy's Service rules: pods and other nodes cannot reach its kubelet, "
                "apiserver or etcd",
                "choose pod and Service ranges disjoint from the node network "
                "(kubeadm init --pod-network-cidr / --service-cidr, the CNI's pools); "
                "changing them means rebuilding the cluster"))
    if not findings and owners and any(nets for _, nets in ranges):
        labels = ", ".join(label for label, nets in ranges if nets)
        findings.append(passed("node addresses", f"{len(owners)} node addresses outside "
                               f"{labels}", "outside"))
    return findings
