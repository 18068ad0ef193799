"""Firewall: what the node's iptables rules do to the traffic a cluster needs."""

from __future__ import annotations

import functools
import ipaddress
import re
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field

from kubeaccept.checks import NodeContext
from kubeaccept.facts import nftables
from kubeaccept.facts.firewalld import Firewalld
from kubeaccept.facts.iptables import (
    Packet,
    ParseError,
    Ruleset,
    Verdict,
    evaluate,
    parse_iptables_save,
    source_networks,
)
from kubeaccept.model.findings import Finding, needs_tool, passed
from kubeaccept.model.hosts import node_ip
from kubeaccept.model.ports import NODEPORT_RANGE, reachable_from
from kubeaccept.model.registry import Context, check
from kubeaccept.model.roles import NODE
from kubeaccept.model.settings import Settings

FORWARD_WHY = (
    "cross-node pod traffic is refused before anything accepts it: pods see "
    "\"ICMP host 10.244.0.2 unreachable - admin prohibited\" and DNS lookups to CoreDNS on "
    "other nodes time out (field report 03: FORWARD rule 16 \"REJECT all -- anywhere anywhere "
    "reject-with icmp-host-prohibited\")"
)


# What iptables-nft-save prints for a table it cannot show (every version 1.8.4-1.8.11):
# "# Table `filter' is incompatible, use 'nft' tool." (a backtick, then a straight quote), and,
# from 1.8.8 on, for a table it shows without the base chains iptables did not make (exit 0):
# "# Table `filter' contains incompatible base-chains, use 'nft' tool to list them."
# Up to 1.8.5 such a base chain makes the whole table incompatible; 1.8.7 aborts on it.
# (1.8.7, 1.8.9, 1.8.11 run here, 1.8.4, 1.8.5, 1.8.8, 1.8.10 read in xtables-save.c and
# nft.c at their tags: selftests/unit/fixtures/nft/README.md)
INCOMPATIBLE = re.compile(r"^(# Table [`'](\w+)' is incompatible, use 'nft' tool\.)", re.M)
PARTIAL = re.compile(r"^(# Table [`'](\w+)' contains incompatible base-chains, use 'nft' tool "
                     r"to list them\.)", re.M)


@dataclass(frozen=True)
class NftView:
    """nftables' own base chains, and of the iptables-nft tables those iptables-save could
    not show (`unreadable`: the whole table; `shown`: table -> the chains it did show, the
    table's other base chains counting too)."""
    ruleset: nftables.NftRuleset
    unreadable: frozenset[str]
    shown: Mapping[str, frozenset[str]] = field(default_factory=dict)
    source: str = "nft -j list ruleset"


def rulesets(ctx: NodeContext) -> tuple[list, list[str]]:
    """The node's rule sets: iptables (nft and legacy backends) and nftables' own tables;
    and errors reading them. Parsed once per node (both firewall checks read them)."""
    return ctx.facts.memo("firewall rulesets", lambda: _read_rulesets(ctx.facts))


def _chains_shown(body: str) -> dict[str, frozenset[str]]:
    """table -> the chains an iptables-save text declares (`:NAME POLICY [..]`)."""
    out, table = {}, None
    for line in body.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
            out.setdefault(table, set())
        elif line.startswith(":") and table:
            out[table].add(line[1:].split()[0])
    return {t: frozenset(c) for t, c in out.items()}


def _exit_status(status: str) -> str:
    """"exit status 134, killed by SIGABRT": a shell reports a program a signal killed as
    128 + the signal's number."""
    if status.isdigit() and 128 < int(status) < 128 + signal.NSIG:
        try:
            return f"exit status {status}, killed by {signal.Signals(int(status) - 128).name}"
        except ValueError:
            pass
    return f"exit status {status}"


def _last_words(body: str, status: str) -> str:
    """The program's last line. dash (sh on Debian and Ubuntu) writes its own report of a
    program a signal killed (strsignal(3): "Aborted") into the program's 2>&1, after it."""
    lines = [line for line in body.strip().splitlines() if line.strip()]
    if lines and status.isdigit() and int(status) > 128:
        try:
            said = signal.strsignal(int(status) - 128)
        except ValueError:
            said = None
        if said and lines[-1].strip() in (said, f"{said} (core dumped)") and len(lines) > 1:
            lines.pop()
    return lines[-1] if lines else f"exit status {status}"


