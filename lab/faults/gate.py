"""Faults for the failover gate (selftests/lab/test_failover.py): clusters the gate must
refuse to power off, or whose power-on fails."""

from __future__ import annotations

from .. import cluster
from .actions import (
    _add_member_back,
    _coredns_on,
    _no_health_checks,
    _remove_member,
)
from .fault import Fault

FAULTS = {f.name: f for f in (
    # For the failover gate: what the non-destructive suite need not fail on, but the gate must.
    Fault("etcd-two-members", "etcd reduced to 2 members (cp3 removed): one loss = no quorum",
          "cp3", control_plane=True, restart=("kube-apiserver",),
          action=_remove_member, undo=_add_member_back),
    Fault("haproxy-no-checks", "HAProxy without health checks on its apiserver servers", "lb1",
          control_plane=True, restart=("haproxy",), action=_no_health_checks),
    Fault("coredns-one-master", "both CoreDNS replicas on cp1, as in field report 03", "cp1",
          control_plane=True, sync_dns=True, action=_coredns_on("cp1"),
          undo=_coredns_on(cluster.COREDNS_NODE)),
    Fault("power-on-fails", "the lab's power-on command fails (a dead BMC)", "cp1",
          control_plane=True, flag="power_on_fails", action=lambda rt: None),
)}
