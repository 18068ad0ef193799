"""etcd behind the control planes (field report 03: a member down, a new leader elected)."""

import pytest

from kubeaccept.checks import etcd
from kubeaccept.roles import CONTROL_PLANE, ETCD


def cluster_etcd(cluster, apiserver_readyz, verdict):
    """Members = the etcd hosts, all healthy, one leader on one raft term, quorum holds; each
    apiserver's /readyz agrees."""
    members = cluster.inventory.by_role(ETCD) or cluster.inventory.by_role(CONTROL_PLANE)
    if not members:
        pytest.fail(f"{cluster.inventory.source} has no etcd or control-plane host: put the "
                    "control planes in kube_control_plane (or masters)", pytrace=False)
    verdict(etcd.etcd_cluster(list(members), cluster.facts, apiserver_readyz))
