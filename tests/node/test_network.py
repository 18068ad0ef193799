"""Ports and firewall (field report 03: firewalld ports, the FORWARD REJECT that broke DNS)."""

import pytest

from kubeaccept.checks import firewall, ports
from kubeaccept.roles import ETCD, NODE


# Also on etcd hosts apart from the control planes (their 2379/2380).
@pytest.mark.roles(*NODE, ETCD)
def node_listening_ports(node, verdict):
    """Every port of the node's role has a listening process."""
    verdict(ports.listening_ports(node))


@pytest.mark.roles(*NODE, ETCD)
def node_ports_reachable(node, verdict):
    """The node's ports accept connections from the nodes that need them."""
    verdict(ports.ports_reachable(node))


@pytest.mark.roles(*NODE)
def node_firewall_input(node, verdict):
    """INPUT accepts the cluster's ports, VXLAN and the NodePort range from the other nodes."""
    verdict(firewall.firewall_input(node))


@pytest.mark.roles(*NODE)
def node_firewall_forward(node, verdict):
    """FORWARD does not reject or drop pod-to-pod traffic before accepting it."""
    verdict(firewall.firewall_forward(node))
