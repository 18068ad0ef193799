"""Cluster DNS: CoreDNS Ready, its Service (kubeadm's kube-dns or kubespray's coredns) on the
cluster DNS address, and kubernetes.default resolving to the kubernetes Service from a pod
(directly or through NodeLocal DNSCache) and from every node."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from kubeaccept.checks.nodes import condition
from kubeaccept.model.apistate import ApiState
from kubeaccept.model.findings import Finding, needs_tool, passed
from kubeaccept.model.registry import Context, check
from kubeaccept.model.roles import NODE
from kubeaccept.model.settings import Settings

UNREACHABLE_WHY = (
    "pods cannot resolve Service names. Field report 03: cross-node pod DNS over VXLAN failed "
    "with \"ICMP host 10.244.0.2 unreachable - admin prohibited\": an iptables FORWARD rule "
    "\"REJECT all -- anywhere anywhere reject-with icmp-host-prohibited\" sat ahead of the "
    "rules accepting pod traffic, so queries never reached CoreDNS on the other node")
REFUSED_WHY = ("nothing answers on the DNS Service: it has no ready endpoints (kube-proxy "
               "then rejects the query) or CoreDNS does not listen; pods cannot resolve names")
NXDOMAIN_WHY = ("CoreDNS answers but does not know the cluster's Services: the kubernetes "
                "plugin or the cluster domain is wrong; every Service lookup fails")
WRONG_WHY = ("the name resolves to another address than the kubernetes Service: pods talk to the "
             "wrong endpoint")
NXDOMAIN_FIX = ("`kubectl -n kube-system get cm coredns -o yaml`: the Corefile needs `kubernetes "
                "cluster.local in-addr.arpa ip6.arpa` with the cluster domain the kubelet uses "
                "(clusterDomain in /var/lib/kubelet/config.yaml)")
WRONG_FIX = ("`kubectl -n kube-system get cm coredns -o yaml`: look for hosts, rewrite or "
             "template blocks overriding the name")
BROKEN_WHY = "the lookup command itself failed: cluster DNS is untested"
BROKEN_FIX = ("use an image with nslookup for the dnsutils pod (--dnsutils-image) or install "
              "dnsutils/bind-utils on the node")
ERROR_WORDS = ("timed out", "no servers could be reached", "unreachable", "can't find",
               "nxdomain", "servfail", "refused", "can't resolve", "no answer",
               "communications error", "error", "not found")


@dataclass(frozen=True)
class DnsLookup:
    pod: str         # "default/dnsutils"
    node: str        # the pod's node
    command: str     # "nslookup kubernetes.default"
    output: str
    created: bool    # the pod was created for this check


@dataclass(frozen=True)
class NodeDnsAnswer:
    tool: str        # "dig", "nslookup", or "" when the node has neither
    command: str
    rc: int
    output: str


def _address(text: str) -> str | None:
    """"10.96.0.10", "10.96.0.10#53", "10.96.0.10:53", "10.96.0.1 kubernetes.default..."."""
    word = text.strip().split()[0] if text.strip() else ""
    for candidate in (word, word.split("#")[0], word.rsplit(":", 1)[0]):
        try:
            return str(ipaddress.ip_address(candidate))
        except ValueError:
            continue
    return None


def parse_lookup(output: str) -> tuple[str | None, list[str], str | None]:
    """(server, answer addresses, first error line) from nslookup (bind9 or BusyBox) or
    `dig +short` output."""
    server, answers, error = None, [], None
    in_answer = False
    for raw in output.splitlines():
        line = raw.strip()
        if not line:
            continue
        low = line.lower()
        key, sep, value = line.partition(":")
        key = key.strip().lower()
        if sep and key == "server":
            server = server or _address(value)
        elif sep and key == "name":
            in_answer = True
        elif sep and key.startswith("address") and _address(value):
            if in_answer:
                answers.append(_address(value))
            elif server is None:
                server = _address(value)
        elif _address(line) and not line.startswith(";"):
            answers.append(_address(line))  # dig +short
        elif error is None and any(w in low for w in ERROR_WORDS):
            error = line
    return server, [a for a in answers if a], error


def _lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip()]


def _failure_kind(answers: list[str], error: str | None, rc: int) -> str:
    low = (error or "").lower()
    if answers and rc != 124:
        return "wrong"
    if "executable file not found" in low or ": not found" in low:
        return "broken"
    if "nxdomain" in low or "can't find" in low or not (error or rc):
        return "nxdomain"  # dig +short prints nothing for NXDOMAIN
    if "refused" in low:
        return "refused"
    return "unreachable"


def _coredns(state: ApiState) -> tuple[Finding, list[str]]:
    pods = [p for p in state.pods if p.get("metadata", {}).get("namespace") == "kube-system"
            and (p.get("metadata", {}).get("labels") or {}).get("k8s-app") == "kube-dns"]
    nodes = sorted({p.get("spec", {}).get("nodeName") for p in pods} - {None, ""})
    if not pods:
        return Finding("coredns", False, "no CoreDNS pod (kube-system, k8s-app=kube-dns)",
                       "at least 1 CoreDNS pod, all Ready", "nothing answers cluster DNS: "
                       "no pod can resolve a Service name",
                       "`kubectl -n kube-system get deploy coredns`; re-create it with "
                       "`kubeadm init phase addon coredns`"), nodes
    bad = [p for p in pods if (condition(p, "Ready") or {}).get("status") != "True"]
    observed = f"{len(pods) - len(bad)} of {len(pods)} Ready on {', '.join(nodes) or '-'}"
    if bad:
        observed += "; not ready: " + ", ".join(
            f"{p['metadata'].get('name')} on {p.get('spec', {}).get('nodeName') or '(unscheduled)'}"
            f" ({p.get('status', {}).get('phase', '?')})" for p in bad)
        return Finding("coredns", False, observed, "all CoreDNS pods Ready",
                       "lookups sent to a not-ready CoreDNS pod fail or stall; report 03: "
                       "CoreDNS stays Pending until the pod network add-on is installed",
                       "`kubectl -n kube-system describe pod -l k8s-app=kube-dns`; "
                       "`kubectl -n kube-system logs -l k8s-app=kube-dns`"), nodes
    f = passed("coredns", observed, "all CoreDNS pods Ready")
    if len(pods) > 1 and len(nodes) == 1:
        f = Finding("coredns", True, observed, f.expected, note=(
            f"all CoreDNS pods run on {nodes[0]}: losing that node stops DNS until they are "
            "rescheduled"))
    return f, nodes


DNS_SERVICES = ("kube-dns", "coredns")  # kubeadm's name, kubespray's name (coredns_svc_name)


def _dns_service(state: ApiState, settings: Settings) -> Finding:
    """The cluster DNS Service in kube-system under either name, on the cluster DNS address."""
    names = tuple(dict.fromkeys((settings.dns_service, *DNS_SERVICES)))
    found = [s for s in state.services if s.get("metadata", {}).get("namespace") == "kube-system"
             and s.get("metadata", {}).get("name") in names]
    source = f"cluster DNS address {settings.dns_ip}: {settings.dns_source}"
    if not found:
        return Finding(f"kube-system/{settings.dns_service}", False,
                       f"no Service {' or '.join(f'kube-system/{n}' for n in names)}",
                       f"clusterIP {settings.dns_ip}", "pods' resolv.conf points at "
                       f"{' or '.join(settings.pod_dns_servers)} and nothing answers there",
                       "re-create it: `kubeadm init phase addon coredns` (kubeadm) or the "
                       "playbook's coredns tag (kubespray)", (source,))
    svc = next((s for s in found if s.get("spec", {}).get("clusterIP") == settings.dns_ip),
               found[0])
    name = svc["metadata"]["name"]
    subject = f"kube-system/{name}"
    ip = svc.get("spec", {}).get("clusterIP")
    evidence = (f"Service {subject} (looked for {', '.join(names)}): clusterIP {ip}", source)
    if ip == settings.dns_ip:
        return passed(subject, f"clusterIP {ip}", f"clusterIP {settings.dns_ip}", *evidence)
    resolver = (f"NodeLocal DNSCache {settings.node_local_dns_ip}, which forwards to "
                f"{settings.dns_ip}" if settings.node_local_dns_ip else settings.dns_ip)
    return Finding(subject, False, f"clusterIP {ip}", f"clusterIP {settings.dns_ip}",
                   f"every pod's resolv.conf names {resolver} (the kubelet's clusterDNS); "
                   f"{subject} elsewhere means every pod lookup goes unanswered",
                   "make clusterDNS in the kubelet configuration (kube-system/kubelet-config) and "
                   f"the {subject} clusterIP agree, or run the suite with --cluster-dns "
                   f"{ip} if that address is deliberate", evidence)


def kubernetes_ip(state: ApiState, settings: Settings) -> str:
    svc = next((s for s in state.services if s.get("metadata", {}).get("namespace")
                == "default" and s.get("metadata", {}).get("name") == "kubernetes"), None)
    return (svc or {}).get("spec", {}).get("clusterIP") or settings.kubernetes_service_ip


def _unreachable_fix(settings: Settings, nodes: str) -> str:
    return (f"on {nodes}: `iptables -L FORWARD -n --line-numbers`; insert an ACCEPT for the pod "
            f"network before any REJECT (`iptables -I FORWARD N -s {settings.pod_subnet} -j "
            f"ACCEPT` and `-d {settings.pod_subnet}`, persisted in the firewall configuration); "
            f"check {settings.overlay} passes between the nodes")


def _verdict(subject: str, server: str | None, answers: list[str], error: str | None,
             rc: int, settings: Settings, want: str, fix_nodes: str,
             evidence: tuple[str, ...], servers: tuple[str, ...]) -> Finding:
    """servers: the nameservers that count as the cluster DNS for this lookup."""
    expected = f"{want} from {' or '.join(servers)}"
    got = f"{', '.join(answers) or 'no address'} from {server or servers[0]}"
    evidence = (*evidence, f"cluster DNS {settings.dns_ip}: {settings.dns_source}")
    if settings.node_local_dns_ip in servers:
        evidence += (f"NodeLocal DNSCache {settings.node_local_dns_ip}: kubespray's "
                     "enable_nodelocaldns",)
    if want in answers and server in (None, *servers):
        return passed(subject, f"kubernetes.default -> {got}", expected, *evidence)
    if server and server not in servers:
        return Finding(subject, False, f"asked {server}, not the cluster DNS "
                       f"{' or '.join(servers)}; answer {', '.join(answers) or error}", expected,
                       f"the pod's resolv.conf does not point at the cluster DNS "
                       f"(kube-system/{settings.dns_service}): it resolves no Service names",
                       "check clusterDNS in /var/lib/kubelet/config.yaml on the pod's node and "
                       "the pod's dnsPolicy (`cat /etc/resolv.conf` in it)", evidence)
    kind = _failure_kind(answers, error, rc)
    if answers:
        observed = f"kubernetes.default -> {got}"
    else:
        observed = error or (f"exit code {rc}, no answer" if rc else "empty answer")
    why, fix = {"unreachable": (UNREACHABLE_WHY, _unreachable_fix(settings, fix_nodes)),
                "refused": (REFUSED_WHY, "`kubectl -n kube-system get endpointslices -l "
                            f"kubernetes.io/service-name={settings.dns_service}`; `kubectl -n "
                            "kube-system logs -l k8s-app=kube-proxy`"),
                "nxdomain": (NXDOMAIN_WHY, NXDOMAIN_FIX),
                "broken": (BROKEN_WHY, BROKEN_FIX),
                "wrong": (WRONG_WHY, WRONG_FIX)}[kind]
    return Finding(subject, False, observed, expected, why, fix, evidence)


@check("cluster_dns",
       ("CoreDNS Ready, its Service (`kube-dns` or kubespray's `coredns`) on the cluster DNS "
        "address, and `nslookup kubernetes.default` in the `dnsutils` pod (through the exec "
        "API) answers the `kubernetes` Service (field report 03)"),
       area="DNS",
       needs=('api', 'dns_lookup', 'cluster'),
       reads=("CoreDNS pods and the DNS Service (API)",
              "nslookup kubernetes.default in the dnsutils pod (exec API)"),
       asserts=("CoreDNS pods (k8s-app=kube-dns) exist and are Ready (a note when all run on "
                "one node); the DNS Service — `kube-system/kube-dns` (kubeadm) or "
                "`kube-system/coredns` (kubespray), either is accepted and the finding names "
                "the one found — has the cluster DNS address; the pod's answer may come from "
                "the cluster DNS or, with kubespray's `enable_nodelocaldns`, from NodeLocal "
                "DNSCache (`nodelocaldns_ip`, 169.254.25.10); `nslookup kubernetes.default` "
                "in the `dnsutils` pod (default/dnsutils, through the apiserver's exec API; "
                "created with `--dnsutils-image` if absent and deleted afterwards) answers "
                "the `kubernetes` Service address from the cluster DNS"),
       prevents="report 03: DNS checked with dnsutils; FORWARD REJECT breaking it")
def cluster_dns(ctx: Context) -> list[Finding]:
    state = ctx.api
    settings = ctx.cluster.settings
    lookup = ctx.dns_lookup
    coredns, dns_nodes = _coredns(state)
    findings = [coredns, _dns_service(state, settings)]
    if not isinstance(lookup, DnsLookup):
        findings.append(Finding(
            "lookup from a pod", False, f"lookup not made: {lookup or 'not attempted'}",
            "kubernetes.default resolves from a pod", "cluster DNS from pods is untested",
            "`kubectl -n default describe pod dnsutils`; if its image cannot be pulled, use "
            "--dnsutils-image with one the nodes can pull"))
        return findings
    evidence = (f"{lookup.command} (pod {lookup.pod} on {lookup.node}"
                f"{', created for this check' if lookup.created else ''})",
                *_lines(lookup.output))
    server, answers, error = parse_lookup(lookup.output)
    nodes = ", ".join(dict.fromkeys([*dns_nodes, lookup.node] if lookup.node else dns_nodes))
    findings.append(_verdict(f"lookup from {lookup.pod}", server, answers, error, 0,
                             settings, kubernetes_ip(state, settings),
                             f"the CoreDNS nodes and the pod's node ({nodes})", evidence,
                             settings.pod_dns_servers))
    return findings


@check("node_cluster_dns",
       ("from the node, `kubernetes.default.svc.cluster.local` via the cluster DNS "
        "(10.96.0.10; kubespray 10.233.0.3) answers the `kubernetes` Service address"),
       area="DNS",
       roles=NODE,
       reads=("an A query for kubernetes.default.svc.cluster.local to <cluster DNS>:53/udp",),
       asserts=("from the node (one UDP query through bash's /dev/udp, decoded by the runner; "
                "else `dig`, else `nslookup`; 1 try, bounded), "
                "`kubernetes.default.svc.cluster.local` at the cluster DNS Service address "
                "(see below) answers the `kubernetes` Service address (the subnet's 1st); "
                "timeouts/unreachable, refused, NXDOMAIN and wrong answers each get their own"
                " why and fix"),
       prevents="pods cannot resolve Services; report 03's cross-node DNS failure")
def node_cluster_dns(ctx: Context) -> list[Finding]:
    host_name, settings, gathered = ctx.node.host.name, ctx.node.settings, ctx.node.facts.dns
    answer = gathered and NodeDnsAnswer(**gathered)
    expected = f"{settings.kubernetes_service_ip} from {settings.dns_ip}"
    if answer is None:
        return [Finding(host_name, False, "not gathered", expected,
                        "cluster DNS from this node is untested",
                        "run the suite again; check the facts gathering on the node")]
    if not answer.tool:
        return [needs_tool(ctx.check_id, host_name, "dig", "(or nslookup, or bash with dd and "
                           "od) to ask the cluster DNS Service from the node")]
    server, answers, error = parse_lookup(answer.output)
    if answer.rc == 124 and not error:
        error = "timed out (killed by timeout)"
    evidence = (f"{answer.command} -> rc {answer.rc}", *_lines(answer.output))
    return [_verdict(host_name, server, answers, error, answer.rc, settings,
                     settings.kubernetes_service_ip,
                     f"{host_name} and the CoreDNS nodes (`kubectl -n kube-system get pods -l "
                     "k8s-app=kube-dns -o wide`)", evidence, (settings.dns_ip,))]
