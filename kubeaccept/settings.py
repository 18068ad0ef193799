"""Settings: built once from the command line, pytest.ini and the inventory, then passed down."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_VXLAN_PORT = 8472  # flannel's VXLAN backend (the Linux kernel's historical VXLAN port)
DEFAULT_VXLAN_SOURCE = "flannel's VXLAN port, the default"
DEFAULT_DNS_SOURCE = "the service subnet's 10th address, kubeadm's default"


@dataclass(frozen=True)
class Settings:
    connect_timeout: float = 10.0
    command_timeout: float = 60.0
    probe_timeout: float = 3.0
    # Each port is probed from at most this many of the hosts that use it; 0 = from all.
    probe_sources: int = 0
    pod_subnet: str = "10.244.0.0/16"
    service_subnet: str = "10.96.0.0/12"
    vxlan_port: int = DEFAULT_VXLAN_PORT
    vxlan_source: str = DEFAULT_VXLAN_SOURCE  # what chose the port, said in findings
    cert_expiry_days: float = 30.0  # a certificate expiring sooner than this fails
    kube_version: tuple[int, int] | None = None  # None: read it from each node
    restart_threshold: int = 10          # a container restarted more often than this fails
    flap_window_minutes: float = 60.0    # NodeReady/NodeNotReady events seen in this window...
    flap_threshold: int = 4              # ...this many times or more: the node is flapping
    dnsutils_image: str = "registry.k8s.io/e2e-test-images/jessie-dnsutils:1.3"
    cluster_dns_ip: str | None = None    # None: the 10th address of the service subnet
    dns_source: str = DEFAULT_DNS_SOURCE  # what chose the cluster DNS address
    node_local_dns_ip: str | None = None  # NodeLocal DNSCache: the pods' nameserver when set
    dns_service: str = "kube-dns"         # the DNS Service's expected name in kube-system

    @property
    def dns_ip(self) -> str:
        """The cluster DNS Service's address (CoreDNS behind kube-dns/coredns)."""
        if self.cluster_dns_ip:
            return self.cluster_dns_ip
        return str(ipaddress.ip_network(self.service_subnet)[10])

    @property
    def pod_dns_servers(self) -> tuple[str, ...]:
        """Nameservers a pod may be given: NodeLocal DNSCache's address first when in use."""
        return tuple(dict.fromkeys(a for a in (self.node_local_dns_ip, self.dns_ip) if a))

    @property
    def overlay(self) -> str:
        """The overlay's UDP port and what chose it, as findings print it."""
        return f"udp/{self.vxlan_port} (overlay: {self.vxlan_source})"

    @property
    def kubernetes_service_ip(self) -> str:
        """The `kubernetes` Service always gets the first address of the service subnet."""
        return str(ipaddress.ip_network(self.service_subnet)[1])

    def __post_init__(self):
        for name in ("pod_subnet", "service_subnet"):
            ipaddress.ip_network(getattr(self, name))  # fail early on a typo
        for name in ("cluster_dns_ip", "node_local_dns_ip"):
            if getattr(self, name):
                ipaddress.ip_address(getattr(self, name))


def parse_version(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    parts = str(text).lstrip("v").split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        raise ValueError(f"not a Kubernetes version: {text!r} (expected e.g. v1.31.2)") from None


# --- what kubespray's inventory variables say ----------------------------------------------
# Names only kubespray's group_vars use (inventory/sample/group_vars/k8s_cluster/k8s-cluster.yml);
# kube_pods_subnet/kube_service_addresses alone do not count: plain kubeadm inventories use them.
KUBESPRAY_VARS = ("kube_network_plugin", "dns_mode", "skydns_server", "enable_nodelocaldns",
                  "nodelocaldns_ip", "manual_dns_server")
# kubespray's defaults (roles/kubespray_defaults/defaults/main/main.yml)
KUBESPRAY_NODELOCALDNS_IP = "169.254.25.10"
KUBESPRAY_DNS_INDEX = 3  # skydns_server: kube_service_addresses | ipaddr('net') | ipaddr(3)


def is_kubespray(cluster_vars: Mapping[str, Any]) -> bool:
    return any(name in cluster_vars for name in KUBESPRAY_VARS)


def _truthy(value: Any) -> bool:
    """Ansible's truthiness for inventory values: "false"/"no"/"0" are False."""
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"true", "yes", "y", "on", "1", "t"}


def _address(value: Any) -> str | None:
    """An IP address, or None for anything else (e.g. an unrendered `{{ ... }}` template)."""
    try:
        return str(ipaddress.ip_address(str(value).strip()))
    except ValueError:
        return None


def _port(value: Any) -> int | None:
    text = str(value).strip()
    return int(text) if text.isdigit() and 0 < int(text) < 65536 else None


@dataclass(frozen=True)
class DnsChoice:
    ip: str | None   # None: the default (10th address)
    source: str
    node_local_ip: str | None
    service: str


