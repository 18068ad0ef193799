"""CoreDNS forwarding loops: the resolver file the kubelet hands CoreDNS's pods (dnsPolicy
Default) names no loopback nameserver, and the Corefile forwards to no loopback address and
not to the cluster DNS Service itself. CoreDNS's loop plugin stops a CoreDNS that forwards to
itself (its README's "Troubleshooting Loops In Kubernetes Clusters")."""

from __future__ import annotations

import ipaddress
import re

from kubeaccept.checks.cgroup import FLAGS_ENV
from kubeaccept.facts.config import KUBELET_CONFIG, ConfigError, load
from kubeaccept.model.findings import Finding, passed
from kubeaccept.model.registry import Context, check
from kubeaccept.model.roles import NODE

# What CoreDNS 1.14.7 printed when it forwarded to itself (selftests/unit/fixtures/dns):
LOOP_FATAL = '[FATAL] plugin/loop: Loop (…) detected for zone "."'
LOOP_WHY = (
    "CoreDNS's pods (dnsPolicy: Default) get this file as their resolv.conf, and kubeadm's "
    "Corefile forwards what CoreDNS cannot answer to it (`forward . /etc/resolv.conf`): a "
    "loopback nameserver is CoreDNS's own pod, so every query outside the cluster goes round; "
    f"CoreDNS's loop plugin then stops it (`{LOOP_FATAL}, see https://coredns.io/plugins/"
    "loop#troubleshooting`) and its pods crash-loop: cluster DNS is down")
# kubeadm sets this when systemd-resolved is active (cmd/kubeadm/app/componentconfigs/
# kubelet_unix.go, kubeletSystemdResolverConfig)
SYSTEMD_REAL = "/run/systemd/resolve/resolv.conf"
KUBELET_DEFAULT = "/etc/resolv.conf"  # kubelet's resolvConf default (config/v1beta1 types.go)


def resolv_conf_path(ctx_node) -> tuple[str | None, str]:
    """(the file the kubelet uses, or None for resolvConf "" (DNS from the host disabled);
    where that came from). Flags in kubeadm-flags.env win over the config file."""
    flags = ctx_node.facts.file(FLAGS_ENV).text or ""
    if m := re.search(r"--resolv-conf=\"?([^\s\"]*)", flags):
        return (m.group(1) or None), f"--resolv-conf in {FLAGS_ENV}"
    config = load(ctx_node.facts.file(KUBELET_CONFIG)) or {}
    if "resolvConf" in config:
        value = config["resolvConf"]
        return (str(value) if value else None), f"resolvConf in {KUBELET_CONFIG}"
    return KUBELET_DEFAULT, "the kubelet's default (no resolvConf in its config)"


def nameservers(text: str) -> list[str]:
    return [ln.split()[1] for ln in text.splitlines()
            if ln.split()[:1] == ["nameserver"] and len(ln.split()) > 1]


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False


@check("node_kubelet_resolv_conf",
       "the resolver file the kubelet gives pods (CoreDNS's too) names no loopback nameserver",
       area="DNS",
       roles=NODE,
       reads=("/var/lib/kubelet/config.yaml (resolvConf), kubeadm-flags.env (--resolv-conf), "
              "the file they name",),
       asserts=("the file the kubelet hands pods with dnsPolicy Default (--resolv-conf, else "
                "resolvConf, else /etc/resolv.conf) exists and names at least one nameserver, "
                "none of them loopback (127.0.0.0/8, ::1: systemd-resolved's stub 127.0.0.53)"),
       prevents="CoreDNS forwarding to itself: its loop plugin stops it, cluster DNS is down")
def node_kubelet_resolv_conf(ctx: Context) -> list[Finding]:
    node, name = ctx.node, ctx.node.host.name
    try:
        path, source = resolv_conf_path(node)
    except ConfigError as exc:
        return [Finding(name, False, f"the kubelet's config cannot be read: {exc}",
                        "a kubelet config to read resolvConf from",
                        "the kubelet does not start with a config it cannot parse",
                        f"fix {KUBELET_CONFIG} on {name}")]
    expected = "a resolver file with the real upstream nameservers, none loopback"
    if path is None:
        return [Finding(name, True, f"{source} is empty: pods with dnsPolicy Default get no "
                        "nameserver from the host", expected,
                        note="with resolvConf \"\" CoreDNS has no upstream from the node: "
                        "names outside the cluster resolve only if the Corefile names "
                        "upstream servers itself")]
    fact = node.facts.file(path)
    evidence = (f"{source}: {path}",)
    fix = (f"on {name}: give the kubelet a file with the real upstream servers, e.g. "
           f"`resolvConf: {SYSTEMD_REAL}` in {KUBELET_CONFIG} (what kubeadm sets where "
           "systemd-resolved runs), `systemctl restart kubelet`, then `kubectl -n kube-system "
           "rollout restart deployment coredns`")
    if not fact.exists or fact.error:
        what = fact.error or "does not exist"
        return [Finding(name, False, f"{path} ({source}) {what}", expected,
                        "the kubelet cannot build the pods' resolv.conf from it: pods with "
                        "dnsPolicy Default, CoreDNS among them, get no upstream nameserver",
                        fix, evidence)]
    servers = nameservers(fact.text or "")
    evidence += tuple(f"{path}: {ln.strip()}" for ln in (fact.text or "").splitlines()
                      if ln.split()[:1] in (["nameserver"], ["search"], ["options"]))
    loop = [s for s in servers if is_loopback(s)]
    if loop:
        stub = " (systemd-resolved's stub)" if "127.0.0.53" in loop else ""
        return [Finding(name, False, f"{path} ({source}) names nameserver "
                        f"{', '.join(loop)}{stub}", expected, LOOP_WHY, fix, evidence)]
    if not servers:
        return [Finding(name, False, f"{path} ({source}) names no nameserver", expected,
                        "CoreDNS forwards names outside the cluster to the nameservers of this "
                        "file: with none, they do not resolve (SERVFAIL)", fix, evidence)]
    return [passed(name, f"{path} ({source}): nameserver {', '.join(servers)}", expected,
                   *evidence)]


