"""Which ports each role serves, and from which roles they must be reachable (kubeadm's
"Ports and Protocols"). Data, so that checks, probes and the lab agree."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

from kubeaccept.model.hosts import Host, Inventory, node_ip
from kubeaccept.model.roles import CONTROL_PLANE, ETCD, NODE


@dataclass(frozen=True)
class Port:
    number: int
    component: str
    roles: tuple[str, ...]          # roles whose hosts listen on it
    reach_from: tuple[str, ...]     # roles that must connect to it; () = local use only
    proto: str = "tcp"
    until: tuple[int, int] | None = None  # served by default only before this version

    @property
    def label(self) -> str:
        return f"{self.proto}/{self.number} ({self.component})"


PORTS = (
    Port(6443, "kube-apiserver", (CONTROL_PLANE,), NODE),
    # etcd's ports belong to the etcd members: the control planes with kubeadm's stacked etcd,
    # the etcd hosts with an external one (kubespray's etcd group apart from the control planes).
    Port(2379, "etcd client", (ETCD,), (CONTROL_PLANE, ETCD)),
    Port(2380, "etcd peer", (ETCD,), (ETCD,)),
    Port(10250, "kubelet", NODE, (CONTROL_PLANE,)),
    Port(10257, "kube-controller-manager", (CONTROL_PLANE,), ()),
    Port(10259, "kube-scheduler", (CONTROL_PLANE,), ()),
    # Insecure ports: kubeadm disabled them by default in v1.19 (--port=0).
    Port(10251, "kube-scheduler (insecure, legacy)", (CONTROL_PLANE,), (), until=(1, 19)),
    Port(10252, "kube-controller-manager (insecure, legacy)", (CONTROL_PLANE,), (), until=(1, 19)),
)
NODEPORT_RANGE = (30000, 32767)


def served(roles, version: tuple[int, int] | None) -> list[Port]:
    """Ports a host with these roles must listen on, for this Kubernetes version (None: current)."""
    return list(_served(frozenset(roles), version))


@functools.lru_cache(maxsize=256)
def _served(roles: frozenset, version: tuple[int, int] | None) -> tuple[Port, ...]:
    return tuple(p for p in PORTS if set(p.roles) & roles
                 and (p.until is None or (version and version < p.until)))


def reachable_from(target_roles, source_roles) -> list[Port]:
    """Ports of a target that a source must be able to connect to (asked for every pair of
    hosts: cached by roles)."""
    return list(_reachable(frozenset(target_roles), frozenset(source_roles)))


@functools.lru_cache(maxsize=256)
def _reachable(target_roles: frozenset, source_roles: frozenset) -> tuple[Port, ...]:
    return tuple(p for p in _served(target_roles, None) if set(p.reach_from) & source_roles)


# --probe-sources auto: every source below this many hosts, else one per port
PROBE_ALL_BELOW = 100


def probe_sources(option: str, hosts: int) -> int:
    """--probe-sources: "all" (0), a number, or "auto" (all below PROBE_ALL_BELOW hosts,
    else 1: each port probed from one of its users, spread over them)."""
    if option == "auto":
        return 0 if hosts < PROBE_ALL_BELOW else 1
    if option == "all":
        return 0
    if not option.isdigit() or int(option) < 1:
        raise ValueError(f"--probe-sources={option}: give all, auto or a number >= 1")
    return int(option)


def probers(target: Host, port: Port, inventory: Inventory, limit: int) -> list[str]:
    """Names of the hosts that probe `target`'s `port`: every host that uses it, or `limit`
    of them ranked by a hash of (target, port, source), so that a run's probes spread over
    the sources and the same ones are picked every run."""
    held = _PROBERS.get(id(inventory))
    if held is None or held[0] is not inventory:  # an id is reused once its object is gone
        held = _PROBERS[id(inventory)] = (inventory, {})
    picks, key = held[1], (target.name, port.number, limit)
    if key not in picks:
        users = [h.name for h in inventory.hosts
                 if h.name != target.name and set(h.roles) & set(port.reach_from)]
        if limit and len(users) > limit:
            users = sorted(users, key=lambda n: hashlib.sha256(
                f"{target.name}/{port.number}/{n}".encode()).digest())[:limit]
        picks[key] = users
    return picks[key]


# id(inventory) -> (the inventory, {(target, port, limit): probers}): every source's
# probe_targets asks for every target's probers, so they are ranked once per run
_PROBERS: dict[int, tuple[Inventory, dict[tuple, list[str]]]] = {}


def probe_targets(source: Host, inventory: Inventory, limit: int = 0) -> list[str]:
    """ADDRESS:PORT a source host must be able to reach on the other hosts (with a limit,
    only those it was picked to probe)."""
    targets = []
    for target in inventory.hosts:
        if target.name == source.name:
            continue
        for port in reachable_from(target.roles, source.roles):
            if limit and source.name not in probers(target, port, inventory, limit):
                continue
            targets.append(f"{node_ip(target)}:{port.number}")
    return targets
