"""The hosts under test as the inventory gave them: Host, Inventory, and what follows from them
alone (the address peers use, the command line that runs as root, what the run says of them)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

from kubeaccept.model.roles import GROUP_ROLES


class InventoryError(Exception):
    """The hosts could not be determined; str() is one line saying what to do."""


def _no_vars():
    return field(default_factory=lambda: MappingProxyType({}), compare=False, repr=False)


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    port: int = 22
    user: str = "root"
    key_file: str | None = None
    password: str | None = field(default=None, repr=False)
    become: bool = False
    become_password: str | None = field(default=None, repr=False)
    known_hosts: str | None = None
    host_key_checking: bool = True
    groups: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()
    vars: Mapping[str, Any] = _no_vars()
    # ansible_connection's plugin: ssh, paramiko_ssh, local (run here), or one we cannot use.
    connection: str = "ssh"
    # How ssh would reach the host: a ProxyCommand (its %-tokens not yet expanded) or a
    # ProxyJump list ([user@]host[:port],...), from ansible_ssh_common_args and friends.
    proxy_command: str | None = None
    proxy_jump: str | None = None


@dataclass(frozen=True)
class Inventory:
    source: str
    # Sorted by role (control plane, etcd, worker, lb, other), then by name with numbers
    # compared as numbers, so reports do not depend on how the inventory is laid out.
    hosts: tuple[Host, ...]
    # Variables of groups all and k8s_cluster (kube_pods_subnet, kube_version, ...).
    cluster_vars: Mapping[str, Any] = _no_vars()
    role_groups: str = ""  # --role-groups as given (the failover journal re-reads with it)

    def by_role(self, *roles: str) -> tuple[Host, ...]:
        return tuple(h for h in self.hosts if h.roles.intersection(roles))

    def get(self, name: str) -> Host:
        found = [h for h in self.hosts if h.name == name]
        if not found:
            raise KeyError(f"no host {name!r} in {self.source}")
        return found[0]

    def to_json(self) -> str:
        """For xdist workers: they take the controller's inventory instead of loading it
        with ansible again (0.8 s per process at 50 hosts)."""
        def plain(h: Host) -> dict:
            d = {f.name: getattr(h, f.name) for f in fields(Host)}
            d.update(groups=sorted(h.groups), roles=sorted(h.roles), vars=dict(h.vars))
            return d
        return json.dumps({"source": self.source, "hosts": [plain(h) for h in self.hosts],
                           "cluster_vars": dict(self.cluster_vars),
                           "role_groups": self.role_groups})

    @classmethod
    def from_json(cls, text: str) -> Inventory:
        data = json.loads(text)
        hosts = tuple(Host(**{**h, "groups": frozenset(h["groups"]),
                              "roles": frozenset(h["roles"]),
                              "vars": MappingProxyType(h["vars"])}) for h in data["hosts"])
        return cls(data["source"], hosts, MappingProxyType(data["cluster_vars"]),
                   data.get("role_groups", ""))


def node_ip(host: Host) -> str:
    """The address other nodes use: kubespray's `ip`, else the SSH address."""
    return str(host.vars.get("ip") or host.address)


def as_root(host: Host, line: str) -> tuple[str, bytes]:
    """`line` with sudo when the inventory says so (ansible_become), and what to send on its
    standard input: the become password for `sudo -S`, else `sudo -n`, which fails at once
    ("a password is required") rather than waiting at a prompt."""
    if not host.become or host.user == "root":
        return line, b""
    if host.become_password:
        return f"sudo -S -p '' -- {line}", (host.become_password + "\n").encode()
    return f"sudo -n -- {line}", b""


def _example(groups) -> str:
    """A --role-groups value for these groups, as an example to edit."""
    names = sorted(groups) or ["GROUP"]
    return f"worker={','.join(names)}"


def unassigned(inventory: Inventory) -> list[str]:
    """One line per host kubeaccept does not test because none of its groups gives a role."""
    known = ", ".join(GROUP_ROLES)
    lines = []
    for h in inventory.hosts:
        if h.roles:
            continue
        groups = ", ".join(sorted(h.groups)) or "none"
        why = ("it is kubespray's bastion, through which the other hosts are reached"
               if h.name == "bastion" else
               f"put it in one of the groups kubeaccept knows ({known}), map its groups "
               f"(--role-groups {_example(h.groups)}), set kubernetes_role (control_plane, "
               "master, node) or kubeaccept_roles in its host variables, or leave it out")
        lines.append(f"host {h.name} is not tested: none of its groups ({groups}) gives it a "
                     f"role; {why}")
    return lines


def unchecked_host_keys(inventory: Inventory) -> str | None:
    """One line naming the hosts whose unknown SSH host key is accepted unseen, because the
    inventory turned host-key checking off (ansible_host_key_checking=false,
    StrictHostKeyChecking=no or accept-new): the operator sees it on every run."""
    names = [h.name for h in inventory.hosts
             if not h.host_key_checking and h.connection in ("ssh", "paramiko_ssh")]
    if not names:
        return None
    return (f"SSH host keys NOT verified for {', '.join(names)}: {inventory.source} turns "
            "host-key checking off (ansible_host_key_checking=false or StrictHostKeyChecking="
            "no/accept-new), so an unknown key is accepted; a key that differs from "
            "known_hosts is still refused")
