"""Kernel network settings the pod network depends on."""

from __future__ import annotations

from kubeaccept.checks import NodeContext
from kubeaccept.facts import number
from kubeaccept.model.apistate import ApiState
from kubeaccept.model.findings import Finding, passed
from kubeaccept.model.registry import Context, check
from kubeaccept.model.roles import NODE

# Only conf/all: Calico's Felix reads /proc/sys/net/ipv4/conf/all/rp_filter alone and exits
# when it is above 1; it sets conf/default to 1 itself (felix/dataplane/linux/int_dataplane.go).
RP_FILTER_WHY = (
    "Calico's calico-node exits and crash-loops (CrashLoopBackOff) with "
    "\"[FATAL] Kernel's RPF check is set to 'loose'.  This would allow endpoints to spoof their "
    "IP address.  Calico requires net.ipv4.conf.all.rp_filter to be set to 0 or 1.\" (field "
    "report 01); conf/all also raises every interface to at least its value"
)
INVALID_WHY = ("rp_filter is 0 (off), 1 (strict) or 2 (loose); the kernel treats any other "
               "value like loose, and Calico's Felix exits on conf/all above 1")

LOOSE_NOTE = ("loose rp_filter (2) accepted because Calico is told to ignore it "
              "(IgnoreLooseRPF): the node does not stop pods spoofing source addresses")


def calico_ignores_loose_rpf(state: ApiState) -> str | None:
    """Evidence that Calico's Felix runs with IgnoreLooseRPF, or None. Felix's environment
    overrides the FelixConfiguration, so an explicit FELIX_IGNORELOOSERPF=false wins."""
    overridden = False
    for ds in state.daemonsets:
        meta = ds.get("metadata", {})
        if meta.get("name") != "calico-node":
            continue
        pod_spec = ds.get("spec", {}).get("template", {}).get("spec", {})
        for c in pod_spec.get("containers") or []:
            for env in c.get("env") or []:
                if env.get("name") != "FELIX_IGNORELOOSERPF" or "value" not in env:
                    continue
                if str(env["value"]).strip().lower() == "true":
                    return (f"DaemonSet {meta.get('namespace')}/calico-node: "
                            f"FELIX_IGNORELOOSERPF={env['value']}")
                overridden = True
    if overridden:
        return None
    for fc in state.felix_configurations:
        if (fc.get("spec") or {}).get("ignoreLooseRPF") is True:
            return f"FelixConfiguration {fc.get('metadata', {}).get('name')}: ignoreLooseRPF: true"
    return None


def conf_key(iface: str, name: str = "rp_filter") -> str:
    """The key as procps sysctl reads it: dots separate, so a dot inside an interface name
    (flannel.1, eth0.100) is written as `/` (net.ipv4.conf.flannel/1.rp_filter)."""
    return f"net.ipv4.conf.{iface.replace('.', '/')}.{name}"


def rp_filters(sysctls: dict[str, str]) -> dict[str, str]:
    """Interface -> rp_filter from gather.sh's `net.ipv4.conf.<iface>.rp_filter VALUE` lines.
    The name is what sits between the fixed prefix and suffix, dots included (flannel.1)."""
    out = {}
    for key, value in sysctls.items():
        if key.startswith("net.ipv4.conf.") and key.endswith(".rp_filter"):
            iface = key.removeprefix("net.ipv4.conf.").removesuffix(".rp_filter")
            if iface:
                out[iface] = value
    return out


def _persist(keys: list[str]) -> str:
    return (f"sysctl -w {' '.join(keys)} and persist it in /etc/sysctl.d/ (e.g. "
            "/etc/sysctl.d/90-kubernetes.conf), then `sysctl --system`")


