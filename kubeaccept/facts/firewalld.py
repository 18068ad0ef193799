"""firewalld as the node runs it: its zones (`firewall-cmd --list-all-zones`), policies
(`--list-all-policies`) and the definitions of the services they use, read from the node's
XML (gather.sh's `firewalld-services`), never from a table here: firewalld's releases ship
different services (Debian's 0.9.3 has no kube-control-plane; 1.3.3 and 2.3.1 define it as
etcd-client, etcd-server, kube-apiserver, kube-controller-manager 10252 and kube-scheduler
10251, and kube-api as kubelet's 10250), and a node may override any of them in
/etc/firewalld/services.

What firewalld does with a NEW packet to the host (firewalld.policies(5), firewall-cmd(1)
--set-priority, firewalld.richlanguage(5) "Information about logging and actions", and the
nftables ruleset firewalld 1.3.3 and 2.3.1 build from it):
  1. the active policies whose egress zone is HOST and whose ingress zone is ANY or the
     packet's zone, priority < 0, lowest first;
  2. the packet's zone (its source address's zone, else its interface's, else the default
     zone): rich rules of priority < 0, then those of priority 0 that reject/drop, then those
     that accept with the zone's services, ports and protocols, then rich rules of priority
     > 0; then the zone's target (ACCEPT, DROP, %%REJECT%%; `default` goes on);
  3. the policies of priority > 0; 4. what is left is rejected.
What cannot be known from these facts (a service whose definition the node did not give, an
ipset or MAC match, a rate limit) makes the decision unknown, never "closed"."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

ETC_SERVICES, LIB_SERVICES = "/etc/firewalld/services", "/usr/lib/firewalld/services"
TERMINAL = {"accept": "ACCEPT", "reject": "REJECT", "drop": "DROP"}


@dataclass(frozen=True)
class Service:
    """One service definition (firewalld.service(5)); `error` says why it could not be read."""
    name: str
    path: str = ""
    ports: tuple[str, ...] = ()        # "30000-32767/tcp"
    protocols: tuple[str, ...] = ()
    includes: tuple[str, ...] = ()
    destinations: tuple[str, ...] = ()  # <destination ipv4=".." ipv6=".."/>
    error: str = ""


def parse_services(text: str | None) -> tuple[dict[str, Service], bool]:
    """gather.sh's lines `NAME PATH BASE64`, `NAME !missing`, `NAME PATH !unreadable`;
    and whether the list was cut (`!truncated`)."""
    out, truncated = {}, False
    for line in (text or "").splitlines():
        words = line.split()
        if words == ["!truncated"]:
            truncated = True
        elif len(words) == 2 and words[1] == "!missing":
            out[words[0]] = Service(words[0], error=f"no {words[0]}.xml in {ETC_SERVICES} or "
                                    f"{LIB_SERVICES}")
        elif len(words) == 3 and words[2].startswith("!"):
            out[words[0]] = Service(words[0], words[1], error=f"{words[1]} is not readable")
        elif len(words) == 3:
            out[words[0]] = _service_xml(words[0], words[1], words[2])
    return out, truncated


def _service_xml(name: str, path: str, data: str) -> Service:
    try:
        root = ET.fromstring(base64.b64decode(data, validate=True))
    except (binascii.Error, ValueError, LookupError, ET.ParseError) as exc:
        return Service(name, path, error=f"{path} could not be parsed: {exc}")
    if root.tag != "service":
        return Service(name, path, error=f"{path} is not a <service> definition")
    return Service(
        name, path,
        ports=tuple(f"{e.get('port', '')}/{e.get('protocol', '')}" for e in root.iter("port")),
        protocols=tuple(e.get("value", "") for e in root.iter("protocol")),
        includes=tuple(e.get("service", "") for e in root.iter("include")),
        destinations=tuple(v for e in root.iter("destination") for v in e.attrib.values()))


@dataclass
class Zone:
    """A zone or a policy as `firewall-cmd --list-all-zones`/`--list-all-policies` print it."""
    name: str
    flags: frozenset[str] = frozenset()  # "active", "default" (2.x prints both)
    settings: dict[str, str] = field(default_factory=dict)
    rich_rules: list[str] = field(default_factory=list)
    default: bool = False

    def values(self, key: str) -> list[str]:
        return self.settings.get(key, "").split()

    @property
    def active(self) -> bool:
        return "active" in self.flags

    @property
    def target(self) -> str:
        return self.settings.get("target", "default")

    @property
    def priority(self) -> int:
        try:
            return int(self.settings.get("priority", "-1"))
        except ValueError:
            return -1

    def has_source(self, address: str | None) -> bool | None:
        """Whether the zone binds `address` by a source; None: it binds an ipset or a MAC."""
        unknown = False
        for src in self.values("sources"):
            try:
                if address and ipaddress.ip_address(address) in ipaddress.ip_network(
                        src, strict=False):
                    return True
            except ValueError:
                unknown = True
        return None if unknown else False

    def has_interface(self, iface: str | None) -> bool:
        return bool(iface) and any(
            i == iface or (i.endswith("+") and iface.startswith(i[:-1]))
            for i in self.values("interfaces"))


def parse_zones(text: str | None) -> tuple[list[Zone], str | None]:
    """Zones (or policies) from firewall-cmd's listing; the default zone from the
    `default-zone:` line gather.sh adds, or from 2.x's `(default, active)` header."""
    zones, default, errors = _parse_listing(text or "")
    for z in zones:
        z.default = "default" in z.flags or z.name == default
    return zones, default or next((z.name for z in zones if z.default), None)


