"""Every check module, imported so that each registers its checks; then the registry."""

from kubeaccept.checks import (  # noqa: F401 - imported to register their checks
    baseline,
    certs,
    cgroup,
    controlplane,
    dns,
    etcd,
    failover,
    firewall,
    kubeadm_certs,
    lb,
    nodes,
    podnet,
    pods,
    ports,
    swap,
    sysctl,
)
from kubeaccept.model.registry import Check, ordered


def load() -> dict[str, Check]:
    """Every check (the failover gate's declaration too), in the order of the reports."""
    return ordered()
