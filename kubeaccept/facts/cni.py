"""The node's CNI configuration directory (/etc/cni/net.d) as gather.sh's `cni-conf` section
prints it, and the pod-network interfaces among the node's links.

Which file the runtime uses: libcni's ConfFiles lists *.conf, *.conflist and *.json in the
directory and the CRI plugins (containerd, CRI-O) sort them by name and load the first one
that parses (containernetworking/cni libcni/conf.go; Cilium's agent relies on the same order
and renames other files to *.cilium_bak: cilium daemon/cmd/cni/config.go)."""

from __future__ import annotations

import base64
import ipaddress
import json
from dataclasses import dataclass, field

CONF_DIR = "/etc/cni/net.d"
CONF_SUFFIXES = (".conf", ".conflist", ".json")


@dataclass(frozen=True)
class CniFile:
    path: str
    text: str | None = None
    error: str = ""  # unreadable, too large, not JSON, not one of libcni's suffixes
    conf: dict | None = None

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def loadable(self) -> bool:
        return self.conf is not None

    @property
    def plugins(self) -> list[dict]:
        """A .conflist's plugins, or the single plugin of a .conf."""
        if self.conf is None:
            return []
        listed = self.conf.get("plugins")
        if isinstance(listed, list):
            return [p for p in listed if isinstance(p, dict)]
        return [self.conf] if "type" in self.conf else []

    @property
    def types(self) -> list[str]:
        return [str(p.get("type", "")) for p in self.plugins]

    @property
    def ipams(self) -> list[dict]:
        return [p["ipam"] for p in self.plugins if isinstance(p.get("ipam"), dict)]


@dataclass(frozen=True)
class CniDir:
    files: tuple[CniFile, ...] = ()
    others: tuple[str, ...] = ()  # names of files the runtime does not read (*.cilium_bak...)
    exists: bool = True
    truncated: bool = False

    @property
    def active(self) -> CniFile | None:
        """The file the runtime loads: the first by name that parses."""
        return next((f for f in self.files if f.loadable), None)


def parse(section: str | None) -> CniDir | None:
    """gather.sh's lines: "PATH BASE64", "PATH !unreadable|!too-large|!other", "!no-dir",
    "!truncated". None: the facts predate the section."""
    if section is None:
        return None
    files, others, exists, truncated = [], [], True, False
    for line in section.splitlines():
        line = line.strip()
        if line == "!no-dir":
            exists = False
            continue
        if line == "!truncated":
            truncated = True
            continue
        path, _, data = line.partition(" ")
        if not path:
            continue
        if data == "!other":
            others.append(path.rsplit("/", 1)[-1])
        elif data in ("!unreadable", "!too-large"):
            files.append(CniFile(path, error="unreadable (run as root: ansible_become=true)"
                                 if data == "!unreadable" else "larger than 64 KiB"))
        else:
            try:
                text = base64.b64decode(data).decode(errors="replace")
            except ValueError as exc:
                files.append(CniFile(path, error=f"undecodable: {exc}"))
                continue
            try:
                conf = json.loads(text)
            except ValueError as exc:
                files.append(CniFile(path, text, f"not JSON: {exc}"))
                continue
            if not isinstance(conf, dict):
                files.append(CniFile(path, text, "not a JSON object"))
                continue
            files.append(CniFile(path, text, conf=conf))
    files.sort(key=lambda f: f.name)
    return CniDir(tuple(files), tuple(sorted(others)), exists, truncated)


def host_local_subnets(ipam: dict) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The subnets host-local hands addresses from: `ranges` (a list of range sets, each a
    list of {"subnet": ...}) or the older top-level `subnet` (containernetworking/plugins
    plugins/ipam/host-local/backend/allocator/config.go). Placeholders such as Calico's
    "usePodCidr" are not addresses: host-local itself refuses them ("invalid CIDR address:
    usePodCidr", fixtures/cni/README.md); Calico's plugin replaces them first."""
    out = []
    subnets = [ipam.get("subnet")] if ipam.get("subnet") else []
    for rangeset in ipam.get("ranges") or []:
        for r in rangeset if isinstance(rangeset, list) else []:
            if isinstance(r, dict) and r.get("subnet"):
                subnets.append(r["subnet"])
    for s in subnets:
        try:
            out.append(ipaddress.ip_network(str(s), strict=False))
        except ValueError:
            continue
    return out


def uses_pod_cidr(ipam: dict) -> bool:
    """Calico's host-local placeholders ("usePodCidr", "usePodCidrIPv6"), matched without case
    as Calico's plugin does (cni-plugin/internal/pkg/utils/utils.go)."""
    values = [ipam.get("subnet")]
    for rangeset in ipam.get("ranges") or []:
        values += [r.get("subnet") for r in rangeset if isinstance(r, dict)] \
            if isinstance(rangeset, list) else []
    return any(str(v or "").lower() in ("usepodcidr", "usepodcidripv6") for v in values)


# Interfaces a CNI creates, by name: (how the name matches, CNI, what it is).
INTERFACES = (
    ("cali", "prefix", "calico", "Calico workload veth"),
    ("vxlan.calico", "exact", "calico", "Calico VXLAN device"),
    ("vxlan-v6.calico", "exact", "calico", "Calico IPv6 VXLAN device"),
    ("wireguard.cali", "exact", "calico", "Calico WireGuard device"),
    ("bpfin.cali", "exact", "calico", "Calico eBPF device"),
    ("flannel.", "prefix", "flannel", "flannel VXLAN device"),
    ("flannel-v6.", "prefix", "flannel", "flannel IPv6 VXLAN device"),
    ("flannel-wg", "prefix", "flannel", "flannel WireGuard device"),
    ("flannel0", "exact", "flannel", "flannel UDP device"),
    ("cilium_host", "exact", "cilium", "Cilium host device"),
    ("cilium_net", "exact", "cilium", "Cilium host device peer"),
    ("cilium_vxlan", "exact", "cilium", "Cilium VXLAN device"),
    ("cilium_geneve", "exact", "cilium", "Cilium Geneve device"),
    ("lxc", "prefix", "cilium", "Cilium endpoint veth"),
)


@dataclass(frozen=True)
class Interfaces:
    by_cni: dict[str, list[str]] = field(default_factory=dict)  # cni -> interface names


def interfaces(links: list[str]) -> Interfaces:
    """Which CNIs' interfaces the node has. tunl0 and cni0 are left out: the kernel's ipip
    module makes tunl0 whenever it loads, and cni0 is the bridge plugin's default name,
    whoever calls it."""
    out: dict[str, list[str]] = {}
    for name in links:
        for pattern, how, cni, _ in INTERFACES:
            if (name == pattern) if how == "exact" else name.startswith(pattern):
                out.setdefault(cni, []).append(name)
                break
    return Interfaces({k: sorted(v) for k, v in out.items()})


def cilium_interfaces(links: list[str]) -> list[str]:
    """The interfaces Cilium wants without reverse-path filtering: cilium_* and lxc*
    (cilium tools/sysctlfix/main.go writes `net.ipv4.conf.lxc*.rp_filter = 0` and
    `net.ipv4.conf.cilium_*.rp_filter = 0`)."""
    return sorted(n for n in links if n.startswith(("cilium_", "lxc")))
