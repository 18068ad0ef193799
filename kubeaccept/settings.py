"""Settings: built once from the command line, pytest.ini and the inventory, then passed down."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    connect_timeout: float = 10.0
    command_timeout: float = 60.0
    probe_timeout: float = 3.0
    pod_subnet: str = "10.244.0.0/16"
    service_subnet: str = "10.96.0.0/12"
    vxlan_port: int = 8472
    cert_expiry_days: float = 30.0  # a certificate expiring sooner than this fails
    kube_version: tuple[int, int] | None = None  # None: read it from each node
    restart_threshold: int = 10          # a container restarted more often than this fails
    flap_window_minutes: float = 60.0    # NodeReady/NodeNotReady events seen in this window...
    flap_threshold: int = 4              # ...this many times or more: the node is flapping
    dnsutils_image: str = "registry.k8s.io/e2e-test-images/jessie-dnsutils:1.3"
    cluster_dns_ip: str | None = None    # None: the 10th address of the service subnet

    @property
    def dns_ip(self) -> str:
        if self.cluster_dns_ip:
            return self.cluster_dns_ip
        return str(ipaddress.ip_network(self.service_subnet)[10])

    @property
    def kubernetes_service_ip(self) -> str:
        """The `kubernetes` Service always gets the first address of the service subnet."""
        return str(ipaddress.ip_network(self.service_subnet)[1])

    def __post_init__(self):
        for name in ("pod_subnet", "service_subnet"):
            ipaddress.ip_network(getattr(self, name))  # fail early on a typo


def parse_version(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    parts = str(text).lstrip("v").split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        raise ValueError(f"not a Kubernetes version: {text!r} (expected e.g. v1.31.2)") from None
