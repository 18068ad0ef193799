"""Where the hosts come from: an Ansible inventory (kubespray's layout, read by ansible-core),
testinfra-style host specs, the ssh arguments and kubespray's variables."""

from __future__ import annotations

from pathlib import Path

from kubeaccept.inventory.ansible import load_inventory, resolve_inventory_path
from kubeaccept.inventory.specs import parse_host_specs
from kubeaccept.model.hosts import Inventory


def load_hosts(value: str, cwd: Path) -> Inventory:
    """What --hosts names: an inventory path (file or directory), else host specs."""
    path = resolve_inventory_path(value, cwd)
    return load_inventory(path) if path is not None else parse_host_specs(value)
