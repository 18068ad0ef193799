"""Which CNI a node runs, from the node (its CNI configuration, its interfaces) and from the
cluster (the CNI's DaemonSet and its pod on that node), and how that CNI hands out pod
addresses. The rp_filter and pod-network checks apply each CNI's own requirements with it.

What each CNI leaves, as its own sources write it:
- Calico: /etc/cni/net.d/10-calico.conflist, plugin `calico`, ipam `calico-ipam` (addresses
  from IPPools) or `host-local` with `"subnet": "usePodCidr"` (the node's podCIDR, replaced by
  Calico's plugin: cni-plugin/internal/pkg/utils/utils.go); DaemonSet calico-node
  (kube-system, or calico-system under the Tigera operator); interfaces cali*, vxlan.calico.
- Canal (Calico policy + flannel): 10-canal.conflist, plugin `calico`, host-local usePodCidr;
  DaemonSet canal (manifests/canal.yaml); flannel.1 and cali* interfaces.
- flannel: 10-flannel.conflist, plugin `flannel` (its delegate is the bridge plugin with
  host-local over the node's subnet from /run/flannel/subnet.env, i.e. the node podCIDR with
  the kube subnet manager); DaemonSet kube-flannel-ds; interfaces flannel.1, cni0.
- Cilium: 05-cilium.conflist, plugin `cilium-cni` (daemon/cmd/cni/config.go); DaemonSet
  cilium; interfaces cilium_host, cilium_net, cilium_vxlan, lxc*; IPAM from the cilium-config
  ConfigMap's `ipam` (the operator's default is cluster-pool: CiliumNodes' spec.ipam.podCIDRs
  cut from `cluster-pool-ipv4-cidr`; `kubernetes` uses the node podCIDR)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from kubeaccept.checks import NodeContext, node_ip
from kubeaccept.facts import NodeFacts
from kubeaccept.facts.cni import CniFile, host_local_subnets, interfaces, uses_pod_cidr
from kubeaccept.model.apistate import ApiState

NAMES = {"calico": "Calico", "flannel": "flannel", "cilium": "Cilium"}
# CNI plugin `type` in a conflist -> CNI
PLUGIN_TYPES = {"calico": "calico", "flannel": "flannel", "cilium-cni": "cilium"}
# Calico's Felix up to v3.11 read conf/all/rp_filter and exited above 1; v3.12 replaced it
# with its own iptables rpfilter rule and dropped IgnoreLooseRPF (felix commit 9eabe46c3,
# "Use iptables for ipv4 RPF check (#2189)": dataplane/linux/int_dataplane.go).
FELIX_LAST_READING_ALL = (3, 11)

Net = ipaddress.IPv4Network | ipaddress.IPv6Network


def daemonset_cnis(name: str) -> tuple[str, ...]:
    if name == "calico-node":
        return ("calico",)
    if name == "canal":
        return ("calico", "flannel")
    if name.startswith("kube-flannel"):
        return ("flannel",)
    if name == "cilium":
        return ("cilium",)
    return ()


def image_version(image: str) -> tuple[int, int, int] | None:
    """v3.11.3 from docker.io/calico/node:v3.11.3 (a digest after it is fine); None for a
    tag that names no version (master, latest) or no tag."""
    tag = image.rsplit("/", 1)[-1].partition("@")[0].partition(":")[2]
    m = re.fullmatch(r"v?(\d+)\.(\d+)(?:\.(\d+))?(?:[-+].*)?", tag)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)) if m else None


@dataclass(frozen=True)
class CniDaemonSet:
    key: str                    # namespace/name
    cnis: tuple[str, ...]
    image: str                  # the CNI agent's container image (calico-node, cilium-agent)
    version: tuple[int, int, int] | None

    def describe(self) -> str:
        return f"DaemonSet {self.key} ({self.image or 'image unknown'})"


@dataclass(frozen=True)
class ClusterCni:
    """What the API says about the CNI: its DaemonSets and which nodes their pods run on."""
    problem: str = ""  # why the API could not be read; "" when it was
    daemonsets: tuple[CniDaemonSet, ...] = ()
    pods: dict[str, frozenset[str]] = field(default_factory=dict)  # node name -> CNIs
    nodes: dict[str, tuple[str, ...]] = field(default_factory=dict)  # node name -> its IPs
    calico_rpf_exception: str | None = None

    def node_name(self, host_name: str, ip: str) -> str | None:
        if host_name in self.nodes:
            return host_name
        return next((n for n, ips in self.nodes.items() if ip in ips), None)

    def calico(self) -> CniDaemonSet | None:
        return next((d for d in self.daemonsets if "calico" in d.cnis), None)


def _agent_image(ds: dict, cnis: tuple[str, ...]) -> str:
    containers = ds.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []
    want = ("calico-node",) if "calico" in cnis else ("cilium-agent", "kube-flannel")
    for c in containers:
        if c.get("name") in want:
            return str(c.get("image") or "")
    return str(containers[0].get("image") or "") if containers else ""


def cluster_view(state: ApiState | str, ignores_loose_rpf=None) -> ClusterCni:
    """ClusterCni from the API state (or the reason there is none). `ignores_loose_rpf`:
    the function reading Calico's IgnoreLooseRPF (checks.sysctl), passed to avoid a cycle."""
    if isinstance(state, str):
        return ClusterCni(problem=state)
    sets = []
    for ds in state.daemonsets:
        meta = ds.get("metadata", {})
        cnis = daemonset_cnis(meta.get("name", ""))
        if cnis:
            image = _agent_image(ds, cnis)
            sets.append(CniDaemonSet(f"{meta.get('namespace')}/{meta.get('name')}", cnis,
                                     image, image_version(image)))
    owners = {d.key: d.cnis for d in sets}
    pods: dict[str, set[str]] = {}
    for pod in state.pods:
        meta = pod.get("metadata", {})
        for ref in meta.get("ownerReferences") or []:
            key = f"{meta.get('namespace')}/{ref.get('name')}"
            if ref.get("kind") == "DaemonSet" and key in owners:
                node = pod.get("spec", {}).get("nodeName")
                if node:
                    pods.setdefault(node, set()).update(owners[key])
    nodes = {}
    for n in state.nodes:
        ips = tuple(a.get("address", "") for a in n.get("status", {}).get("addresses") or [])
        nodes[n.get("metadata", {}).get("name", "")] = ips
    return ClusterCni("", tuple(sorted(sets, key=lambda d: d.key)),
                      {k: frozenset(v) for k, v in pods.items()}, nodes,
                      ignores_loose_rpf(state) if ignores_loose_rpf else None)


