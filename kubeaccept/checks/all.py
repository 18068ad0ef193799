"""Every check module, imported so that each registers its checks; then the registry."""

from ..registry import Check, ordered
from . import (  # noqa: F401 - imported to register their checks
    baseline,
    certs,
    cgroup,
    controlplane,
    dns,
    etcd,
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


def load() -> dict[str, Check]:
    """Every check (the failover gate's too), in the order of the reports."""
    from ..failover import registration  # noqa: F401 - the gate lives above the checks

    return ordered()
