"""kubeadm's certificates (field report 03: a 3-master cluster sharing one PKI)."""

import pytest

from kubeaccept.checks import certs
from kubeaccept.roles import CONTROL_PLANE, NODE


@pytest.mark.roles(*NODE)
def node_certificates(node, verdict):
    """Every kubeadm and kubelet client certificate is valid beyond the expiry window."""
    verdict(certs.certificates(node))


@pytest.mark.roles(CONTROL_PLANE)
def node_cluster_ca(node, verdict):
    """Every control plane holds the same cluster CA."""
    verdict(certs.cluster_ca(node))