def _read_rulesets(facts) -> tuple[list, list[str]]:
    parsed, errors, failed = [], [], []
    incompatible: dict[str, str] = {}  # table -> what iptables-save printed: nothing shown
    partial: dict[str, tuple[str, frozenset[str]]] = {}  # table -> (printed, chains shown)
    nft_backend_failed = False
    for source in ("iptables-save", "iptables-legacy-save"):
        text = facts.section(source)
        if text is None or facts.missing(source):
            continue
        body, marker, status = text.rpartition("!exit ")
        if not marker:
            body, status = text, "0"
        if source == "iptables-save":
            incompatible.update({t: line for line, t in INCOMPATIBLE.findall(body)})
            shown = _chains_shown(body)
            partial.update({t: (line, shown.get(t, frozenset()))
                            for line, t in PARTIAL.findall(body)})
        if status.strip() != "0":
            # e.g. iptables-nft-save 1.8.7 over a table with a base chain it did not make:
            # "free(): double free detected in tcache 2", killed by SIGABRT (exit 134)
            failed.append(f"{source} failed ({_exit_status(status.strip())}): "
                          f"{_last_words(body, status.strip())}")
            nft_backend_failed |= source == "iptables-save"
            continue
        try:
            parsed.append(parse_iptables_save(body, source))
        except ParseError as exc:
            errors.append(f"{source}: {exc}")
    nft = facts.section("nft")
    ruleset = None
    if nft is not None:
        body, _, status = nft.rpartition("!exit ")
        if status.strip() == "0":
            try:
                ruleset = nftables.parse(body)
            except nftables.NftError as exc:
                errors.append(str(exc))
        else:
            errors.append(f"nft -j list ruleset failed: {(body.strip().splitlines() or ['?'])[-1]}")
    if ruleset is None and nft is None:
        fw = _firewalld_of(facts)
        if fw is not None and fw.backend == "nftables":
            # firewalld.conf(5): its nftables backend writes through libnftables; the nft
            # program is not needed, and iptables-save does not show the table
            errors.append("firewalld runs with FirewallBackend=nftables: its rules are in "
                          "nftables' table inet firewalld, which iptables-save does not show, "
                          "and the nft program is not installed (firewalld does not need it), "
                          "so its rules could not be read (run: nft list table inet firewalld)")
    if ruleset is None:
        # iptables alone: what it could not show stays unknown, never "nothing filters"
        errors += failed
        for table, line in sorted(incompatible.items()):
            errors.append(f"iptables-save printed \"{line}\": table ip {table} exists but its "
                          f"rules could not be read, so what it does is unknown (run: nft list "
                          f"table ip {table})")
        for table, (line, _) in sorted(partial.items()):
            errors.append(f"iptables-save printed \"{line}\": table ip {table} has base chains "
                          "iptables does not show, and they filter too: what they do is "
                          f"unknown (run: nft list table ip {table})")
        return parsed, errors
    # nft reads every table: what iptables-save could not show (or showed wrongly: a set
    # match left out) is judged from nft's own ruleset of it
    errors += [f for f in failed if not f.startswith("iptables-save ")]
    hidden = set(incompatible) | set(ruleset.set_lookups())
    if nft_backend_failed:
        hidden |= nftables.IPTABLES_TABLES
    out = [Ruleset({t: v for t, v in rs.tables.items() if t not in hidden}, rs.source)
           if rs.source == "iptables-save" else rs for rs in parsed]
    shown = {t: chains for t, (_, chains) in partial.items() if t not in hidden}
    out.append(NftView(ruleset, frozenset(hidden), shown))
    return out, errors


def _firewalld_of(facts) -> Firewalld | None:
    return facts.memo("firewalld", lambda: Firewalld.from_facts(facts))


def _firewalld_in(sets: list) -> bool:
    """Whether firewalld's own rules are in the rule sets walked: its nftables table, or the
    chains its iptables backend makes (INPUT_ZONES in 0.9-1.x, INPUT_POLICIES in 2.x)."""
    for rs in sets:
        if isinstance(rs, NftView):
            if any(c.table == "firewalld" for c in rs.ruleset.chains.values()):
                return True
        elif any(c.startswith(("INPUT_ZONES", "INPUT_POLICIES"))
                 for c in getattr(rs.tables.get("filter"), "chains", {})):
            return True
    return False


