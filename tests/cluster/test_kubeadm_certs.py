"""kubeadm's uploaded control-plane certificates (field report 03: gone after 2 hours)."""

from kubeaccept.checks import kubeadm_certs


def cluster_kubeadm_certs(api, verdict):
    """Information only: whether a control plane could join now, and how to make it so."""
    verdict(kubeadm_certs.kubeadm_certs_secret(api))