def _loose_iface_note(iface: str, all_value: int, value: int) -> str:
    if iface == "default":
        return (f"conf/default is loose (max(all={all_value}, default={value}) = 2): interfaces "
                "created from now on (pod veths, cni0, tunnels) start in loose reverse-path "
                "filtering, which drops a packet only when its source has no route back through "
                "any interface (RFC 3704, ip-sysctl.rst); Calico's Felix sets conf/default to 1 "
                f"itself. For strict: sysctl -w {conf_key(iface)}=1")
    return (f"loose reverse-path filtering on {iface} (max(all={all_value}, {iface}={value}) = 2):"
            f" the kernel drops a packet arriving on {iface} only when its source address has "
            "no route back through any interface (RFC 3704 loose mode, ip-sysctl.rst); strict "
            "mode (1) would also drop packets whose best route back leaves by another interface "
            "(asymmetric routing). Calico does not check it (Felix reads only conf/all) and "
            f"asymmetric routes keep working; what it costs is strict anti-spoofing on {iface}. "
            f"For strict: sysctl -w {conf_key(iface)}=1")


@check("node_rp_filter",
       ("`conf/all` rp_filter is 0 or 1 — Calico's requirement (field report 01); an "
        "interface's own loose 2 is shown in a note; fixes use procps' `/` for dotted names "
        "(`net.ipv4.conf.flannel/1.rp_filter`)"),
       area="network",
       roles=NODE,
       needs=('node', 'calico_rpf_exception'),
       reads=("sysctl net.ipv4.conf.*.rp_filter",
              "calico-node env and FelixConfigurations (API)"),
       asserts=("`conf/all` is 0 or 1 — Calico's Felix reads only "
                "`/proc/sys/net/ipv4/conf/all/rp_filter` and exits above 1 (it sets `default`"
                " to 1 itself); per interface (`default` too) the effective value "
                "max(`conf/all`, `conf/<iface>`) is shown. `conf/all` = 2 fails on every "
                "interface with Calico's text, unless the API shows calico-node with "
                "`FELIX_IGNORELOOSERPF=true` or a FelixConfiguration with `ignoreLooseRPF: "
                "true` (passes with a note). An interface's own 2 with `conf/all` at 0/1 is "
                "the kernel's loose mode (RFC 3704: drops a packet only when its source has "
                "no route back at all; strict 1 also drops asymmetric routes): it passes with"
                " a note saying what it costs (strict anti-spoofing on that interface), not "
                "Calico's message. Values above 2 fail. Fixes write keys as procps `sysctl` "
                "reads them: a dot in an interface name becomes `/` (`sysctl -w "
                "net.ipv4.conf.flannel/1.rp_filter=1`); facts keep gather.sh's "
                "`net.ipv4.conf.flannel.1.rp_filter`, the interface being everything between "
                "prefix and suffix"),
       prevents=("calico-node crash-loops: `[FATAL] Kernel's RPF check is set to 'loose'…` "
                 "(report 01)"))
