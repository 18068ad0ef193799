"""The pod network's addresses agree everywhere (kubeadm podSubnet, flannel, node podCIDRs)."""

from kubeaccept import checks
from kubeaccept.checks import podnet


def cluster_pod_network(api, cluster, verdict):
    """podSubnet = flannel Network, podCIDRs inside it and disjoint, no overlap with Services
    or the node network."""
    verdict(podnet.pod_network(api, [checks.node_ip(h) for h in cluster.inventory.hosts]))
