"""The pod network's address plan: kubeadm's podSubnet, flannel's Network and the nodes'
podCIDRs agree, and neither pods nor Services share addresses with the nodes."""

from __future__ import annotations

import ipaddress
import json
from itertools import combinations

import yaml

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


def _kubeadm(state: ApiState) -> tuple[dict | None, str]:
    """(ClusterConfiguration networking, problem)."""
    cm = state.configmaps.get(KUBEADM_CM)
    if cm is None:
        return None, f"ConfigMap {KUBEADM_CM} absent"
    try:
        conf = yaml.safe_load((cm.get("data") or {}).get("ClusterConfiguration") or "") or {}
    except yaml.YAMLError as exc:
        return None, f"{KUBEADM_CM} ClusterConfiguration is not YAML: {str(exc).splitlines()[0]}"
    return conf.get("networking") or {}, ""


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
       ("kubeadm `podSubnet` = flannel `Network`, every node's podCIDR inside it and "
        "disjoint, no overlap with Services or node addresses"),
       area="network",
       needs=('api', 'cluster'),
       reads=("kubeadm-config and kube-flannel-cfg ConfigMaps, Nodes' podCIDRs (API)",),
       asserts=("`kubeadm-config` podSubnet present; flannel's `net-conf.json` Network = "
                "podSubnet; every Node's podCIDR inside it, no two overlapping, every Node "
                "has one; podSubnet ∩ serviceSubnet = ∅; no node address inside either"),
       prevents="pods get addresses flannel does not route; cross-node traffic and DNS break")
def cluster_pod_network(ctx: Context) -> list[Finding]:
    state = ctx.api
    node_network_ips = [node_ip(h) for h in ctx.cluster.inventory.hosts]
    networking, problem = _kubeadm(state)
    flannel_key, flannel_conf, flannel_problem = _flannel(state)
    findings = []
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
        else:
            findings.append(Finding(
                "kubeadm podSubnet", False, problem or observed,
                "networking.podSubnet set", "no node gets a podCIDR: " + NO_CIDR_WHY,
                "kubeadm init --pod-network-cidr=10.244.0.0/16 (flannel's default), or set "
                f"networking.podSubnet in {KUBEADM_CM} and {ALLOCATE_FIX}", evidence))
    if flannel_key:
        findings += _flannel_findings(flannel_key, flannel_conf, flannel_problem, pod_nets)
    findings += _node_cidr_findings(state, pod_nets)
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
    findings += _address_findings(state, node_network_ips, pod_nets, svc_nets)
    return findings


def _node_cidr_findings(state: ApiState, pod_nets: list[Net]) -> list[Finding]:
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


def _address_findings(state: ApiState, node_network_ips: list[str], pod_nets: list[Net],
                      svc_nets: list[Net]) -> list[Finding]:
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
        hits = [f"{label} {n}" for label, nets in (("podSubnet", pod_nets),
                                                    ("serviceSubnet", svc_nets))
                for n in nets if addr in n]
        if hits:
            findings.append(Finding(
                f"address {ip}", False, f"{who} {ip} inside {' and '.join(hits)}",
                "node addresses outside podSubnet and serviceSubnet",
                "traffic to that node is routed into the pod network or caught by "
                "kube-proxy's Service rules: pods and other nodes cannot reach its kubelet, "
                "apiserver or etcd",
                "choose a podSubnet/serviceSubnet disjoint from the node network "
                "(kubeadm init --pod-network-cidr / --service-cidr); changing them means "
                "rebuilding the cluster"))
    if not findings and owners and (pod_nets or svc_nets):
        findings.append(passed("node addresses", f"{len(owners)} node addresses outside "
                               "podSubnet and serviceSubnet", "outside"))
    return findings
