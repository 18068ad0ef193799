"""Where the hosts come from: an Ansible inventory (kubespray's layout, read by ansible-core),
testinfra-style host specs, the ssh arguments and kubespray's variables."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from kubeaccept.inventory.ansible import load_inventory, resolve_inventory_path
from kubeaccept.inventory.specs import parse_host_specs
from kubeaccept.model.hosts import Inventory, InventoryError
from kubeaccept.model.roles import parse_role_groups


def load_hosts(value: str, cwd: Path, role_groups: str | None = None) -> Inventory:
    """What --hosts names: an inventory path (file or directory), else host specs;
    `role_groups`: --role-groups (ROLE=GROUP,... for groups kubeaccept does not know)."""
    try:
        mapping = parse_role_groups(role_groups)
    except ValueError as exc:
        raise InventoryError(str(exc)) from None
    path = resolve_inventory_path(value, cwd)
    if path is None:
        return parse_host_specs(value)
    return replace(load_inventory(path, role_groups=mapping), role_groups=role_groups or "")