def describe_file(f: CniFile) -> str:
    ipams = []
    for ipam in f.ipams:
        kind = str(ipam.get("type", "?"))
        if uses_pod_cidr(ipam):
            kind += " (usePodCidr: the node's podCIDR)"
        elif subnets := host_local_subnets(ipam):
            kind += f" ({', '.join(map(str, subnets))})"
        ipams.append(kind)
    return (f"{f.path}: plugins {', '.join(f.types) or '(none)'}"
            + (f"; ipam {', '.join(ipams)}" if ipams else ""))


@dataclass(frozen=True)
class NodeCni:
    cnis: frozenset[str]
    evidence: tuple[str, ...]
    active: CniFile | None = None
    calico: CniDaemonSet | None = None  # the Calico DaemonSet, for its version
    cluster: ClusterCni = field(default_factory=ClusterCni)

    @property
    def label(self) -> str:
        if {"calico", "flannel"} <= self.cnis and self.calico and "canal" in self.calico.key:
            return "Canal (Calico + flannel)"
        return " + ".join(NAMES[c] for c in sorted(self.cnis)) or "no CNI identified"

    def summary(self) -> str:
        return f"CNI on this node: {self.label} (" + "; ".join(self.evidence) + ")"

    @property
    def felix_reads_all(self) -> bool | None:
        """Whether Calico's Felix here reads conf/all/rp_filter (and exits above 1): True up
        to v3.11, False from v3.12; None: Calico runs but its version is unknown."""
        if "calico" not in self.cnis:
            return False
        version = self.calico.version if self.calico else None
        if version is None:
            return None
        return version[:2] <= FELIX_LAST_READING_ALL

    def calico_version(self) -> str:
        v = self.calico.version if self.calico else None
        return f"v{v[0]}.{v[1]}.{v[2]}" if v else "version unknown"