def _worst(sets: list, chain: str, packet: Packet) -> Verdict | None:
    """The first verdict that is not ACCEPT: a packet must pass every backend's tables."""
    verdict = None
    for rs in sets:
        if isinstance(rs, NftView):
            got = nftables.evaluate(rs.ruleset, chain.lower(), packet, rs.unreadable, rs.shown)
            if got is None:
                continue
            verdict = got
        else:
            verdict = evaluate(rs, chain, packet)
        if verdict.action != "ACCEPT":
            return verdict
    return verdict


def _source_key(sets: list, chain: str):
    """source address -> what a verdict at `chain` can depend on of it: sources with equal
    keys get the same verdict, so a big cluster's INPUT is evaluated once per port and class
    of source instead of once per peer (O(nodes) per node, not O(nodes²)). nftables'
    matches are not analysed: where its tables filter `chain`, each address is its own key."""
    nets = tuple(n for rs in sets if not isinstance(rs, NftView)
                 for n in source_networks(rs))
    nft = any(rs.ruleset.base_chains(chain.lower(), nftables.IPTABLES_TABLES - rs.unreadable,
                                     rs.shown)
              for rs in sets if isinstance(rs, NftView))

    return lambda address: _source_class(address, nets, nft)


@functools.lru_cache(maxsize=65536)  # every node asks it of every peer
def _source_class(address: str, nets: tuple, nft: bool) -> tuple:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:  # a name, not an address: a class of its own
        return (address,)
    return (address if nft else None, *(ip in n for n in nets))


PERMISSION_WORDS = ("permission denied", "must be root", "operation not permitted")


def _unreadable(ctx: NodeContext, errors: list[str]) -> list[Finding]:
    """The fix follows what went wrong: a permission error wants root; iptables that cannot
    show a table wants nft (installed, to read it with), not root."""
    text = " ".join(errors).lower()
    if any(w in text for w in PERMISSION_WORDS):
        fix = "run the suite as root or with ansible_become=true"
    else:
        fix = (f"install nftables' nft on {ctx.host.name} (the suite then reads the tables "
               "iptables cannot show from `nft -j list ruleset`), or look at them yourself: "
               "`nft list ruleset`")
    return [Finding(ctx.host.name, False, "; ".join(errors), "readable iptables rules",
                    "the firewall cannot be verified", fix, tuple(errors))]


def _inbound(ctx: NodeContext):
    """(label, proto, port, sources): inbound traffic this node must accept."""
    peers = [h for h in ctx.inventory.hosts if h.name != ctx.host.name]
    nodes = [h for h in peers if set(h.roles) & set(NODE)]
    wanted = {}
    for peer in peers:
        for port in reachable_from(ctx.host.roles, peer.roles):
            wanted.setdefault((port.label, port.proto, port.number), []).append(peer)
    if set(ctx.host.roles) & set(NODE) and nodes:
        vx = ctx.settings.vxlan_port
        wanted[(ctx.settings.overlay, "udp", vx)] = nodes
        for number in NODEPORT_RANGE:
            wanted[(f"tcp/{number} (NodePort range)", "tcp", number)] = nodes[:1]
    return [(label, proto, number, srcs) for (label, proto, number), srcs in wanted.items()]


def _no_tool(ctx: NodeContext) -> bool:
    """Neither iptables-save nor nft on the node: no rule can be read."""
    return bool(ctx.facts.missing("iptables-save")) and ctx.facts.section("nft") is None


def _readable(ctx: Context) -> tuple[list, list[Finding]]:
    """(the node's rule sets, []) or ([], the findings that say why they cannot be judged)."""
    node = ctx.node
    if _no_tool(node):
        return [], [needs_tool(ctx.check_id, node.host.name, "iptables-save", "(or nft) to "
                               "read the firewall rules")]
    sets, errors = rulesets(node)
    if errors:
        return [], _unreadable(node, errors)
    return sets, []