def node_rp_filter(ctx: Context) -> list[Finding]:
    """The kernel applies max(conf/all, conf/<iface>); 'default' is what new interfaces get.
    conf/all above 1 is Calico's fatal case (field report 01) unless Calico is told to accept
    it (calico_exception: the evidence). An interface's own loose value with conf/all at 0 or 1
    is the kernel's documented loose mode: shown in a note, not a failure."""
    node = ctx.node
    calico_exception = ctx.calico_rpf_exception
    values = rp_filters(node.facts.sysctls)
    raw_all = values.pop("all", None)
    all_value = number(raw_all or "")
    if all_value is None:
        return [Finding(node.host.name, False,
                        f"net.ipv4.conf.all.rp_filter unreadable ({raw_all or 'absent'})",
                        "0 or 1", fix="check /proc/sys/net/ipv4/conf/all/rp_filter on the node")]
    all_evidence = f"/proc/sys/net/ipv4/conf/all/rp_filter = {all_value}"
    findings = []
    for iface, raw in sorted(values.items()):
        subject = f"{node.host.name}:{iface}"
        evidence = (all_evidence, f"/proc/sys/net/ipv4/conf/{iface}/rp_filter = {raw}")
        value = number(raw)
        if value is None:
            findings.append(Finding(subject, False, f"{iface}: rp_filter unreadable ({raw})",
                                    "0 or 1", fix=f"check /proc/sys/net/ipv4/conf/{iface}/"
                                    "rp_filter on the node", evidence=evidence))
            continue
        effective = max(all_value, value)
        observed = f"effective rp_filter {effective} = max(all={all_value}, {iface}={value})"
        keys = [f"{conf_key(k)}=1" for k, v in (("all", all_value), (iface, value)) if v > 1]
        if effective in (0, 1):
            findings.append(passed(subject, observed, "0 or 1", *evidence))
        elif effective == 2 and all_value < 2:
            findings.append(Finding(
                subject, True, f"{observed} (loose on {iface} only)",
                "0 or 1 on conf/all; 2 on an interface is the kernel's loose mode",
                evidence=evidence, note=_loose_iface_note(iface, all_value, value)))
        elif effective == 2 and calico_exception:
            findings.append(Finding(
                subject, True, f"{observed} (loose), allowed: {calico_exception}",
                "0 or 1 (2 with Calico IgnoreLooseRPF)",
                evidence=(*evidence, calico_exception), note=LOOSE_NOTE))
        elif effective == 2:
            findings.append(Finding(subject, False, observed, "0 or 1", RP_FILTER_WHY,
                                    _persist(keys), evidence))
        else:
            why = RP_FILTER_WHY if all_value > 1 and not calico_exception else INVALID_WHY
            findings.append(Finding(subject, False, f"{observed} (not a defined mode)",
                                    "0 or 1", why, _persist(keys), evidence))
    if not findings:
        findings.append(Finding(
            node.host.name, all_value in (0, 1), f"net.ipv4.conf.all.rp_filter = {all_value};"
            " no per-interface rp_filter was listed", "0 or 1",
            "" if all_value in (0, 1) else RP_FILTER_WHY,
            "" if all_value in (0, 1) else _persist([f"{conf_key('all')}=1"]), (all_evidence,)))
    return findings


def _must_be_one(ctx: NodeContext, key: str, why: str, fix: str) -> list[Finding]:
    value = ctx.facts.sysctls.get(key)
    evidence = f"/proc/sys/{key.replace('.', '/')} = {value}"
    if value == "1":
        return [passed(ctx.host.name, f"{key} = 1", "1", evidence)]
    return [Finding(ctx.host.name, False, f"{key} = {value}", "1", why, fix, (evidence,))]


@check("node_ip_forward",
       "`net.ipv4.ip_forward = 1`",
       area="network",
       roles=NODE,
       reads=("sysctl net.ipv4.ip_forward",),
       asserts="`net.ipv4.ip_forward = 1`",
       prevents="pods lose other nodes, Services, DNS; kubeadm preflight error")
def node_ip_forward(ctx: Context) -> list[Finding]:
    node = ctx.node
    return _must_be_one(
        node, "net.ipv4.ip_forward",
        "the node stops routing pod traffic: pods lose other nodes, Services and DNS; "
        "kubeadm preflight fails with [ERROR FileContent--proc-sys-net-ipv4-ip_forward]",
        "sysctl -w net.ipv4.ip_forward=1 and persist `net.ipv4.ip_forward = 1` in "
        "/etc/sysctl.d/k8s.conf")


BRIDGE_NF_FIX = ("modprobe br_netfilter && sysctl -w net.bridge.bridge-nf-call-iptables=1; "
                 "persist both: `br_netfilter` in /etc/modules-load.d/k8s.conf and "
                 "`net.bridge.bridge-nf-call-iptables = 1` in /etc/sysctl.d/k8s.conf (kubeadm's "
                 "install guide: \"Forwarding IPv4 and letting iptables see bridged traffic\")")


