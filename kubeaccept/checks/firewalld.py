"""firewalld zones (`firewall-cmd --list-all`): does the node's zone let a port in?
With firewalld's nftables backend its rules are not in iptables-save, so this is read too."""

from __future__ import annotations

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

    def values(self, key: str) -> list[str]:
        return self.settings.get(key, "").split()

    def allows(self, proto: str, port: int) -> str | None:
        """What lets the port in (a port entry, a service, the zone target), or None."""
        if self.settings.get("target", "") in ("ACCEPT", "accept"):
            return f"zone {self.name} target ACCEPT"
        for entry in self.values("ports"):
            if _covers(entry, proto, port):
                return f"zone {self.name} port {entry}"
        for service in self.values("services"):
            if any(_covers(e, proto, port) for e in SERVICES.get(service, [])):
                return f"zone {self.name} service {service}"
        return None


def _covers(entry: str, proto: str, port: int) -> bool:
    ports, _, p = entry.partition("/")
    low, _, high = ports.partition("-")
    try:
        return p == proto and int(low) <= port <= int(high or low)
    except ValueError:
        return False


def parse_zones(text: str) -> tuple[list[Zone], str | None]:
    zones, default = [], None
    for line in text.splitlines():
        if line.startswith("default-zone:"):
            default = line.split(":", 1)[1].strip()
        elif line and not line[0].isspace():
            name, _, flags = line.partition(" ")
            zones.append(Zone(name, "default" in flags))
        elif zones and ":" in line:
            key, _, value = line.strip().partition(":")
            zones[-1].settings[key.strip()] = value.strip()
    for z in zones:
        z.default = z.default or z.name == default
    return zones, default


def zone_for(zones: list[Zone], iface: str | None) -> Zone | None:
    """The zone holding the interface, else the default zone."""
    return (next((z for z in zones if iface and iface in z.values("interfaces")), None)
            or next((z for z in zones if z.default), None)
            or (zones[0] if zones else None))