@check("node_firewall_input",
       ("iptables INPUT (and nftables' own input chains, firewalld zones by source and "
        "interface, rich rules) accepts the cluster ports, the overlay's UDP port (flannel "
        "8472, Calico 4789, …) and the NodePort range from the other nodes"),
       area="network",
       roles=NODE,
       reads=("iptables-save (nft and legacy)",
              "nft -j list ruleset",
              "firewalld zones, policies and service files"),
       asserts=("`iptables-save` (nft and legacy backends) and nftables' own input base "
                "chains evaluated for a NEW packet from each peer to each required port, to "
                "the overlay's UDP port (below; 8472 by default) and the NodePort range "
                "(30000 and 32767/tcp); names chain, rule number and rule text of a "
                "DROP/REJECT. firewalld as its nftables rules order it: policies to HOST of "
                "priority < 0, the zone of the packet's source, else of its interface, else "
                "the default zone (rich rules by priority, rejects before accepts, ports, "
                "protocols, services as the node's own XML defines them, includes followed, "
                "/etc/firewalld/services first), the zone's target, policies of priority > 0, "
                "then reject; names the zone, policy or rule with the firewall-cmd fix. A "
                "service whose definition the node did not give, an ipset or MAC match or a "
                "rate limit is undecidable unless firewalld's own rules (nft) decide it; "
                "firewalld on nftables without the nft program: its rules could not be read"),
       prevents="firewalld/iptables closing cluster ports (report 03)")
def node_firewall_input(ctx: Context) -> list[Finding]:
    node = ctx.node
    sets, problem = _readable(ctx)
    if problem:
        return problem
    iface = node.facts.iface_of(node.ip)
    fw = _firewalld_of(node.facts)
    fw_walked = fw is not None and _firewalld_in(sets)
    findings = []
    key = _source_key(sets, "INPUT")
    for label, proto, number, sources in _inbound(node):
        blocked: dict[str, list[str]] = {}
        undecided: dict[tuple[str, str], list[str]] = {}
        uncertain: set[str] = set()
        notes_fw: list[str] = []
        nft_block = fw_fix = None
        verdicts: dict[tuple, Verdict | None] = {}
        for src in sources:
            address = node_ip(src)
            cls = key(address)  # cached across nodes by _source_class
            if cls not in verdicts:
                packet = Packet(proto, address, node.ip, number, in_iface=iface)
                verdicts[cls] = _worst(sets, "INPUT", packet)
            verdict = verdicts[cls]
            if fw is not None:
                d = fw.decide(proto, number, address, iface, node.ip)
                if d.action in ("REJECT", "DROP"):
                    blocked.setdefault(f"firewalld {d.action}: {d.by}", []).append(src.name)
                    fw_fix = fw_fix or d.fix
                elif d.action is None and fw_walked and (verdict is None
                                                         or verdict.action == "ACCEPT"):
                    # the rules firewalld made decide it: say what its settings left open
                    notes_fw.append(f"firewalld's settings alone do not decide it ({d.unknown}); "
                                    "its rules in the walked rule set accept it")
                elif d.action is None:
                    undecided.setdefault((d.unknown, d.run), []).append(src.name)
            if verdict is None:
                continue
            uncertain.update(verdict.uncertain)
            if verdict.action != "ACCEPT":
                blocked.setdefault(f"{verdict.describe()} [{_source(sets, verdict)}]",
                                   []).append(src.name)
                if verdict.unit == "handle":
                    nft_block = verdict
        subject = f"{node.host.name}:{proto}/{number}"
        notes = tuple(f"rule not evaluated: {u}" for u in sorted(uncertain)) + tuple(
            dict.fromkeys(notes_fw))
        if blocked:
            detail = "; ".join(f"from {', '.join(s)}: {v}" for v, s in blocked.items())
            findings.append(Finding(
                subject, False, f"{label} blocked {detail}", "accepted from the other nodes",
                "the port is closed to the cluster even though it may listen; "
                f"{_port_why(number, node.settings)}",
                fw_fix or (_nft_fix(nft_block, "", f"{proto} dport {number}") if nft_block else
                           f"delete that rule or insert an ACCEPT for {proto} dport {number} "
                           "before it, e.g. iptables -I INPUT <n> -p {0} --dport {1} -j ACCEPT "
                           "(firewalld: firewall-cmd --permanent --add-port={1}/{0} && "
                           "firewall-cmd --reload)".format(proto, number)),
                tuple(blocked) + notes))
        elif undecided:
            (why, run), _ = next(iter(undecided.items()))
            detail = "; ".join(f"from {', '.join(s)}: {w}" for (w, _), s in undecided.items())
            findings.append(Finding(
                subject, False, f"{label}: cannot be decided from firewalld's settings {detail}",
                "accepted from the other nodes",
                "whether firewalld lets it in is unknown: a definition that cannot be read is "
                f"neither open nor closed; {_port_why(number, node.settings)} if it is closed",
                f"on {node.host.name} run `{run}` and check it admits {number}/{proto} (and "
                "install nftables' nft so the suite reads firewalld's own rules: "
                "`nft -j list ruleset`)", tuple(w for w, _ in undecided) + notes))
        else:
            findings.append(passed(subject, f"{label} accepted from {len(sources)} "
                                   "node(s)", "accepted", *notes))
    if not findings:
        findings.append(passed(node.host.name, "no inbound cluster traffic to check", ""))
    return findings


