"""kubeaccept: acceptance checks for self-managed (kubeadm) Kubernetes HA clusters."""

__version__ = "0.1.0"
