"""testinfra-style host specs on the command line: [ssh|paramiko://][user@]host[:port][?opts]."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from kubeaccept.inventory.ansible import ROLE_ORDER, no_duplicates, to_bool
from kubeaccept.model.hosts import Host, Inventory, InventoryError
from kubeaccept.model.roles import GROUP_ROLES, WORKER, with_stacked_etcd

SPEC_OPTIONS = ("ssh_identity_file", "sudo", "roles", "timeout")


def _spec_host(spec: str, default_roles: frozenset[str]) -> Host:
    try:
        url = urlsplit(spec if "://" in spec else "ssh://" + spec)
    except ValueError:  # an unclosed [ of an IPv6 address
        raise InventoryError(f"host spec {spec!r} is not a URL: ssh://user@host:22") from None
    if url.scheme not in ("ssh", "paramiko"):
        raise InventoryError(f"unsupported host spec {spec!r}: kubeaccept connects over SSH "
                             "(ssh:// or paramiko://)")
    if not url.hostname or url.path.strip("/") or url.hostname.endswith((".yaml", ".yml",
                                                                         ".ini")):
        raise InventoryError(f"{spec!r} is neither an existing inventory file or directory "
                             "nor a host spec like ssh://user@host:22")
    opts = dict(parse_qsl(url.query, keep_blank_values=True))
    if unknown := sorted(set(opts) - set(SPEC_OPTIONS)):
        raise InventoryError(f"host spec {spec!r}: unknown option {', '.join(unknown)} "
                             f"(known: {', '.join(SPEC_OPTIONS)})")
    # "+" decodes to a space: roles=control_plane+etcd
    roles = frozenset(GROUP_ROLES.get(r, r) for r in opts.get("roles", "").split())
    if bad := sorted(roles - set(ROLE_ORDER)):
        raise InventoryError(f"host spec {spec!r}: unknown role {', '.join(bad)} "
                             f"(known: {', '.join(ROLE_ORDER)})")
    try:
        port = url.port or 22
    except ValueError:
        raise InventoryError(f"host spec {spec!r}: the port is not a number") from None
    key = opts.get("ssh_identity_file")
    return Host(
        name=url.hostname, address=url.hostname, port=port,
        user=unquote(url.username) if url.username else "root",
        password=unquote(url.password) if url.password else None,
        key_file=str(Path(key).expanduser()) if key else None,
        become=to_bool(opts.get("sudo", False), f"host spec {spec!r}: sudo"),
        roles=roles or frozenset(default_roles),
    )


def parse_host_specs(value: str, default_roles: frozenset[str] = frozenset({WORKER})) -> Inventory:
    """Comma-separated specs, as testinfra takes them: [ssh|paramiko://][user@]host[:port][?opts].

    Options: ssh_identity_file=KEY, sudo=true, roles=ROLE+ROLE (role or inventory group
    names; default_roles when absent), timeout (ignored: the suite's connect timeout applies).
    """
    hosts = [_spec_host(s.strip(), default_roles) for s in value.split(",") if s.strip()]
    if not hosts:
        raise InventoryError("--hosts is empty: pass an inventory path or ssh://user@host specs")
    no_duplicates(hosts, "--hosts")
    roles = with_stacked_etcd({h.name: h.roles for h in hosts})
    return Inventory("command line", tuple(replace(h, roles=roles[h.name]) for h in hosts))