# --- the Corefile -----------------------------------------------------------------------------

COREFILE = "kube-system/coredns"


def forwards(corefile: str) -> list[tuple[int, str, str, list[str]]]:
    """(line, server block, FROM, [TO…]) of every `forward` (and the old `proxy`)."""
    out, block = [], ""
    for number, raw in enumerate(corefile.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        words = line.replace("{", " { ").split()
        if not words:
            continue
        if raw[:1] not in (" ", "\t") and words[-1] == "{":
            block = " ".join(words[:-1])
        if words[0] in ("forward", "proxy") and len(words) > 2:
            targets = [w for w in words[2:] if w != "{"]
            out.append((number, block, words[1], targets))
    return out


def _host_of(target: str) -> str:
    """`dns://10.96.0.10:53`, `tls://[::1]:853`, `10.96.0.10:53`, `[::1]` -> the address."""
    t = re.sub(r"^\w+://", "", target)
    if t.startswith("["):
        return t[1:].split("]")[0]
    return t.rsplit(":", 1)[0] if t.count(":") == 1 else t


@check("cluster_coredns_forward",
       "the Corefile forwards to real upstreams: not to a loopback address, not to the "
       "cluster DNS Service itself",
       area="DNS",
       needs=("api", "cluster"),
       reads=("ConfigMap kube-system/coredns (API)", "Services (API)"),
       asserts=("every `forward`/`proxy` of CoreDNS's Corefile goes to /etc/resolv.conf (then "
                "node_kubelet_resolv_conf judges it) or to addresses that are neither "
                "loopback nor the cluster DNS Service (its ClusterIPs, the cluster DNS address)"),
       prevents="CoreDNS forwarding to itself: its loop plugin stops it, cluster DNS is down")
def cluster_coredns_forward(ctx: Context) -> list[Finding]:
    state, settings = ctx.api, ctx.cluster.settings
    cm = state.configmaps.get(COREFILE)
    corefile = ((cm or {}).get("data") or {}).get("Corefile")
    evidence = ("kubectl -n kube-system get configmap coredns -o jsonpath='{.data.Corefile}'",)
    if not corefile:
        return [Finding("coredns", False, f"no Corefile in ConfigMap {COREFILE}",
                        "CoreDNS's Corefile", "CoreDNS has no configuration to serve with",
                        "re-create it: `kubeadm init phase addon coredns`", evidence)]
    own = {settings.cluster_dns_ip, settings.dns_ip}
    for svc in state.services:
        m = svc.get("metadata", {})
        if m.get("namespace") == "kube-system" and m.get("name") in ("kube-dns", "coredns"):
            spec = svc.get("spec", {})
            own |= set(spec.get("clusterIPs") or [spec.get("clusterIP")])
    own.discard(None)
    own.discard("")
    findings = []
    for number, block, zone, targets in forwards(corefile):
        subject = f"coredns:{block or '?'} forward {zone}"
        line = f"Corefile line {number}: forward {zone} {' '.join(targets)}"
        bad = [t for t in targets if is_loopback(_host_of(t)) or _host_of(t) in own]
        if bad:
            itself = [t for t in bad if _host_of(t) in own]
            what = ("the cluster DNS Service, i.e. CoreDNS itself" if itself
                    else "a loopback address, i.e. CoreDNS's own pod")
            findings.append(Finding(
                subject, False, f"forwards {zone} to {', '.join(bad)}: {what}",
                "upstream DNS servers outside CoreDNS",
                "every query CoreDNS cannot answer comes back to it; its loop plugin stops it "
                f"(`{LOOP_FATAL}`) and its pods crash-loop: cluster DNS is down",
                f"`kubectl -n kube-system edit configmap coredns`: forward {zone} to "
                "/etc/resolv.conf (with a kubelet resolvConf that names the real servers) or "
                "to the upstream servers' addresses", (*evidence, line)))
        else:
            f = passed(subject, f"forwards {zone} to {' '.join(targets)}",
                       "upstream DNS servers outside CoreDNS", *evidence, line)
            findings.append(f)
    if not findings:
        findings.append(passed("coredns", "no forward in the Corefile (names outside the "
                               "cluster are not resolved)", "no forward to CoreDNS itself",
                               *evidence))
    return findings
