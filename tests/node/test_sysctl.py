"""Kernel settings every Kubernetes node needs (field report 01: Calico and rp_filter)."""

import pytest

from kubeaccept.checks import sysctl
from kubeaccept.roles import NODE


@pytest.mark.roles(*NODE)
def node_rp_filter(node, calico_rpf_exception, verdict):
    """Effective rp_filter is 0 or 1 on every interface (2 where Calico is told
    IgnoreLooseRPF)."""
    verdict(sysctl.rp_filter(node, calico_rpf_exception))


@pytest.mark.roles(*NODE)
def node_ip_forward(node, verdict):
    """net.ipv4.ip_forward = 1."""
    verdict(sysctl.ip_forward(node))


@pytest.mark.roles(*NODE)
def node_bridge_nf_call_iptables(node, verdict):
    """net.bridge.bridge-nf-call-iptables = 1 where br_netfilter is loaded."""
    verdict(sysctl.bridge_nf_call_iptables(node))
