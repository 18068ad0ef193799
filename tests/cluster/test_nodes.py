"""Nodes as the API sees them (field report 02: NotReady with PLEG, flapping x8929/x8932)."""

from kubeaccept import checks
from kubeaccept.checks import nodes
from kubeaccept.roles import NODE


def cluster_nodes_ready(api, cluster, verdict):
    """Every Node Ready, and every inventory node registered as a Node."""
    hosts = [(h.name, checks.node_ip(h)) for h in cluster.inventory.by_role(*NODE)]
    verdict(nodes.nodes_ready(api, hosts))


def cluster_nodes_not_flapping(api, cluster, verdict):
    """No Node going NotReady and Ready again and again in the flap window."""
    verdict(nodes.nodes_not_flapping(api, cluster.settings))
