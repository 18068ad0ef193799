"""Swap and cgroup driver: what kubelet and the container runtime need to agree on."""

import pytest

from kubeaccept.checks import cgroup, swap
from kubeaccept.roles import NODE


@pytest.mark.roles(*NODE)
def node_swap(node, verdict):
    """No active swap and none in /etc/fstab, unless kubelet allows swap."""
    verdict(swap.swap(node))


@pytest.mark.roles(*NODE)
def node_cgroup_driver(node, verdict):
    """The runtime's cgroup driver is systemd and equals kubelet's cgroupDriver."""
    verdict(cgroup.cgroup_driver(node))