def _port_why(number: int, settings: Settings) -> str:
    if number == settings.vxlan_port:
        return (f"the pod network's tunnel packets ({settings.overlay}) are dropped: pods "
                "cannot reach pods on other nodes")
    if NODEPORT_RANGE[0] <= number <= NODEPORT_RANGE[1]:
        return "NodePort Services are unreachable through this node"
    return "the component on this port cannot be reached from the nodes that call it"


def _source(sets: list, verdict: Verdict) -> str:
    if verdict.unit == "handle":
        return next(rs.source for rs in sets if isinstance(rs, NftView))
    return next((rs.source for rs in sets if not isinstance(rs, NftView) and (
        verdict.rule is None or any(verdict.rule in ch.rules for t in rs.tables.values()
                                    for ch in t.chains.values()))), sets[0].source)


def _nft_fix(verdict: Verdict, subnet: str, accept: str) -> str:
    """`accept`: "pod traffic", or the nft words accepting one port ("udp dport 8472")."""
    where = verdict.chain
    rules = ([f"ip saddr {subnet} accept", f"ip daddr {subnet} accept"]
             if accept == "pod traffic" else [f"{accept} accept"])
    if verdict.rule is not None:
        n = verdict.rule.number
        return (f"nft delete rule {where} handle {n}, or accept before it: "
                + "; ".join(f"nft insert rule {where} position {n} {r}" for r in rules)
                + " (persist it in /etc/nftables.conf)")
    return ("the chain's policy drops it: "
            + "; ".join(f"nft insert rule {where} {r}" for r in rules)
            + " (or `policy accept;`), persisted in /etc/nftables.conf")


def _pod_packets(ctx: NodeContext, in_iface: str | None, out_iface: str | None):
    net = ipaddress.ip_network(ctx.settings.pod_subnet)
    if net.num_addresses < 512:
        return []
    remote = str(net.network_address + 256 + 2)  # a pod on another node (10.244.1.2)
    local = str(net.network_address + 2)         # a pod on this node (10.244.0.2)
    inbound, outbound = (in_iface, out_iface), (out_iface, in_iface)
    return [
        ("DNS from a remote pod to a pod here", Packet("udp", remote, local, 53, *inbound)),
        ("DNS from a pod here to a remote pod", Packet("udp", local, remote, 53, *outbound)),
        ("TCP from a remote pod to a pod here", Packet("tcp", remote, local, 80, *inbound)),
    ]


# Tunnel devices of the CNIs (flannel, Calico VXLAN/IPIP, Cilium, Weave), first found wins.
OVERLAYS = ("flannel.1", "vxlan.calico", "tunl0", "cilium_vxlan", "cilium_geneve",
            "weave", "vxlan-v6.calico")
# Pod-side interfaces: a bridge the pods' veths hang on, else a pod's own host-side veth
# (Calico cali*, Cilium lxc*), named as the node has them, so `-o cali+` rules are decided.
BRIDGES = ("cni0", "cbr0", "weave")
POD_VETHS = ("cali", "lxc")


def pod_interfaces(ctx: NodeContext) -> tuple[str | None, str | None, str]:
    """(tunnel or node interface, pod-side interface, how they were chosen)."""
    links = ctx.facts.links
    overlay = next((i for i in OVERLAYS if i in links), None)
    how = f"tunnel {overlay}" if overlay else ""
    if overlay is None:  # no tunnel (Calico BGP, host-gw): the node's own interface
        overlay = ctx.facts.iface_of(ctx.ip)
        how = f"no tunnel device, node interface {overlay}"
    local = next((b for b in BRIDGES if b in links and b != overlay), None)
    if local is None:
        local = next((i for i in links if i.startswith(POD_VETHS) and i != "lxc_health"), None)
    how += f"; pod side {local}" if local else "; no pod interface found (no pod here yet)"
    return overlay, local, how