def _parse_listing(text: str) -> tuple[list[Zone], str | None, list[str]]:
    zones: list[Zone] = []
    default, errors, in_rich = None, [], False
    for line in text.splitlines():
        if line.startswith("default-zone:"):
            default = line.split(":", 1)[1].strip() or None
        elif line.startswith(("!", "Error:")) or not line.strip():
            if line.startswith("Error:"):
                errors.append(line.strip())
            elif line.startswith("!exit ") and line.split()[1] != "0":
                errors.append(f"exit status {line.split()[1]}")
            in_rich = False
        elif not line[0].isspace():
            name, _, flags = line.partition(" ")
            zones.append(Zone(name, frozenset(re.findall(r"[\w-]+", flags))))
            in_rich = False
        elif zones and in_rich and line.strip().startswith("rule"):
            zones[-1].rich_rules.append(line.strip())
        elif zones and ":" in line:
            key, _, value = line.strip().partition(":")
            zones[-1].settings[key.strip()] = value.strip()
            in_rich = key.strip() == "rich rules"
            if in_rich and value.strip().startswith("rule"):
                zones[-1].rich_rules.append(value.strip())
    return zones, default, errors


def listing_errors(text: str | None) -> list[str]:
    return _parse_listing(text or "")[2]


@dataclass(frozen=True)
class Decision:
    """What firewalld does with the packet: ACCEPT/REJECT/DROP by `by`; action None: it could
    not be decided (`unknown` says why, `run` what to run on the node to find out)."""
    action: str | None
    by: str
    zone: str | None = None
    unknown: str = ""
    run: str = ""
    fix: str = ""  # the firewall-cmd commands that let it in


@dataclass(frozen=True)
class RichRule:
    text: str
    family: str | None
    priority: int
    source: tuple[str, str, bool] | None       # (kind, value, inverted)
    destination: tuple[str, str, bool] | None
    element: tuple[str, dict] | None           # ("port", {"port":..,"protocol":..}), ...
    action: str | None                         # accept/reject/drop/mark, None: log only
    limited: bool


_TOKEN = re.compile(r'([\w-]+)(?:="([^"]*)")?')
ELEMENTS = ("service", "port", "protocol", "source-port", "icmp-block", "icmp-type",
            "masquerade", "forward-port", "tcp-mss-clamp")


def parse_rich(text: str) -> RichRule:
    """firewalld.richlanguage(5), as firewalld prints a rule (rich.py's __str__)."""
    tokens = _TOKEN.findall(text)
    family = priority = source = destination = element = action = None
    limited, i = False, 0
    while i < len(tokens):
        word, value = tokens[i]
        if word == "family":
            family = value
        elif word == "priority" and element is None and action is None:
            priority = int(value) if re.fullmatch(r"-?\d+", value) else 0
        elif word in ("source", "destination"):
            inverted = i + 1 < len(tokens) and tokens[i + 1][0] == "NOT"
            i += 1 + inverted
            kind, val = tokens[i] if i < len(tokens) else ("", "")
            if word == "source":
                source = (kind, val, inverted)
            else:
                destination = (kind, val, inverted)
        elif word in ELEMENTS and element is None and action is None:
            attrs = {}
            while i + 1 < len(tokens) and tokens[i + 1][1] and tokens[i + 1][0] in (
                    "name", "port", "protocol", "value", "to-port", "to-addr"):
                i += 1
                attrs[tokens[i][0]] = tokens[i][1]
            element = (word, attrs)
        elif word in ("accept", "reject", "drop", "mark") and action is None:
            action = word
        elif word == "limit" and action is not None:
            limited = True
        i += 1
    return RichRule(text, family, priority or 0, source, destination, element, action, limited)


def _covers(entry: str, proto: str, port: int) -> bool:
    ports, _, p = entry.partition("/")
    low, _, high = ports.partition("-")
    try:
        return p == proto and int(low) <= port <= int(high or low)
    except ValueError:
        return False