def on_node(node: NodeContext, cluster: ClusterCni) -> NodeCni:
    return detect(node.host.name, node_ip(node.host), node.facts, cluster)


def detect(host_name: str, ip: str, facts: NodeFacts, cluster: ClusterCni) -> NodeCni:
    cnis: set[str] = set()
    evidence = []
    conf_dir = facts.cni_dir
    active = conf_dir.active if conf_dir else None
    if conf_dir is None:
        evidence.append("/etc/cni/net.d not gathered")
    elif not conf_dir.exists:
        evidence.append("/etc/cni/net.d absent")
    elif active is None:
        names = [f.name for f in conf_dir.files] + list(conf_dir.others)
        evidence.append("/etc/cni/net.d: no loadable .conf/.conflist/.json"
                        + (f" ({', '.join(names)})" if names else " (empty)"))
    else:
        found = {PLUGIN_TYPES[t] for t in active.types if t in PLUGIN_TYPES}
        cnis |= found
        evidence.append(describe_file(active) + ("" if found else " (no known CNI plugin)"))
    seen = interfaces(facts.links).by_cni
    for cni, names in sorted(seen.items()):
        cnis.add(cni)
        shown = names[:4] + ([f"… {len(names) - 4} more"] if len(names) > 4 else [])
        evidence.append(f"interfaces {', '.join(shown)}")
    if cluster.problem:
        evidence.append(f"CNI DaemonSets not read: {cluster.problem}")
    else:
        name = cluster.node_name(host_name, ip)
        on_it = cluster.pods.get(name or "", frozenset())
        for ds in cluster.daemonsets:
            if set(ds.cnis) & on_it:
                evidence.append(f"{ds.describe()} has a pod on node {name}")
                cnis |= set(ds.cnis)
        if not on_it and not cnis:
            # no pod here (yet): a DaemonSet of the cluster is what will run on the node
            for ds in cluster.daemonsets:
                evidence.append(f"{ds.describe()} in the cluster (no pod on "
                                f"{name or host_name} yet)")
                cnis |= set(ds.cnis)
    calico = cluster.calico() if "calico" in cnis else None
    return NodeCni(frozenset(cnis), tuple(evidence), active, calico, cluster)


# --- the cluster's pod address plan, per IPAM ------------------------------------------------
@dataclass(frozen=True)
class Ipam:
    """How the cluster's CNI hands out pod addresses."""
    label: str                # "flannel", "Calico (calico-ipam)", "Cilium cluster-pool", ...
    uses_pod_cidr: bool       # the node's spec.podCIDR (kube-controller-manager's allocation)
    evidence: tuple[str, ...]
    known: bool = True


def cilium_ipam(state: ApiState) -> str | None:
    cm = state.configmaps.get("kube-system/cilium-config")
    if cm is None:
        return None
    return str((cm.get("data") or {}).get("ipam") or "cluster-pool")


