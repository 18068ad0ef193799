"""Parse `iptables-save` output and work out what the filter table does to one NEW packet.

Matching is three-valued: a rule that needs something this module cannot decide (ipsets,
addrtype, rate limits, an unknown interface, ...) is not taken, and its text is reported in
Verdict.uncertain so that a verdict is never silently built on a guess.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import shlex
from dataclasses import dataclass, field

TERMINAL = frozenset({"ACCEPT", "DROP", "REJECT"})
# Targets that neither decide nor change anything these rules match on.
_PASSIVE_TARGETS = frozenset({"LOG", "NFLOG", "ULOG", "TRACE", "AUDIT", "CONNMARK", "TCPMSS",
                              "CLASSIFY", "DSCP", "TOS", "CHECKSUM"})
_MAX_DEPTH = 64  # the kernel refuses loops; this only bounds fabricated input

_BASE_OPTS = {
    "-p": "proto", "--protocol": "proto",
    "-s": "src", "--source": "src", "--src": "src",
    "-d": "dst", "--destination": "dst", "--dst": "dst",
    "-i": "in", "--in-interface": "in",
    "-o": "out", "--out-interface": "out",
}
_PORT_OPTS = {"--dport": "dport", "--destination-port": "dport"}
_MODULE_OPTS = {
    "tcp": _PORT_OPTS,
    "udp": _PORT_OPTS,
    "multiport": {"--dports": "dport", "--destination-ports": "dport", "--ports": "ports"},
    "state": {"--state": "ctstate"},
    "conntrack": {"--ctstate": "ctstate"},
    "mark": {"--mark": "mark"},
    "comment": {"--comment": "always"},
    "nfacct": {"--nfacct-name": "always"},  # an accounting counter: always matches
    "icmp": {"--icmp-type": "icmptype"},
}
_PROTO_NUMBERS = {"0": "all", "1": "icmp", "6": "tcp", "17": "udp", "132": "sctp"}
# A NEW icmp packet from a probe is an echo request.
_ICMP_ECHO = frozenset({"any", "8", "8/0", "echo-request", "ping"})
_COUNTERS = re.compile(r"^\[\d+:\d+\]\s+")


class ParseError(ValueError):
    """Malformed iptables-save text; the message names the line."""


@dataclass(frozen=True)
class _Match:
    kind: str
    value: object
    negated: bool = False


@dataclass(frozen=True)
class Rule:
    chain: str
    number: int
    text: str
    target: str | None
    goto: bool
    matches: tuple[_Match, ...] = field(default=(), repr=False)
    target_args: tuple[str, ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class Chain:
    name: str
    policy: str | None
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class Table:
    name: str
    chains: dict[str, Chain]


@dataclass(frozen=True)
class Ruleset:
    tables: dict[str, Table]
    source: str = "iptables-save"

    def chain(self, table: str, name: str) -> Chain | None:
        t = self.tables.get(table)
        return t.chains.get(name) if t else None


@dataclass(frozen=True)
class Packet:
    proto: str
    src: str
    dst: str
    dport: int | None = None
    in_iface: str | None = None
    out_iface: str | None = None
    ctstate: str = "NEW"
    mark: int = 0


@dataclass(frozen=True)
class Verdict:
    action: str
    chain: str
    rule: Rule | None
    path: tuple[str, ...] = ()
    uncertain: tuple[str, ...] = ()
    table: str = "filter"
    decided_by: str = "rule"  # "rule", "policy", "absent" (no such chain), "return" (user chain)
    unit: str = "rule"  # how the rule's number is called: iptables' position, nft's "handle"

    def describe(self) -> str:
        if self.rule is not None:
            via = ""
            if self.path:
                hops = [p.split(" -> ")[0] for p in self.path]
                via = f" (via {' -> '.join(hops)})"
            return (f"{self.action} by {self.chain} {self.unit} {self.rule.number}: "
                    f"{self.rule.text}{via}")
        if self.decided_by == "absent":
            return f"{self.action} (no {self.table}/{self.chain} chain: nothing filters)"
        if self.decided_by == "return":
            return f"{self.action} (no verdict: fell off the end of user chain {self.chain})"
        return f"{self.action} by the policy of chain {self.chain}"


def _port_range(spec: str) -> tuple[int, int]:
    lo, sep, hi = spec.partition(":")
    low = int(lo) if lo else 0
    return low, (int(hi) if hi else 65535) if sep else low


def _mark(spec: str) -> tuple[int, int]:
    value, _, mask = spec.partition("/")
    return int(value, 0), int(mask, 0) if mask else 0xFFFFFFFF


_VALUE_PARSERS = {
    "proto": lambda r: _PROTO_NUMBERS.get(r.lower(), r.lower()),
    "src": lambda r: ipaddress.ip_network(r, strict=False),
    "dst": lambda r: ipaddress.ip_network(r, strict=False),
    "in": str,
    "out": str,
    "dport": lambda r: tuple(_port_range(p) for p in r.split(",")),
    "ports": lambda r: tuple(_port_range(p) for p in r.split(",")),
    "ctstate": lambda r: frozenset(s.upper() for s in r.split(",")),
    "mark": _mark,
    "always": str,
    "icmptype": str.lower,
}


def _parse_rule(chain: str, number: int, text: str, tokens: list[str]) -> Rule:
    matches: list[_Match] = []
    target, goto, target_args = None, False, ()
    module: str | None = None
    negate = False
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        i += 1
        if tok == "!":
            negate = True
            continue
        if tok in ("-j", "--jump", "-g", "--goto"):
            if i >= len(tokens):
                raise ValueError(f"{tok} without a target")
            target, goto, target_args = tokens[i], tok in ("-g", "--goto"), tuple(tokens[i + 1:])
            break
        if tok in ("-m", "--match"):
            if i >= len(tokens):
                raise ValueError(f"{tok} without a module name")
            module = tokens[i]
            i += 1
            if module not in _MODULE_OPTS:
                matches.append(_Match("unknown", f"-m {module}"))
            negate = False
            continue
        if not tok.startswith("-"):
            raise ValueError(f"unexpected argument {tok!r}")
        opts = _MODULE_OPTS.get(module, {}) if module else _PORT_OPTS  # "-p tcp --dport" alone
        kind = _BASE_OPTS.get(tok) or opts.get(tok)
        if kind is None:
            # Unknown option, or an option of an unknown module (already recorded): skip its values.
            if module is None or module in _MODULE_OPTS:
                matches.append(_Match("unknown", tok))
            while i < len(tokens) and not tokens[i].startswith("-") and tokens[i] != "!":
                i += 1
            negate = False
            continue
        if i >= len(tokens):
            raise ValueError(f"{tok} without a value")
        raw = tokens[i]
        i += 1
        if raw == "!" and i < len(tokens):  # the old "-s ! addr" form
            negate, raw = not negate, tokens[i]
            i += 1
        try:
            matches.append(_Match(kind, _VALUE_PARSERS[kind](raw), negate))
        except ValueError:
            matches.append(_Match("unknown", f"{tok} {raw}"))
        negate = False
    return Rule(chain, number, text, target, goto, tuple(matches), target_args)


_NOT_PLAIN = re.compile(r"[\"'\\]|[^\x21-\x7e \t]")


def parse_iptables_save(text: str, source: str = "iptables-save") -> Ruleset:
    tables: dict[str, Table] = {}
    table: str | None = None
    table_line = 0
    chains: dict[str, tuple[str | None, list[Rule]]] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = _COUNTERS.sub("", raw.strip())
        if not line or line.startswith("#"):
            continue
        try:
            if line.startswith("*"):
                if table is not None:
                    raise ValueError(f"table {table} was not COMMITted")
                table, table_line, chains = line[1:].strip(), lineno, {}
                if not table or table in tables:
                    raise ValueError("missing or repeated table name")
            elif table is None:
                raise ValueError("outside a *table section")
            elif line == "COMMIT":
                tables[table] = Table(table, {name: Chain(name, policy, tuple(rules))
                                              for name, (policy, rules) in chains.items()})
                table = None
            elif line.startswith(":"):
                parts = line[1:].split()
                if len(parts) < 2 or parts[1] not in ("-", "ACCEPT", "DROP"):
                    raise ValueError("bad chain declaration")
                chains[parts[0]] = (None if parts[1] == "-" else parts[1], [])
            elif line.startswith("-A "):
                # shlex only where it can differ from str.split (a quoted comment): a
                # 200-node run parses tens of thousands of rules
                tokens = shlex.split(line) if _NOT_PLAIN.search(line) else line.split()
                if len(tokens) < 2 or tokens[1] not in chains:
                    raise ValueError("rule for an undeclared chain")
                rules = chains[tokens[1]][1]
                rules.append(_parse_rule(tokens[1], len(rules) + 1, line, tokens[2:]))
            else:
                raise ValueError("unrecognised line")
        except ValueError as exc:
            raise ParseError(f"line {lineno}: {exc}: {raw.strip()!r}") from None
    if table is not None:
        raise ParseError(f"line {table_line}: table {table} has no COMMIT (truncated output?)")
    return Ruleset(tables, source)


# The same few addresses are matched against rules tens of thousands of times in a big run.
_address = functools.lru_cache(maxsize=8192)(ipaddress.ip_address)


def source_networks(ruleset: Ruleset, table: str = "filter") -> tuple:
    """The networks `table`'s rules match source addresses against. A source address is all
    the evaluation reads of it, and only through these: two packets that differ only in
    their source get the same verdict when each network holds both or neither."""
    tbl = ruleset.tables.get(table)
    if tbl is None:
        return ()
    return tuple(dict.fromkeys(m.value for ch in tbl.chains.values() for r in ch.rules
                               for m in r.matches if m.kind == "src"))


def _check(m: _Match, pkt: Packet, mark: int) -> bool | None:
    kind, v = m.kind, m.value
    if kind == "unknown":
        return None
    if kind == "proto":
        hit = v == "all" or v == pkt.proto.lower()
    elif kind in ("src", "dst"):
        hit = _address(pkt.src if kind == "src" else pkt.dst) in v
    elif kind in ("in", "out"):
        iface = pkt.in_iface if kind == "in" else pkt.out_iface
        if iface is None:
            return None
        hit = iface.startswith(v[:-1]) if v.endswith("+") else iface == v
    elif kind in ("dport", "ports"):
        if pkt.dport is None:
            return None
        hit = any(lo <= pkt.dport <= hi for lo, hi in v)
        if not hit and kind == "ports":
            return None  # it may still match the source port, which a Packet does not carry
    elif kind == "ctstate":
        hit = pkt.ctstate.upper() in v
    elif kind == "mark":
        hit = mark & v[1] == v[0]
    elif kind == "icmptype":
        hit = pkt.proto.lower() == "icmp" and v in _ICMP_ECHO
    else:
        hit = True
    return hit != m.negated


def _matches(rule: Rule, pkt: Packet, mark: int) -> bool | None:
    results = [_check(m, pkt, mark) for m in rule.matches]
    if False in results:
        return False
    return None if None in results else True


def _apply_mark(mark: int, args: tuple[str, ...]) -> int | None:
    opts = dict(zip(args[::2], args[1::2], strict=False))
    try:
        if "--set-xmark" in opts:
            value, mask = _mark(opts["--set-xmark"])
            return (mark & ~mask) ^ value
        if "--set-mark" in opts:
            value, mask = _mark(opts["--set-mark"])
            return (mark & ~mask) | value
        for opt, op in (("--and-mark", int.__and__), ("--or-mark", int.__or__),
                        ("--xor-mark", int.__xor__)):
            if opt in opts:
                return op(mark, int(opts[opt], 0))
    except ValueError:
        pass
    return None


class _Run:
    def __init__(self, table: Table, packet: Packet):
        self.table, self.packet, self.mark = table, packet, packet.mark
        self.uncertain: dict[str, None] = {}  # ordered set

    def chain(self, chain: Chain, hops: tuple[str, ...], calls: tuple[str, ...]):
        """(deciding rule, hops to it), or None when the chain returns."""
        for rule in chain.rules:
            ok = _matches(rule, self.packet, self.mark)
            if not ok:
                if ok is None:
                    self.uncertain[rule.text] = None
                continue
            here = (*hops, f"{chain.name} {rule.number}")
            t = rule.target
            if t is None:
                continue
            if t in TERMINAL:
                return rule, here
            if t == "RETURN":
                return None
            sub = self.table.chains.get(t)
            if sub is not None and sub.policy is None:
                if t in calls or len(calls) >= _MAX_DEPTH:
                    self.uncertain[rule.text] = None  # a loop: not taken
                    continue
                hit = self.chain(sub, here, (*calls, t))
                if hit is not None:
                    return hit
                if rule.goto:
                    return None  # a goto's RETURN goes back to our caller
                continue
            new_mark = _apply_mark(self.mark, rule.target_args) if t == "MARK" else None
            if new_mark is not None:
                self.mark = new_mark & 0xFFFFFFFF
            elif t not in _PASSIVE_TARGETS or "--restore-mark" in rule.target_args:
                self.uncertain[rule.text] = None
        return None


def evaluate(ruleset: Ruleset, chain: str, packet: Packet, table: str = "filter") -> Verdict:
    """What `table`'s `chain` does to `packet`; RETURN only when `chain` is a user chain that
    reaches no verdict."""
    tbl = ruleset.tables.get(table)
    start = tbl.chains.get(chain) if tbl else None
    if tbl is None or start is None:
        return Verdict("ACCEPT", chain, None, table=table, decided_by="absent")
    run = _Run(tbl, packet)
    hit = run.chain(start, (), (chain,))
    uncertain = tuple(run.uncertain)
    if hit is not None:
        rule, hops = hit
        path = tuple(f"{a} -> {b}" for a, b in zip(hops, hops[1:], strict=False))
        return Verdict(rule.target or "", rule.chain, rule, path, uncertain, table)
    if start.policy is None:
        return Verdict("RETURN", chain, None, (), uncertain, table, "return")
    return Verdict(start.policy, chain, None, (), uncertain, table, "policy")