def choose_cluster_dns(cluster_vars: Mapping[str, Any], service_subnet: str,
                       cli: str | None = None) -> DnsChoice:
    """The cluster DNS Service address, where it came from, NodeLocal DNSCache's address and
    the Service's name. --cluster-dns wins; then kubeaccept_cluster_dns; then kubespray's
    skydns_server (its default: the 3rd address of kube_service_addresses, Service
    kube-system/coredns); else kubeadm's 10th address (kube-system/kube-dns)."""
    cv = cluster_vars
    kubespray = is_kubespray(cv)
    service = "coredns" if kubespray else "kube-dns"
    local = None
    if kubespray and _truthy(cv.get("enable_nodelocaldns", True)):
        local = _address(cv.get("nodelocaldns_ip", KUBESPRAY_NODELOCALDNS_IP))
    if cli:
        return DnsChoice(cli, "--cluster-dns", local, service)
    if cv.get("kubeaccept_cluster_dns"):
        return DnsChoice(str(cv["kubeaccept_cluster_dns"]), "inventory kubeaccept_cluster_dns",
                         local, service)
    if not kubespray:
        return DnsChoice(None, DEFAULT_DNS_SOURCE, None, service)
    mode = str(cv.get("dns_mode", "coredns")).strip()
    if mode == "manual" and _address(cv.get("manual_dns_server", "")):
        return DnsChoice(_address(cv["manual_dns_server"]),
                         "kubespray dns_mode: manual, manual_dns_server", local, service)
    given = _address(cv.get("skydns_server", ""))
    if given:
        return DnsChoice(given, "kubespray skydns_server", local, service)
    third = str(ipaddress.ip_network(service_subnet, strict=False)[KUBESPRAY_DNS_INDEX])
    return DnsChoice(third, f"kubespray's skydns_server: 3rd address of {service_subnet}",
                     local, service)


_PLUGINS = {  # kube_network_plugin -> (overlay, its own port variable, default port)
    "flannel": ("flannel VXLAN", "flannel_vxlan_port", 8472),
    "canal": ("Canal's flannel VXLAN", None, 8472),
    "calico": ("Calico VXLAN", "calico_vxlan_port", 4789),
    "cilium": ("Cilium VXLAN tunnel-port", None, 8472),
}


def choose_vxlan_port(cluster_vars: Mapping[str, Any], cli: int | None = None
                      ) -> tuple[int, str]:
    """The overlay's UDP port and what chose it: --vxlan-port, kubeaccept_vxlan_port, then
    kubespray's kube_network_plugin with its variables (flannel 8472, Calico VXLAN 4789,
    Cilium 8472 / Geneve 6081, Canal 8472), else 8472."""
    cv = cluster_vars
    if cli:
        return cli, "--vxlan-port"
    if _port(cv.get("kubeaccept_vxlan_port", "")):
        return _port(cv["kubeaccept_vxlan_port"]), "inventory kubeaccept_vxlan_port"
    plugin = str(cv.get("kube_network_plugin", "")).strip().lower()
    if not plugin:
        return DEFAULT_VXLAN_PORT, DEFAULT_VXLAN_SOURCE
    what = f"kube_network_plugin: {plugin}"
    if plugin not in _PLUGINS:
        return DEFAULT_VXLAN_PORT, (f"{what} has no VXLAN port known to kubeaccept; default "
                                    f"{DEFAULT_VXLAN_PORT} (set --vxlan-port)")
    overlay, var, port = _PLUGINS[plugin]
    tunnel = None  # why there is no VXLAN tunnel, if there is none
    if plugin == "flannel":
        backend = str(cv.get("flannel_backend_type", "vxlan")).strip().lower()
        tunnel = None if backend == "vxlan" else f"flannel_backend_type: {backend}"
    elif plugin == "calico":
        mode = str(cv.get("calico_vxlan_mode", "Always")).strip()
        tunnel = None if mode.lower() != "never" else f"calico_vxlan_mode: {mode}"
    elif plugin == "cilium":
        mode = str(cv.get("cilium_tunnel_mode", "vxlan")).strip().lower()
        if mode == "geneve":
            overlay, port = "Cilium Geneve tunnel-port", 6081
        elif mode != "vxlan":
            tunnel = f"cilium_tunnel_mode: {mode}"
    if tunnel:
        return DEFAULT_VXLAN_PORT, (f"{what} with {tunnel} uses no VXLAN tunnel; default "
                                    f"{DEFAULT_VXLAN_PORT} kept (set --vxlan-port)")
    if var and var in cv:
        if _port(cv[var]):
            return _port(cv[var]), f"{overlay}, {var} for {what}"
        return port, f"{overlay}, {var} unreadable ({cv[var]!r}): {plugin}'s default for {what}"
    default = f"{var} default" if var else "default"
    return port, f"{overlay}, kubespray's {default} for {what}"
