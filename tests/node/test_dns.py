"""Cluster DNS from every node (field report 03: DNS broken across nodes)."""

import pytest

from kubeaccept.checks import dns
from kubeaccept.roles import NODE


@pytest.mark.roles(*NODE)
def node_cluster_dns(node, verdict):
    """kubernetes.default.svc.cluster.local via the cluster DNS address answers the
    kubernetes Service address."""
    answer = node.facts.dns
    verdict(dns.node_dns(node.host.name, answer and dns.NodeDnsAnswer(**answer),
                         node.settings))
