"""Read `nft -j list ruleset` and work out what nftables' own tables do to one NEW IPv4 packet.

Every base chain at a hook filters the packet, in priority order: an accept in one table only
ends that chain, a drop or reject anywhere is final (nft(8), "BASE CHAINS"). Tables that
iptables-nft manages (`ip filter`, `ip nat`, ...) are left to the iptables-save reader, unless
iptables-nft could not read them. Matching is three-valued like kubeaccept.facts.iptables: what
this module cannot decide is not taken and is reported in Verdict.uncertain."""

from __future__ import annotations

import ipaddress
import itertools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from kubeaccept.facts.iptables import Packet, Rule, Verdict

IPTABLES_TABLES = frozenset({"filter", "nat", "mangle", "raw", "security"})
_MAX_DEPTH = 64
_MAX_NESTING = 64  # nft writes a dozen levels; deeper documents would exhaust the recursion
_PASSIVE = frozenset({"counter", "log", "notrack", "comment"})
_VERDICTS = {"accept": "ACCEPT", "drop": "DROP", "reject": "REJECT"}


class NftError(ValueError):
    pass


@dataclass(frozen=True)
class NftChain:
    family: str
    table: str
    name: str
    hook: str | None
    priority: int
    policy: str
    rules: tuple[Rule, ...]

    @property
    def label(self) -> str:
        return f"{self.family} {self.table} {self.name}"


@dataclass(frozen=True)
class NftRuleset:
    chains: dict[tuple[str, str, str], NftChain]
    exprs: dict[tuple[str, str, str, int], list]  # (family, table, chain, handle) -> expr
    sets: dict[tuple[str, str, str], list]
    source: str = "nft"

    def base_chains(self, hook: str, skip_tables: frozenset[str] = IPTABLES_TABLES,
                    shown: Mapping[str, frozenset[str]] | None = None):
        """The base chains on `hook` by priority, but those of `skip_tables` (iptables-save
        shows them); `shown`: table -> the chains iptables-save showed of a table it showed
        only in part ("contains incompatible base-chains"): its other base chains count."""
        shown = shown or {}

        def counted(c) -> bool:
            if c.family != "ip" or c.table not in skip_tables:
                return True
            return c.table in shown and c.name not in shown[c.table]
        chains = [c for c in self.chains.values() if c.hook == hook
                  and c.family in ("ip", "inet") and counted(c)]
        return sorted(chains, key=lambda c: c.priority)

    def set_lookups(self, tables: frozenset[str] = IPTABLES_TABLES) -> frozenset[str]:
        """The ip tables of `tables` with a rule matching against a set (`@name`):
        iptables-nft-save shows such a rule without the match (1.8.7, 1.8.9, 1.8.11 run, and
        1.8.4, 1.8.5, 1.8.8, 1.8.10 by their source: `ip saddr @blocked drop` is printed
        `-A FORWARD -j DROP`)."""
        return frozenset(table for (family, table, _, _), expr in self.exprs.items()
                         if family == "ip" and table in tables and _uses_set(expr))


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def _brackets_deep(text: str) -> int:
    """How deep the text's brackets nest, strings left out: a bound on the document's
    nesting found at C speed (walking the parsed document costs 2 ms per node)."""
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    return max(itertools.accumulate(map(_STEP.__getitem__, brackets)), default=0)


