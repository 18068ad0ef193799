"""Pods and DaemonSets (field report 02: fluentd in CrashLoopBackOff, ContainerCannotRun)."""

from kubeaccept.checks import pods


def cluster_pods_healthy(api, cluster, verdict):
    """No container in CrashLoopBackOff or restarted more than --restart-threshold times."""
    verdict(pods.pods_healthy(api, cluster.settings))


def cluster_daemonsets(api, verdict):
    """Every DaemonSet ready on every node it is scheduled to."""
    verdict(pods.daemonsets_ready(api))
