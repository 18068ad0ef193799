"""Kernel network settings the pod network depends on."""

from __future__ import annotations

from kubeaccept.checks import NodeContext
from kubeaccept.checks.cni import NodeCni, on_node
from kubeaccept.facts import number
from kubeaccept.facts.cni import cilium_interfaces
from kubeaccept.model.apistate import ApiState
from kubeaccept.model.findings import Finding, passed
from kubeaccept.model.registry import Context, check
from kubeaccept.model.roles import NODE

# Felix's own words when conf/all/rp_filter is above 1, as felix v3.11.3 prints them
# (dataplane/linux/int_dataplane.go: log.Fatal; calico-node shows it as "[FATAL] ...", field
# report 01). Felix v3.12 dropped the check (commit 9eabe46c3, "Use iptables for ipv4 RPF
# check (#2189)"): it drops spoofed workload packets with an iptables rpfilter rule instead.
FELIX_FATAL = ("Kernel's RPF check is set to 'loose'.  This would allow endpoints to spoof "
               "their IP address.  Calico requires net.ipv4.conf.all.rp_filter to be set to 0 "
               "or 1. If you require loose RPF and you are not concerned about spoofing, this "
               "check can be disabled by setting the IgnoreLooseRPF configuration parameter to "
               "'true'.")
LOOSE_MODE = ("the kernel drops a packet only when its source address has no route back "
              "through any interface (RFC 3704 loose mode, ip-sysctl.rst); strict mode (1) also "
              "drops packets whose best route back leaves by another interface (asymmetric "
              "routing)")
LOOSE_NOTE = ("loose rp_filter (2) accepted because Calico is told to ignore it "
              "(IgnoreLooseRPF): the node does not stop pods spoofing source addresses")
# Cilium: the agent writes conf/all=0 when it starts (pkg/datapath/loader/base.go,
# Reinitialize) and rp_filter=0 on each device it makes; its sysctlfix init container writes
# these lines (tools/sysctlfix/main.go) so that systemd-sysctl, which udev runs for every new
# interface (systemd's 99-systemd.rules), does not turn it back on for lxc*/cilium_*.
CILIUM_SYSCTL_FILE = "/etc/sysctl.d/99-zzz-override_cilium.conf"
CILIUM_WHY = (
    "Cilium needs reverse-path filtering off on its interfaces: its agent sets "
    "net.ipv4.conf.all.rp_filter=0 when it starts and rp_filter=0 on the devices it makes "
    "(pkg/datapath/loader), and its sysctlfix writes `net.ipv4.conf.lxc*.rp_filter = 0` and "
    f"`net.ipv4.conf.cilium_*.rp_filter = 0` to {CILIUM_SYSCTL_FILE}, because the kernel "
    "drops the packets Cilium's BPF programs redirect through them when rp_filter is on "
    "(Cilium issue 10645: systemd 245's `net.ipv4.conf.*.rp_filter = 2`, applied by "
    "systemd-sysctl to each new interface, broke pod traffic leaving the node); the kernel "
    "uses max(conf/all, conf/<iface>), so conf/all must be 0 as well")


def felix_why(version: str, known: bool) -> str:
    why = (f"Calico's calico-node ({version}) exits and crash-loops (CrashLoopBackOff): Felix "
           "up to v3.11 reads /proc/sys/net/ipv4/conf/all/rp_filter and stops with "
           f"\"[FATAL] {FELIX_FATAL}\" (field report 01); conf/all also raises every "
           "interface to at least its value")
    if not known:
        why += ("; Calico's version is unknown here, and Felix v3.12 and later no longer read "
                "conf/all: find it with `kubectl get ds -A -o "
                "jsonpath='{..containers[?(@.name==\"calico-node\")].image}'`")
    return why


def invalid_why(felix_reads_all: bool | None) -> str:
    why = ("rp_filter is 0 (off), 1 (strict) or 2 (loose); the kernel treats any other "
           "value like loose")
    return why + ("; Calico's Felix up to v3.11 exits on conf/all above 1"
                  if felix_reads_all is not False else "")