def _nesting(doc) -> int:
    deepest, stack = 0, [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(node, (dict, list)) and depth <= _MAX_NESTING:
            stack += [(v, depth + 1) for v in (node.values() if isinstance(node, dict) else node)]
    return deepest


def _object(item: dict, kind: str) -> dict:
    """The chain, rule or set of a ruleset item, with its names checked: a document nft did
    not write is an error, not rules silently left out of a verdict."""
    obj = item.get(kind)
    if not isinstance(obj, dict):
        raise NftError(f"nft -j list ruleset: a {kind} that is not an object: {obj!r:.80}")
    for name in ("family", "table", "name", "chain"):
        if not isinstance(obj.get(name, ""), str):
            raise NftError(f"nft -j list ruleset: {kind} {name} is not a string: {obj!r:.80}")
    return obj


def parse(text: str) -> NftRuleset:
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise NftError(f"nft -j list ruleset: not JSON ({exc})") from None
    if _brackets_deep(text) >= _MAX_NESTING and _nesting(doc) > _MAX_NESTING:
        raise NftError(f"nft -j list ruleset: nested deeper than {_MAX_NESTING} levels")
    items = doc.get("nftables", []) if isinstance(doc, dict) else []
    if not isinstance(items, list):
        raise NftError("nft -j list ruleset: \"nftables\" is not a list")
    chains, rules, sets, exprs = {}, {}, {}, {}
    for item in items:
        if not isinstance(item, dict):
            continue
        if "chain" in item:
            c = _object(item, "chain")
            key = (c.get("family", ""), c.get("table", ""), c.get("name", ""))
            chains[key] = c
        elif "rule" in item:
            r = _object(item, "rule")
            key = (r.get("family", ""), r.get("table", ""), r.get("chain", ""))
            rules.setdefault(key, []).append(r)
        elif "set" in item or "map" in item:
            s = _object(item, "set" if "set" in item else "map")
            sets[(s.get("family", ""), s.get("table", ""), s.get("name", ""))] = \
                s.get("elem", [])
    out = {}
    for key, c in chains.items():
        made = []
        for number, r in enumerate(rules.get(key, []), 1):
            handle = r.get("handle", number)
            if not isinstance(handle, int) or not isinstance(r.get("expr", []), list):
                raise NftError(f"nft -j list ruleset: a rule of {' '.join(key)} without an "
                               f"integer handle and a list of expressions: {r!r:.80}")
            exprs[(*key, handle)] = r.get("expr", [])
            made.append(Rule(f"{key[0]} {key[1]} {key[2]}", handle, render(r.get("expr", [])),
                             None, False))
        prio = c.get("prio", 0)
        out[key] = NftChain(key[0], key[1], key[2], c.get("hook"),
                            prio if isinstance(prio, int) else 0,
                            str(c.get("policy", "accept")), tuple(made))
    return NftRuleset(out, exprs, sets)


def _uses_set(exprs: list) -> bool:
    """A match against a named set: `"right": "@blocked"`."""
    return any(isinstance(e, dict) and isinstance(m := e.get("match"), dict)
               and isinstance(m.get("right"), str) and m["right"].startswith("@")
               for e in exprs)


# --- rendering (for messages) ---------------------------------------------------------------
def _value(v) -> str:
    if isinstance(v, dict):
        kind = next((k for k in ("prefix", "range", "set", "payload", "meta", "ct") if k in v),
                    None)
        body = v.get(kind)
        if kind == "prefix" and isinstance(body, dict):
            return f"{body.get('addr')}/{body.get('len')}"
        if kind == "range" and isinstance(body, list):
            return "-".join(_value(x) for x in body)
        if kind == "set" and isinstance(body, list):
            return "{ " + ", ".join(_value(x) for x in body) + " }"
        if kind == "payload" and isinstance(body, dict):
            return f"{body.get('protocol', '')} {body.get('field', '')}".strip()
        if kind in ("meta", "ct") and isinstance(body, dict):
            return f"{kind} {body.get('key')}"
        return json.dumps(v)
    if isinstance(v, list):
        return "{ " + ", ".join(_value(x) for x in v) + " }"
    return str(v)


def render(exprs: list) -> str:
    words = []
    for e in exprs:
        if not isinstance(e, dict) or not e:
            continue
        kind, body = next(iter(e.items()))
        body = body if isinstance(body, dict) else {}
        if kind == "match":
            op = body.get("op", "==")
            words.append(f"{_value(body.get('left'))}{'' if op in ('==', 'in') else f' {op}'} "
                         f"{_value(body.get('right'))}")
        elif kind in ("jump", "goto"):
            words.append(f"{kind} {body.get('target')}")
        elif kind == "vmap":
            words.append(f"{_value(body.get('key'))} vmap {_value(body.get('data'))}")
        elif kind in _VERDICTS or kind in ("return", "continue"):
            words.append(kind)
        else:
            words.append(kind)
    return " ".join(words)


# --- matching -------------------------------------------------------------------------------
def _field(left, pkt: Packet):
    """(value, known) of what `left` reads from the packet."""
    if not isinstance(left, dict):
        return None, False
    if not all(isinstance(left.get(k, {}), dict) for k in ("payload", "meta", "ct")):
        return None, False
    if "payload" in left:
        p = left["payload"]
        proto, fld = p.get("protocol"), p.get("field")
        if proto == "ip" and fld in ("saddr", "daddr"):
            return (pkt.src if fld == "saddr" else pkt.dst), True
        if proto == "ip" and fld == "protocol":
            return pkt.proto, True
        if proto in ("ip6", "icmpv6"):
            return _NOT_THIS_PROTO, True  # an IPv6 header: never on an IPv4 packet
        if proto in ("tcp", "udp", "th") and fld == "dport":
            if proto != "th" and proto != pkt.proto:
                return _NOT_THIS_PROTO, True
            return pkt.dport, True
        return None, False
    if "meta" in left:
        key = left["meta"].get("key")
        if key == "iifname":
            return pkt.in_iface, pkt.in_iface is not None
        if key == "oifname":
            return pkt.out_iface, pkt.out_iface is not None
        if key == "l4proto":
            return pkt.proto, True
        if key == "nfproto":
            return "ipv4", True
        return None, False
    if "ct" in left and left["ct"].get("key") == "state":
        return pkt.ctstate.lower(), True
    if "ct" in left and left["ct"].get("key") == "status":
        return "", True  # a NEW packet between pods: neither dnat nor snat yet
    return None, False


_NOT_THIS_PROTO = object()


def _one(value, item, sets, family_table) -> bool | None:
    if value is _NOT_THIS_PROTO:
        return False
    if isinstance(item, str) and item.startswith("@"):
        elems = sets.get((*family_table, item[1:]))
        if elems is None:
            return None
        return _member(value, elems, sets, family_table)
    if isinstance(item, dict):
        if "prefix" in item:
            try:
                net = ipaddress.ip_network(f"{item['prefix']['addr']}/{item['prefix']['len']}",
                                           strict=False)
                return ipaddress.ip_address(value) in net
            except (ValueError, TypeError, KeyError):
                return None
        if "range" in item:
            try:
                lo, hi = item["range"]
                if isinstance(lo, int):
                    return lo <= int(value) <= hi
                return (ipaddress.ip_address(lo) <= ipaddress.ip_address(value)
                        <= ipaddress.ip_address(hi))
            except (ValueError, TypeError):
                return None
        if "set" in item:
            return _member(value, item["set"], sets, family_table)
        if "elem" in item and isinstance(item["elem"], dict):
            return _one(value, item["elem"].get("val"), sets, family_table)
        return None
    if isinstance(item, list):
        return _member(value, item, sets, family_table)
    if isinstance(item, str) and item.endswith("*") and isinstance(value, str):
        return value.startswith(item[:-1])
    if isinstance(value, str) and isinstance(item, str) and "/" not in item:
        try:
            return ipaddress.ip_address(value) == ipaddress.ip_address(item)
        except ValueError:
            return value == item
    return value == item or str(value) == str(item)


def _member(value, elems, sets, family_table) -> bool | None:
    if not isinstance(elems, list):
        return None
    unknown = False
    for e in elems:
        got = _one(value, e, sets, family_table)
        if got:
            return True
        unknown |= got is None
    return None if unknown else False


def _match(body: dict, pkt: Packet, sets, family_table) -> bool | None:
    value, known = _field(body.get("left"), pkt)
    if not known:
        return None
    right = body.get("right")
    if isinstance(right, list) and body.get("op") in ("==", "in") and \
            isinstance(body.get("left"), dict) and "ct" in body["left"]:
        got = value in right  # ct state { established, related }
    else:
        got = _one(value, right, sets, family_table)
    if got is None:
        return None
    return (not got) if body.get("op") == "!=" else got


class _Walk:
    def __init__(self, rs: NftRuleset, pkt: Packet):
        self.rs, self.pkt = rs, pkt
        self.uncertain: list[str] = []

    def chain(self, chain: NftChain, depth: int = 0):
        """(action or None for fall-through/return, rule, path)."""
        if depth > _MAX_DEPTH:
            return "DROP", None, ()
        ft = (chain.family, chain.table)
        for rule in chain.rules:
            exprs = self.rs.exprs.get((chain.family, chain.table, chain.name, rule.number), [])
            taken, outcome = self.rule(exprs, ft)
            if taken is None:
                self.uncertain.append(f"{chain.label} handle {rule.number}: {rule.text}")
                continue
            if not taken:
                continue
            kind, target = outcome
            if kind in _VERDICTS:
                return _VERDICTS[kind], rule, ()
            if kind == "return":
                return None, None, ()
            if kind in ("jump", "goto"):
                sub = self.rs.chains.get((*ft, target)) if isinstance(target, str) else None
                if sub is None:
                    self.uncertain.append(f"{chain.label}: no chain {target}")
                    continue
                action, r, path = self.chain(sub, depth + 1)
                if action is not None:
                    return action, r, (f"{chain.label} handle {rule.number} -> {target}",
                                       *path)
                if kind == "goto":
                    return None, None, ()
        return None, None, ()

    def rule(self, exprs: list, ft) -> tuple[bool | None, tuple[str, str | None]]:
        """(taken, (verdict kind, jump target)); taken None: undecidable."""
        for e in exprs:
            if not isinstance(e, dict) or not e:
                return None, ("", None)
            kind, body = next(iter(e.items()))
            body = body if isinstance(body, dict) else {}  # {"accept": null}
            if kind == "match":
                got = _match(body, self.pkt, self.rs.sets, ft)
                if got is None:
                    return None, ("", None)
                if not got:
                    return False, ("", None)
            elif kind in _PASSIVE:
                continue
            elif kind in _VERDICTS or kind in ("return",):
                return True, (kind, None)
            elif kind in ("jump", "goto"):
                return True, (kind, body.get("target"))
            elif kind == "continue":
                return False, ("", None)
            elif kind == "vmap":
                value, known = _field(body.get("key"), self.pkt)
                if not known:
                    return None, ("", None)
                data = body.get("data")
                pairs = data.get("set", []) if isinstance(data, dict) else []
                if not isinstance(pairs, list):
                    return None, ("", None)
                for pair in pairs:
                    if isinstance(pair, list) and len(pair) == 2 and \
                            _one(value, pair[0], self.rs.sets, ft):
                        verdict = pair[1]
                        if not isinstance(verdict, dict) or not verdict:
                            return None, ("", None)
                        vkind, vbody = next(iter(verdict.items()))
                        target = vbody.get("target") if isinstance(vbody, dict) else None
                        return True, (vkind, target)
                return False, ("", None)
            else:
                return None, ("", None)
        return False, ("", None)  # a rule without a verdict does not decide


def evaluate(rs: NftRuleset, hook: str, packet: Packet,
             unreadable_iptables: frozenset[str] = frozenset(),
             shown: Mapping[str, frozenset[str]] | None = None) -> Verdict | None:
    """What the nftables base chains at `hook` do; None when there is none (not ours)."""
    chains = rs.base_chains(hook, IPTABLES_TABLES - unreadable_iptables, shown)
    if not chains:
        return None
    walk = _Walk(rs, packet)
    last = None
    for chain in chains:
        action, rule, path = walk.chain(chain)
        if action is None:
            action = chain.policy.upper()
            verdict = Verdict(action, chain.label, None, (), tuple(walk.uncertain),
                              chain.table, "policy", unit="handle")
        else:
            verdict = Verdict(action, chain.label, rule, path, tuple(walk.uncertain),
                              chain.table, unit="handle")
        if action != "ACCEPT":
            return verdict
        last = verdict
    return last
