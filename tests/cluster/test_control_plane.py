"""The HA control plane behind the load balancer (field report 03: HAProxy + keepalived VIP)."""

import pytest

from kubeaccept.checks import controlplane
from kubeaccept.roles import CONTROL_PLANE


def cluster_control_plane(cluster, apiserver_readyz, verdict):
    """Every control plane runs its four components and is ready; the endpoint answers through
    the load balancer, whose backends are exactly the control planes."""
    if not cluster.inventory.by_role(CONTROL_PLANE):
        pytest.fail(f"{cluster.inventory.source} has no control-plane host: put the control "
                    "planes in kube_control_plane (or masters)", pytrace=False)
    verdict(controlplane.control_plane(cluster, apiserver_readyz))
