"""Settings: built once from the command line, pytest.ini and the inventory, then passed down."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

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