@check("node_firewall_forward",
       ("no FORWARD REJECT/DROP — iptables or nftables' own forward chains — catches "
        "pod-to-pod traffic before it is accepted, judged with the node's real CNI interfaces"
        " (field report 03)"),
       area="network",
       roles=NODE,
       reads=("iptables-save (nft and legacy)",
              "nft -j list ruleset",
              "firewalld zones",
              "ip -o link (CNI interfaces)"),
       asserts=("pod-to-pod traffic across nodes (UDP/53 both ways, TCP) through FORWARD is "
                "accepted, not caught by a REJECT/DROP or a chain policy first — in iptables "
                "(nft and legacy backends) and in nftables' own base chains at the forward "
                "hook (`nft -j list ruleset`: every base chain by priority must accept; "
                "jumps, gotos, sets, verdict maps, interface wildcards; firewalld's nftables "
                "backend evaluated as such, zones by source address and by interface). The "
                "packets carry the node's real interfaces: the tunnel (`flannel.1`, "
                "`vxlan.calico`, `tunl0`, `cilium_vxlan`, `weave`, else the node interface) "
                "and the pod side (`cni0`, else a `cali*`/`lxc*` veth the node has), so `-o "
                "cali+` rules are decided. A table iptables-nft-save cannot show (``# Table "
                "`filter' is incompatible, use 'nft' tool.``) is judged from nft's ruleset of "
                "it; without nft's own answer is a failing \"unknown\", never \"nothing "
                "filters\"; a pod subnet under 512 addresses says FORWARD was not checked"),
       prevents=("`ICMP host 10.244.0.2 unreachable - admin prohibited`; cross-node DNS "
                 "broken (report 03)"))
def node_firewall_forward(ctx: Context) -> list[Finding]:
    node = ctx.node
    sets, problem = _readable(ctx)
    if problem:
        return problem
    overlay, bridge, how = pod_interfaces(node)
    findings = []
    packets = _pod_packets(node, overlay, bridge)
    if not packets:
        return [Finding(node.host.name, True, "not checked", "pod traffic accepted",
                        note=f"the pod subnet {node.settings.pod_subnet} has fewer than 512 "
                        "addresses: no per-node /24 to model cross-node pod traffic with; "
                        "FORWARD was not evaluated")]
    for what, packet in _pod_packets(node, overlay, bridge):
        verdict = _worst(sets, "FORWARD", packet)
        if verdict is None:
            continue
        subject = f"{node.host.name}:{packet.proto}/{packet.dport} {packet.src}->{packet.dst}"
        notes = tuple(f"rule not evaluated: {u}" for u in verdict.uncertain)
        evidence = (f"{_source(sets, verdict)}: {verdict.describe()}",
                    *(f"path: {p}" for p in verdict.path)) + notes
        if verdict.action == "ACCEPT":
            findings.append(passed(subject, f"{what}: {verdict.describe()}", "ACCEPT",
                                   *evidence))
            continue
        rule = verdict.rule
        pods = node.settings.pod_subnet
        if verdict.unit == "handle":
            fix = _nft_fix(verdict, pods, "pod traffic")
        elif rule:
            fix = (f"delete FORWARD-path rule {rule.number} of chain {rule.chain} "
                   f"(iptables -D {rule.chain} {rule.number}) or accept pod traffic before it: "
                   f"iptables -I {rule.chain} {rule.number} -s {pods} -j ACCEPT; "
                   f"iptables -I {rule.chain} {rule.number} -d {pods} -j ACCEPT")
        else:
            fix = (f"the FORWARD policy drops pod traffic: iptables -A FORWARD -s {pods} "
                   f"-j ACCEPT and -d {pods} -j ACCEPT (flannel adds these when it runs)")
        findings.append(Finding(subject, False, f"{what}: {verdict.describe()}",
                                "ACCEPT", FORWARD_WHY, fix, evidence + (f"interfaces: {how}",)))
    if not findings:
        findings.append(Finding(node.host.name, True, "no filter rules were gathered: "
                                "nothing filters FORWARD", "pod traffic accepted",
                                note="neither iptables-save nor nft answered on this node"))
    return findings
