"""Kernel network settings the pod network depends on."""

from __future__ import annotations

from ..apistate import ApiState
from ..findings import Finding, passed
from . import NodeContext

RP_FILTER_WHY = (
    "Calico's calico-node exits and crash-loops (CrashLoopBackOff) with "
    "\"[FATAL] Kernel's RPF check is set to 'loose'.  This would allow endpoints to spoof their "
    "IP address.  Calico requires net.ipv4.conf.all.rp_filter to be set to 0 or 1.\"; "
    "strict/loose reverse-path filtering also drops asymmetric pod traffic"
)

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


def rp_filter(ctx: NodeContext, calico_exception: str | None = None) -> list[Finding]:
    """The kernel applies max(conf/all, conf/<iface>); 'default' is what new interfaces get.
    Loose mode (2) is fine where Calico is told to accept it (calico_exception: the evidence)."""
    cid = "node_rp_filter"
    sysctls = ctx.facts.sysctls
    all_value = sysctls.get("net.ipv4.conf.all.rp_filter")
    if all_value is None:
        return [Finding(cid, ctx.host.name, False, "net.ipv4.conf.all.rp_filter unreadable",
                        "0 or 1", fix="check /proc/sys/net/ipv4/conf/all/rp_filter on the node")]
    findings = []
    for key, value in sorted(sysctls.items()):
        if not (key.startswith("net.ipv4.conf.") and key.endswith(".rp_filter")):
            continue
        iface = key.removeprefix("net.ipv4.conf.").removesuffix(".rp_filter")
        if iface == "all":
            continue
        effective = max(int(all_value), int(value))
        subject = f"{ctx.host.name}:{iface}"
        observed = f"effective rp_filter {effective} = max(all={all_value}, {iface}={value})"
        evidence = (f"/proc/sys/net/ipv4/conf/all/rp_filter = {all_value}",
                    f"/proc/sys/net/ipv4/conf/{iface}/rp_filter = {value}")
        if effective in (0, 1):
            findings.append(passed(cid, subject, observed, "0 or 1", *evidence))
            continue
        if effective == 2 and calico_exception:
            findings.append(Finding(
                cid, subject, True, f"{observed} (loose), allowed: {calico_exception}",
                "0 or 1 (2 with Calico IgnoreLooseRPF)",
                evidence=(*evidence, calico_exception), note=LOOSE_NOTE))
            continue
        keys = [f"net.ipv4.conf.{k}.rp_filter=1"
                for k, v in (("all", all_value), (iface, value)) if int(v) > 1]
        findings.append(Finding(
            cid, subject, False, observed, "0 or 1", RP_FILTER_WHY,
            f"sysctl -w {' '.join(keys)} and persist it in /etc/sysctl.d/ (e.g. "
            "/etc/sysctl.d/90-kubernetes.conf), then `sysctl --system`",
            evidence))
    return findings


def _must_be_one(ctx: NodeContext, cid: str, key: str, why: str, fix: str) -> list[Finding]:
    value = ctx.facts.sysctls.get(key)
    evidence = f"/proc/sys/{key.replace('.', '/')} = {value}"
    if value == "1":
        return [passed(cid, ctx.host.name, f"{key} = 1", "1", evidence)]
    return [Finding(cid, ctx.host.name, False, f"{key} = {value}", "1", why, fix, (evidence,))]


def ip_forward(ctx: NodeContext) -> list[Finding]:
    return _must_be_one(
        ctx, "node_ip_forward", "net.ipv4.ip_forward",
        "the node stops routing pod traffic: pods lose other nodes, Services and DNS; "
        "kubeadm preflight fails with [ERROR FileContent--proc-sys-net-ipv4-ip_forward]",
        "sysctl -w net.ipv4.ip_forward=1 and persist `net.ipv4.ip_forward = 1` in "
        "/etc/sysctl.d/k8s.conf")


def bridge_nf_call_iptables(ctx: NodeContext) -> list[Finding]:
    key = "net.bridge.bridge-nf-call-iptables"
    if key not in ctx.facts.sysctls:
        return [passed("node_bridge_nf_call_iptables", ctx.host.name, "br_netfilter not loaded",
                       "1 where loaded", "/proc/sys/net/bridge/bridge-nf-call-iptables absent")]
    return _must_be_one(
        ctx, "node_bridge_nf_call_iptables", key,
        "bridged pod traffic bypasses iptables, so kube-proxy's Service rules never see it: "
        "pods on the same bridge cannot reach Services such as kube-dns 10.96.0.10",
        "sysctl -w net.bridge.bridge-nf-call-iptables=1 and persist it in "
        "/etc/sysctl.d/k8s.conf (load br_netfilter at boot via /etc/modules-load.d/k8s.conf)")