def calico_ignores_loose_rpf(state: ApiState) -> str | None:
    """Evidence that Calico's Felix runs with IgnoreLooseRPF, or None. Felix's environment
    overrides the FelixConfiguration, so an explicit FELIX_IGNORELOOSERPF=false wins."""
    overridden = False
    for ds in state.daemonsets:
        meta = ds.get("metadata", {})
        if meta.get("name") not in ("calico-node", "canal"):
            continue
        pod_spec = ds.get("spec", {}).get("template", {}).get("spec", {})
        for c in pod_spec.get("containers") or []:
            for env in c.get("env") or []:
                if env.get("name") != "FELIX_IGNORELOOSERPF" or "value" not in env:
                    continue
                if str(env["value"]).strip().lower() == "true":
                    return (f"DaemonSet {meta.get('namespace')}/{meta.get('name')}: "
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


def _cilium_fix(keys: list[str]) -> str:
    return (f"sysctl -w {' '.join(keys)}; persist it in {CILIUM_SYSCTL_FILE} "
            "(`net.ipv4.conf.all.rp_filter = 0`, `net.ipv4.conf.lxc*.rp_filter = 0`, "
            "`net.ipv4.conf.cilium_*.rp_filter = 0`) and find what set it: "
            "`systemd-analyze cat-config sysctl.d | grep rp_filter`")


def _loose_iface_note(iface: str, all_value: int, value: int, calico: bool) -> str:
    if iface == "default":
        return (f"conf/default is loose (max(all={all_value}, default={value}) = 2): interfaces "
                "created from now on (pod veths, cni0, tunnels) start in loose reverse-path "
                "filtering, which drops a packet only when its source has no route back through "
                "any interface (RFC 3704, ip-sysctl.rst)"
                + ("; Calico's Felix sets conf/default to 1 itself" if calico else "")
                + f". For strict: sysctl -w {conf_key(iface)}=1")
    return (f"loose reverse-path filtering on {iface} (max(all={all_value}, {iface}={value}) = 2):"
            f" {LOOSE_MODE}."
            + (" Calico does not check it (Felix reads only conf/all) and" if calico else "")
            + " asymmetric routes keep working; what it costs is strict anti-spoofing on "
            f"{iface}. For strict: sysctl -w {conf_key(iface)}=1")


def _loose_all_note(cni: NodeCni, exception: str | None) -> str:
    """conf/all = 2 where no Felix reads it: the kernel's loose mode, said for this CNI."""
    cost = (f"conf/all is loose (2), so every interface filters at least loosely: {LOOSE_MODE}."
            " What it costs is strict anti-spoofing on the host's interfaces. For strict: "
            f"sysctl -w {conf_key('all')}=1")
    if "calico" in cni.cnis:
        told = (f" ({exception} has no effect any more: the parameter was removed)"
                if exception else "")
        return (f"Calico {cni.calico_version()}'s Felix does not read conf/all (since v3.12 it "
                "drops spoofed workload packets with its own iptables rpfilter rule), so "
                f"calico-node runs with it{told}. " + cost)
    if not cni.cnis:
        return ("no CNI identified on this node (" + "; ".join(cni.evidence) + "): only the "
                "kernel's rules were applied; a Calico up to v3.11 installed later would "
                "refuse conf/all above 1. " + cost)
    return f"{cni.label} does not need strict mode: " + cost


@check("node_rp_filter",
       ("rp_filter per the node's CNI: `conf/all` 0 or 1 where Calico up to v3.11 runs (field "
        "report 01); 0 on Cilium's `cilium_*`/`lxc*` interfaces; elsewhere the kernel's loose "
        "mode is a note; fixes use procps' `/` for dotted names "
        "(`net.ipv4.conf.flannel/1.rp_filter`)"),
       area="network",
       roles=NODE,
       needs=('node', 'cluster_cni'),
       reads=("sysctl net.ipv4.conf.*.rp_filter", "/etc/cni/net.d, ip link",
              "CNI DaemonSets and their pods, calico-node env, FelixConfigurations (API)"),
       asserts=("The CNI comes from the node (the CNI config the runtime loads: the first "
                "`/etc/cni/net.d` *.conf/*.conflist/*.json by name; its interfaces: cali*, "
                "vxlan.calico, flannel.1, cilium_*, lxc*) and the API (calico-node, canal, "
                "kube-flannel-ds, cilium DaemonSets and their pod on the node). Where Calico "
                "runs and its calico-node image is up to v3.11 (or of unknown version), "
                "`conf/all` must be 0 or 1 — Felix v3.11 reads only "
                "`/proc/sys/net/ipv4/conf/all/rp_filter` and exits above 1 with \"[FATAL] "
                "Kernel's RPF check is set to 'loose'…\" — unless calico-node has "
                "`FELIX_IGNORELOOSERPF=true` or a FelixConfiguration `ignoreLooseRPF: true` "
                "(passes with a note); Felix v3.12+ (its own iptables rpfilter rule) and every"
                " other CNI: `conf/all` = 2 passes with a note on what loose mode costs, "
                "without Calico's words. Where Cilium runs, the effective value "
                "max(`conf/all`, `conf/<iface>`) on `cilium_*` and `lxc*` must be 0 (its agent"
                " sets both; its sysctlfix writes `/etc/sysctl.d/99-zzz-override_cilium.conf`)"
                ". An interface's own 2 is the kernel's loose mode (RFC 3704): a note. Values "
                "above 2 fail. No CNI identified: said, and only the kernel's rules apply. "
                "Fixes write keys as procps `sysctl` reads them: a dot in an interface name "
                "becomes `/` (`sysctl -w net.ipv4.conf.flannel/1.rp_filter=1`)"),
       prevents=("calico-node (≤ v3.11) crash-loops: `[FATAL] Kernel's RPF check is set to "
                 "'loose'…` (report 01); Cilium pod traffic dropped by rp_filter on lxc*"))
def node_rp_filter(ctx: Context) -> list[Finding]:
    """The kernel applies max(conf/all, conf/<iface>); 'default' is what new interfaces get.
    Which values are wrong depends on the CNI the node runs (checks.cni)."""
    node = ctx.node
    cni = on_node(node, ctx.cluster_cni)
    felix = cni.felix_reads_all  # True / None (unknown version): conf/all above 1 is fatal
    exception = cni.cluster.calico_rpf_exception if "calico" in cni.cnis else None
    values = rp_filters(node.facts.sysctls)
    raw_all = values.pop("all", None)
    all_value = number(raw_all or "")
    cni_line = cni.summary()
    if all_value is None:
        return [Finding(node.host.name, False,
                        f"net.ipv4.conf.all.rp_filter unreadable ({raw_all or 'absent'})",
                        "0 or 1", fix="check /proc/sys/net/ipv4/conf/all/rp_filter on the node",
                        evidence=(cni_line,))]
    all_evidence = f"/proc/sys/net/ipv4/conf/all/rp_filter = {all_value}"
    cilium = set()
    if "cilium" in cni.cnis:
        cilium = set(cilium_interfaces([*node.facts.links, *values]))
    findings = []
    for iface, raw in sorted(values.items()):
        subject = f"{node.host.name}:{iface}"
        evidence = (all_evidence, f"/proc/sys/net/ipv4/conf/{iface}/rp_filter = {raw}", cni_line)
        value = number(raw)
        if value is None:
            findings.append(Finding(subject, False, f"{iface}: rp_filter unreadable ({raw})",
                                    "0 or 1", fix=f"check /proc/sys/net/ipv4/conf/{iface}/"
                                    "rp_filter on the node", evidence=evidence))
            continue
        effective = max(all_value, value)
        observed = f"effective rp_filter {effective} = max(all={all_value}, {iface}={value})"
        if iface in cilium:
            if effective == 0:
                findings.append(passed(subject, observed, "0 (Cilium interface)", *evidence))
            else:
                keys = [f"{conf_key(k)}=0" for k, v in (("all", all_value), (iface, value)) if v]
                findings.append(Finding(subject, False, observed, "0 (Cilium interface)",
                                        CILIUM_WHY, _cilium_fix(keys), evidence))
            continue
        keys = [f"{conf_key(k)}=1" for k, v in (("all", all_value), (iface, value)) if v > 1]
        if effective in (0, 1):
            findings.append(passed(subject, observed, "0 or 1", *evidence))
        elif effective == 2 and all_value < 2:
            findings.append(Finding(
                subject, True, f"{observed} (loose on {iface} only)",
                "0 or 1 on conf/all; 2 on an interface is the kernel's loose mode",
                evidence=evidence,
                note=_loose_iface_note(iface, all_value, value, "calico" in cni.cnis)))
        elif effective == 2 and felix is not False and exception:
            findings.append(Finding(
                subject, True, f"{observed} (loose), allowed: {exception}",
                "0 or 1 (2 with Calico IgnoreLooseRPF)",
                evidence=(*evidence, exception), note=LOOSE_NOTE))
        elif effective == 2 and felix is not False:
            findings.append(Finding(subject, False, observed,
                                    f"0 or 1 (Calico {cni.calico_version()})",
                                    felix_why(cni.calico_version(), felix is True),
                                    _persist(keys), evidence))
        elif effective == 2:
            findings.append(Finding(subject, True, f"{observed} (loose)",
                                    f"0, 1 or 2 ({cni.label})", evidence=evidence,
                                    note=_loose_all_note(cni, exception)))
        else:
            why = (felix_why(cni.calico_version(), felix is True)
                   if all_value > 1 and felix is not False and not exception
                   else invalid_why(felix))
            findings.append(Finding(subject, False, f"{observed} (not a defined mode)",
                                    "0 or 1", why, _persist(keys), evidence))
    if "cilium" in cni.cnis and not cilium:
        # Cilium's agent has made no interface here yet: conf/all is what they will get
        findings.append(Finding(
            f"{node.host.name}:all", all_value == 0, f"net.ipv4.conf.all.rp_filter = "
            f"{all_value}", "0 (Cilium)", "" if all_value == 0 else CILIUM_WHY,
            "" if all_value == 0 else _cilium_fix([f"{conf_key('all')}=0"]),
            (all_evidence, cni_line)))
    if not findings:
        bad = all_value not in (0, 1) and (felix is not False or all_value > 2)
        ok_loose = all_value == 2 and not bad
        findings.append(Finding(
            node.host.name, not bad, f"net.ipv4.conf.all.rp_filter = {all_value};"
            " no per-interface rp_filter was listed", "0 or 1",
            (felix_why(cni.calico_version(), felix is True) if all_value == 2
             else invalid_why(felix)) if bad else "",
            _persist([f"{conf_key('all')}=1"]) if bad else "", (all_evidence, cni_line),
            note=_loose_all_note(cni, exception) if ok_loose else ""))
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