def _bridge_nf_why(ctx: NodeContext) -> str:
    return ("traffic between pods on the same Linux bridge is switched, not routed, so iptables "
            "never sees it: kube-proxy's Service NAT misses it and pods on the bridge cannot "
            f"reliably reach Services whose endpoints sit on the same node (e.g. the cluster DNS "
            f"{ctx.settings.dns_ip}); Kubernetes' network plugin requirements: a plugin that "
            "connects containers to a Linux bridge must set net/bridge/bridge-nf-call-iptables "
            "to 1 for kube-proxy to work")


@check("node_bridge_nf_call_iptables",
       ("`net.bridge.bridge-nf-call-iptables = 1` where br_netfilter is loaded; br_netfilter "
        "loaded wherever a Linux bridge (`cni0`, `docker0`) has ports"),
       area="network",
       roles=NODE,
       reads=("sysctl net.bridge.bridge-nf-call-iptables",
              "/sys/class/net/*/bridge, brif/"),
       asserts=("`net.bridge.bridge-nf-call-iptables = 1` where br_netfilter is loaded; where"
                " it is not (no `/proc/sys/net/bridge`), fails if a Linux bridge has ports — "
                "bridges are the interfaces with `/sys/class/net/<name>/bridge/`, their ports"
                " `/sys/class/net/<name>/brif/*` (e.g. `cni0` with pod veths, `docker0` with "
                "containers) — naming bridge and ports; passes saying so when there is no "
                "bridge (routed CNI) or none has ports (with a note)"),
       prevents=("bridged pod traffic skips kube-proxy's rules: Services unreachable from "
                 "pods (Kubernetes' network plugin requirements; kubeadm's \"Forwarding IPv4 "
                 "and letting iptables see bridged traffic\")"))
def node_bridge_nf_call_iptables(ctx: Context) -> list[Finding]:
    """bridge-nf-call-iptables must be 1 where br_netfilter is loaded; where it is not, it
    matters only if a Linux bridge (cni0, docker0, ...) has ports, i.e. switches traffic."""
    node = ctx.node
    key = "net.bridge.bridge-nf-call-iptables"
    if key in node.facts.sysctls:
        return _must_be_one(node, key, _bridge_nf_why(node), BRIDGE_NF_FIX)
    absent = "/proc/sys/net/bridge/bridge-nf-call-iptables absent (br_netfilter not loaded)"
    expected = "br_netfilter loaded and net.bridge.bridge-nf-call-iptables = 1 where a bridge " \
               "carries traffic"
    bridges = node.facts.bridges
    if bridges is None:
        return [Finding(node.host.name, True, "br_netfilter not loaded; the node's bridges "
                        "were not gathered", expected, evidence=(absent,), note=(
                            "which interfaces are Linux bridges is unknown (no `bridges` "
                            "section in the facts): bridged pod traffic would bypass "
                            "kube-proxy's iptables rules"))]
    listing = [f"/sys/class/net/{b}/brif: {', '.join(p) or '(no ports)'}"
               for b, p in sorted(bridges.items())]
    busy = {b: p for b, p in sorted(bridges.items()) if p}
    if busy:
        carrying = "; ".join(f"bridge {b} has {len(p)} port(s): {', '.join(p)}"
                             for b, p in busy.items())
        return [Finding(node.host.name, False, f"br_netfilter not loaded while {carrying}",
                        expected, _bridge_nf_why(node), BRIDGE_NF_FIX, (absent, *listing))]
    if bridges:
        return [Finding(node.host.name, True, "br_netfilter not loaded; bridge(s) "
                        f"{', '.join(sorted(bridges))} have no ports: nothing is bridged now",
                        expected, evidence=(absent, *listing), note=(
                            f"bridge(s) {', '.join(sorted(bridges))} without br_netfilter: a pod "
                            "attached later would bypass kube-proxy's iptables rules; load "
                            "br_netfilter (/etc/modules-load.d/k8s.conf) if pods use them"))]
    return [passed(node.host.name, "br_netfilter not loaded; no Linux bridge on the node "
                   "(pod traffic is routed, not bridged)", expected, absent,
                   "/sys/class/net/*/bridge: none")]