def _in(address: str | None, network: str) -> bool | None:
    try:
        return bool(address) and ipaddress.ip_address(address) in ipaddress.ip_network(
            network, strict=False)
    except ValueError:
        return None


class Firewalld:
    """The node's firewalld: zones, policies, service definitions (see the module's doc)."""

    def __init__(self, zones_text: str | None, policies_text: str | None,
                 services_text: str | None):
        self.zones, self.default = parse_zones(zones_text)
        self.policies = parse_zones(policies_text)[0]
        self.services, self.truncated = parse_services(services_text)
        self.errors = listing_errors(zones_text) + [
            f"--list-all-policies: {e}" for e in listing_errors(policies_text)
            # firewalld before 0.9 has no policies: the option is unknown there
            if "unrecognized arguments" not in e]
        self.backend = next((line.split()[1] for line in (zones_text or "").splitlines()
                             if line.startswith("!backend ") and len(line.split()) > 1),
                            "nftables")  # firewalld.conf(5): nftables is the default

    @classmethod
    def from_facts(cls, facts) -> Firewalld | None:
        text = facts.section("firewalld")
        if text is None:
            return None
        return cls(text, facts.section("firewalld-policies"),
                   facts.section("firewalld-services"))

    # --- which zone, which policies --------------------------------------------------------
    def zone_for(self, iface: str | None, source: str | None) -> tuple[Zone | None, str]:
        """The zone firewalld gives a packet (firewalld.zones(5)): the zone binding its
        source address, then the zone binding its interface, else the default zone.
        Zones with a lower ingress-priority (2.x) are considered first."""
        active = sorted((z for z in self.zones if z.active or z.default),
                        key=lambda z: _int(z.settings.get("ingress-priority")))
        for z in active:
            bound = z.has_source(source)
            if bound:
                return z, f"source {source}"
            if bound is None:
                return None, (f"zone {z.name} binds sources by ipset or MAC "
                              f"({z.settings.get('sources')}): which zone takes {source} "
                              "cannot be told from here")
        for z in active:
            if z.has_interface(iface):
                return z, f"interface {iface}"
        zone = next((z for z in self.zones if z.default), None)
        return zone, "default zone"

    def _host_policies(self, zone: str):
        return sorted((p for p in self.policies if p.active and "HOST" in p.values(
            "egress-zones") and ({"ANY", zone} & set(p.values("ingress-zones")))),
            key=lambda p: p.priority)

    # --- services --------------------------------------------------------------------------
    def service_ports(self, name: str, seen: tuple[str, ...] = ()) -> tuple[list, str]:
        """(ports and protocols of the service with its includes, why unknown or "")."""
        if name in seen:
            return [], ""
        svc = self.services.get(name)
        if svc is None or svc.error:
            why = svc.error if svc else (
                "the facts list only the first 64 service files" if self.truncated else
                "the facts carry no definition of it")
            return [], f"service {name}'s definition could not be read ({why})"
        out = [(svc, p) for p in svc.ports] + [(svc, f"proto:{p}") for p in svc.protocols]
        for inc in svc.includes:
            more, why = self.service_ports(inc, (*seen, name))
            if why:
                return [], why
            out += more
        return out, ""

    def _service_match(self, name: str, proto: str, port: int, dest: str | None):
        """(matched entry text or None, unknown reason)."""
        entries, why = self.service_ports(name)
        if why:
            return None, why
        for svc, entry in entries:
            if svc.destinations and dest and not any(_in(dest, d) for d in svc.destinations):
                continue
            if entry == f"proto:{proto}" or _covers(entry, proto, port):
                shown = entry.replace("proto:", "protocol ")
                return (f"service {name}" + (f" ({svc.name}: {shown})" if svc.name != name
                                             else f" ({shown})")), ""
        return None, ""

    # --- the walk --------------------------------------------------------------------------
    def decide(self, proto: str, port: int, source: str | None, iface: str | None,
               dest: str | None = None) -> Decision:
        if self.errors:
            return Decision(None, "", unknown="firewall-cmd failed: " + "; ".join(self.errors),
                            run="firewall-cmd --list-all-zones")
        zone, how = self.zone_for(iface, source)
        if zone is None:
            return Decision(None, "", unknown=how or "firewalld has no default zone",
                            run="firewall-cmd --get-active-zones")
        policies = self._host_policies(zone.name)
        sets = ([(f"policy {p.name}", p, True) for p in policies if p.priority < 0]
                + [(f"zone {zone.name} ({how})", zone, False)]
                + [(f"policy {p.name}", p, True) for p in policies if p.priority > 0])
        for label, obj, is_policy in sets:
            got = self._walk(label, obj, is_policy, proto, port, source, dest)
            if got is not None:
                return Decision(got.action, got.by, zone.name, got.unknown, got.run, got.fix)
        # firewalld's INPUT ends in `reject with icmpx admin-prohibited` (1.3.3, 2.3.1)
        return Decision("REJECT", f"zone {zone.name} ({how}; services: "
                        f"{zone.settings.get('services') or '-'}; ports: "
                        f"{zone.settings.get('ports') or '-'}) has no port, service, protocol "
                        f"or rich rule for {port}/{proto}, and firewalld rejects what its "
                        "zone does not accept", zone.name, fix=_add_port(zone, False, proto, port))

    def _walk(self, label, obj: Zone, is_policy, proto, port, source, dest) -> Decision | None:
        rules = [parse_rich(r) for r in obj.rich_rules]
        ordered = (sorted((r for r in rules if r.priority < 0), key=lambda r: r.priority)
                   + [r for r in rules if r.priority == 0 and r.action in ("reject", "drop")]
                   + [r for r in rules if r.priority == 0 and r.action == "accept"])
        for rule in ordered:
            got = self._rich(label, obj, is_policy, rule, proto, port, source, dest)
            if got is not None:
                return got
        for entry in obj.values("ports"):
            if _covers(entry, proto, port):
                return Decision("ACCEPT", f"{label} port {entry}")
        if proto in obj.values("protocols"):
            return Decision("ACCEPT", f"{label} protocol {proto}")
        for name in obj.values("services"):
            hit, why = self._service_match(name, proto, port, dest)
            if why:
                return Decision(None, "", unknown=f"{label} uses {why}",
                                run=f"firewall-cmd --info-service={name}")
            if hit:
                return Decision("ACCEPT", f"{label} {hit}")
        for rule in sorted((r for r in rules if r.priority > 0), key=lambda r: r.priority):
            got = self._rich(label, obj, is_policy, rule, proto, port, source, dest)
            if got is not None:
                return got
        target = obj.target.strip("%").upper()
        if target in ("ACCEPT", "DROP", "REJECT"):
            return Decision(target, f"{label} target {obj.target}",
                            fix=_add_port(obj, is_policy, proto, port))
        return None  # default (zone) or CONTINUE (policy): on to the next

    def _rich(self, label, obj: Zone, is_policy: bool, rule: RichRule, proto, port, source,
              dest) -> Decision | None:
        action = TERMINAL.get(rule.action or "")
        if action is None:
            return None  # log, audit, mark: the packet goes on
        matched, why = self._rich_matches(rule, proto, port, source, dest)
        if matched is False:
            return None
        if why or rule.limited:
            why = why or "it is rate-limited (limit value=...): some packets go past it"
            return Decision(None, "", unknown=f"{label} rich rule `{rule.text}`: {why}",
                            run="nft list table inet firewalld")
        where = f"--policy={obj.name}" if is_policy else f"--zone={obj.name}"
        return Decision(action, f"{label} rich rule: {rule.text}",
                        fix=f"firewall-cmd --permanent {where} --remove-rich-rule='{rule.text}'"
                        " && firewall-cmd --reload")

    def _rich_matches(self, rule: RichRule, proto, port, source, dest) -> tuple[bool, str]:
        family = "ipv6" if source and ":" in source else "ipv4"
        if rule.family and rule.family != family:
            return False, ""
        for end, address in ((rule.source, source), (rule.destination, dest)):
            if end is None:
                continue
            kind, value, inverted = end
            if kind != "address":
                return True, f"it matches by {kind} {value}, which the facts cannot test"
            inside = _in(address, value)
            if inside is None or inside == inverted:
                return False, ""
        if rule.element is None:
            return True, ""  # only a source (or nothing): every packet of it
        kind, attrs = rule.element
        if kind == "port":
            return _covers(f"{attrs.get('port')}/{attrs.get('protocol')}", proto, port), ""
        if kind == "protocol":
            return attrs.get("value") == proto, ""
        if kind == "service":
            hit, why = self._service_match(attrs.get("name", ""), proto, port, dest)
            return (True, why) if why else (hit is not None, "")
        # source-port (a NEW connection's source port is ephemeral), ICMP, masquerade,
        # forward-port, tcp-mss-clamp: not what accepts a TCP/UDP service port
        return False, ""


def _add_port(obj: Zone, is_policy: bool, proto: str, port: int) -> str:
    where = f"--policy={obj.name}" if is_policy else f"--zone={obj.name}"
    return (f"firewall-cmd --permanent {where} --add-port={port}/{proto} && firewall-cmd "
            "--reload (or add a service whose definition has it: firewall-cmd "
            "--info-service=NAME shows one's ports)")


def _int(text: str | None) -> int:
    try:
        return int(text or 0)
    except ValueError:
        return 0