def cluster_ipam(state: ApiState, facts: dict[str, NodeFacts | str]) -> Ipam:
    """The IPAM of the CNI the cluster runs: from its DaemonSets and ConfigMaps (API) and the
    nodes' active CNI configuration."""
    view = cluster_view(state)
    cnis = {c for d in view.daemonsets for c in d.cnis}
    ipam_types: dict[str, list[str]] = {}
    active_cnis: set[str] = set()  # the CNIs the nodes' active configurations name
    for host, f in sorted(facts.items()):
        if isinstance(f, str) or f.cni_dir is None or f.cni_dir.active is None:
            continue
        active = f.cni_dir.active
        active_cnis |= {PLUGIN_TYPES[t] for t in active.types if t in PLUGIN_TYPES}
        cnis |= active_cnis
        for ipam in active.ipams:
            kind = "host-local usePodCidr" if uses_pod_cidr(ipam) else str(ipam.get("type"))
            ipam_types.setdefault(kind, []).append(f"{host}:{active.path}")
    evidence = tuple([d.describe() for d in view.daemonsets]
                     + [f"ipam {k} in {', '.join(v)}" for k, v in sorted(ipam_types.items())])
    if "cilium" in cnis:
        mode = cilium_ipam(state)
        ev = (*evidence, f"kube-system/cilium-config ipam: {mode or '(ConfigMap absent)'}")
        if mode == "kubernetes":
            return Ipam("Cilium (ipam kubernetes)", True, ev)
        if mode == "cluster-pool":
            return Ipam("Cilium cluster-pool", False, ev)
        return Ipam(f"Cilium (ipam {mode or 'unknown'})", False, ev, known=False)
    if "calico" in cnis and "flannel" in cnis and "calico" not in active_cnis:
        # calico-node beside flannel with flannel's configuration active on the nodes:
        # Calico enforces policy only, the pods' addresses are flannel's (node podCIDRs)
        return Ipam("flannel (Calico for policy only)", True, evidence)
    if "calico" in cnis:
        if "host-local usePodCidr" in ipam_types or any(
                "canal" in d.key for d in view.daemonsets):
            return Ipam("Calico (host-local usePodCidr)", True, evidence)
        if ipam_types and "calico-ipam" not in ipam_types:
            return Ipam(f"Calico (ipam {', '.join(sorted(ipam_types))})", False, evidence,
                        known=False)
        return Ipam("Calico (calico-ipam: IPPools)", False, evidence)
    if "flannel" in cnis:
        return Ipam("flannel", True, evidence)
    if "host-local usePodCidr" in ipam_types:
        return Ipam("host-local usePodCidr", True, evidence)
    return Ipam("no CNI identified", False, evidence, known=False)


def calico_pools(state: ApiState) -> list[tuple[str, Net, bool]]:
    """(name, cidr, disabled) of each Calico IPPool whose cidr parses."""
    out = []
    for pool in state.calico_ippools:
        spec = pool.get("spec") or {}
        try:
            cidr = ipaddress.ip_network(str(spec.get("cidr", "")), strict=False)
        except ValueError:
            continue
        out.append((pool.get("metadata", {}).get("name", "?"), cidr,
                    bool(spec.get("disabled"))))
    return out


def cilium_pool(state: ApiState) -> list[Net]:
    """cluster-pool-ipv4-cidr (and -ipv6-): one CIDR or several (comma or space separated)."""
    data = (state.configmaps.get("kube-system/cilium-config") or {}).get("data") or {}
    out = []
    for key in ("cluster-pool-ipv4-cidr", "cluster-pool-ipv6-cidr"):
        for part in re.split(r"[,\s]+", str(data.get(key) or "")):
            if part:
                try:
                    out.append(ipaddress.ip_network(part, strict=False))
                except ValueError:
                    continue
    return out


def cilium_node_cidrs(state: ApiState) -> dict[str, list[Net]]:
    """CiliumNode name -> spec.ipam.podCIDRs."""
    out = {}
    for cn in state.cilium_nodes:
        cidrs = []
        for text in ((cn.get("spec") or {}).get("ipam") or {}).get("podCIDRs") or []:
            try:
                cidrs.append(ipaddress.ip_network(str(text), strict=False))
            except ValueError:
                continue
        out[cn.get("metadata", {}).get("name", "?")] = cidrs
    return out
