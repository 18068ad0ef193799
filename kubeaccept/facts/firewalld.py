"""firewalld zones (`firewall-cmd --list-all`): does the node's zone let a port in?
With firewalld's nftables backend its rules are not in iptables-save, so this is read too."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

# Ports of firewalld's predefined services that a kubeadm node may use (old and new ports:
# firewalld releases differ).
SERVICES = {
    "ssh": ["22/tcp"], "kube-api": ["6443/tcp"], "kube-apiserver": ["6443/tcp"],
    "kubelet": ["10250/tcp"], "etcd-client": ["2379/tcp"], "etcd-server": ["2380/tcp"],
    "kube-controller-manager": ["10252/tcp", "10257/tcp"],
    "kube-scheduler": ["10251/tcp", "10259/tcp"],
    "kube-nodeport-services": ["30000-32767/tcp"],
    "kube-control-plane": ["6443/tcp", "2379-2380/tcp", "10250/tcp", "10257/tcp", "10259/tcp"],
    "kube-worker": ["10250/tcp", "30000-32767/tcp"],
    "flannel": ["8472/udp"],
}


@dataclass
class Zone:
    name: str
    default: bool = False
    settings: dict[str, str] = field(default_factory=dict)

    rich_rules: list[str] = field(default_factory=list)

    def values(self, key: str) -> list[str]:
        return self.settings.get(key, "").split()

    def has_source(self, address: str | None) -> bool:
        if not address:
            return False
        for src in self.values("sources"):
            try:
                if ipaddress.ip_address(address) in ipaddress.ip_network(src, strict=False):
                    return True
            except ValueError:
                continue
        return False

    def allows(self, proto: str, port: int, source: str | None = None) -> str | None:
        """What lets the port in (a port entry, a service, a rich rule, the zone target)."""
        if self.settings.get("target", "") in ("ACCEPT", "accept"):
            return f"zone {self.name} target ACCEPT"
        for entry in self.values("ports"):
            if _covers(entry, proto, port):
                return f"zone {self.name} port {entry}"
        for service in self.values("services"):
            if any(_covers(e, proto, port) for e in SERVICES.get(service, [])):
                return f"zone {self.name} service {service}"
        for rule in self.rich_rules:
            if _rich_accepts(rule, proto, port, source):
                return f"zone {self.name} rich rule: {rule}"
        return None


def _covers(entry: str, proto: str, port: int) -> bool:
    ports, _, p = entry.partition("/")
    low, _, high = ports.partition("-")
    try:
        return p == proto and int(low) <= port <= int(high or low)
    except ValueError:
        return False


def _rich_accepts(rule: str, proto: str, port: int, source: str | None) -> bool:
    """firewalld.richlanguage(5): `rule [family=..] [source address=..] (port port=.. protocol=..
    | service name=..) accept`. Only accepting rules count; others never open a port."""
    words = dict(re.findall(r'(\w[\w-]*)="([^"]*)"', rule))
    if not rule.rstrip().endswith("accept") or " not " in f" {rule} ":
        return False
    if words.get("family") == "ipv6":
        return False
    if "address" in words:
        try:
            if source is None or ipaddress.ip_address(source) not in ipaddress.ip_network(
                    words["address"], strict=False):
                return False
        except ValueError:
            return False
    if "port" in words and "protocol" in words and " port " in f" {rule} ":
        return _covers(f"{words['port']}/{words['protocol']}", proto, port)
    if "name" in words and " service " in f" {rule} ":
        return any(_covers(e, proto, port) for e in SERVICES.get(words["name"], []))
    return False


def parse_zones(text: str) -> tuple[list[Zone], str | None]:
    zones, default, in_rich = [], None, False
    for line in text.splitlines():
        if line.startswith("default-zone:"):
            default = line.split(":", 1)[1].strip()
            in_rich = False
        elif line and not line[0].isspace():
            name, _, flags = line.partition(" ")
            zones.append(Zone(name, "default" in flags))
            in_rich = False
        elif zones and line.strip().startswith("rule ") and in_rich:
            zones[-1].rich_rules.append(line.strip())
        elif zones and ":" in line:
            key, _, value = line.strip().partition(":")
            zones[-1].settings[key.strip()] = value.strip()
            in_rich = key.strip() == "rich rules"
            if in_rich and value.strip().startswith("rule "):
                zones[-1].rich_rules.append(value.strip())
    for z in zones:
        z.default = z.default or z.name == default
    return zones, default


def zone_for(zones: list[Zone], iface: str | None, source: str | None = None) -> Zone | None:
    """The zone firewalld gives a packet: the zone binding its source address first, then
    the zone holding the interface, else the default zone (firewalld.zones(5))."""
    return (next((z for z in zones if z.has_source(source)), None)
            or next((z for z in zones if iface and iface in z.values("interfaces")), None)
            or next((z for z in zones if z.default), None)
            or (zones[0] if zones else None))
