"""The hosts to test: an Ansible inventory (kubespray's layout), or testinfra-style host specs.

Inventories are read by ansible-core itself, so group_vars, host_vars, INI and YAML mean
what they mean to `ansible-playbook -i`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from .roles import CONTROL_PLANE, ETCD, GROUP_ROLES, LB, WORKER, roles_of_groups


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


@dataclass(frozen=True)
class Inventory:
    source: str
    # Sorted by role (control plane, etcd, worker, lb, other), then by name with numbers
    # compared as numbers, so reports do not depend on how the inventory is laid out.
    hosts: tuple[Host, ...]
    # Variables of groups all and k8s_cluster (kube_pods_subnet, kube_version, ...).
    cluster_vars: Mapping[str, Any] = _no_vars()

    def by_role(self, *roles: str) -> tuple[Host, ...]:
        return tuple(h for h in self.hosts if h.roles.intersection(roles))

    def get(self, name: str) -> Host:
        found = [h for h in self.hosts if h.name == name]
        if not found:
            raise KeyError(f"no host {name!r} in {self.source}")
        return found[0]


INVENTORY_FILES = ("hosts.yaml", "hosts.yml", "hosts.ini", "hosts",
                   "inventory.yaml", "inventory.yml", "inventory.ini", "inventory")
SKIPPED_DIRS = ("examples", "lab", "group_vars", "host_vars")
CLUSTER_GROUPS = ("all", "k8s_cluster", "k8s-cluster")
_ROLE_ORDER = (CONTROL_PLANE, ETCD, WORKER, LB)
_TRUE, _FALSE = {"true", "yes", "y", "on", "1", "t"}, {"false", "no", "n", "off", "0", "f", ""}


def _bool(value: Any, what: str) -> bool:
    # Ansible's truthiness, not Python's: the string "false" is False.
    if isinstance(value, bool):
        return value
    if (text := str(value).strip().lower()) in _TRUE | _FALSE:
        return text in _TRUE
    raise InventoryError(f"{what} is {value!r}, not a boolean (use true or false)")


def _inventory_files(d: Path, shown: str) -> list[Path]:
    files = [d / n for n in INVENTORY_FILES if (d / n).is_file()]
    if len(files) > 1:
        raise InventoryError(f"{shown} holds several inventory files "
                             f"({', '.join(p.name for p in files)}): keep one, or pass "
                             f"--hosts={shown}<file>")
    return files


def resolve_inventory_path(value: str, cwd: Path) -> Path | None:
    if not value.strip() or "," in value or "://" in value:
        return None
    path, shown = cwd / Path(value).expanduser(), value.rstrip("/") + "/"
    if path.is_file() or not path.is_dir():
        return path if path.is_file() else None
    if direct := _inventory_files(path, shown):
        return direct[0]
    found = {d.name: files for d in sorted(path.iterdir())
             if d.is_dir() and not d.name.startswith(".") and d.name not in SKIPPED_DIRS
             and (files := _inventory_files(d, f"{shown}{d.name}/"))}
    if len(found) > 1:
        raise InventoryError(f"{shown} holds several cluster inventories ({', '.join(found)}): "
                             f"pass --hosts={shown}<cluster>")
    if not found:
        raise InventoryError(f"{shown} holds no cluster inventory (examples/ is never used): "
                             f"copy your cluster's hosts.yaml to {shown}<cluster>/hosts.yaml "
                             "or pass --hosts=PATH")
    return next(iter(found.values()))[0]


@contextmanager
def _quiet_strict_ansible(path: Path, failures: list):
    """Make ansible fail on an unparsable source, and keep its console output to ourselves."""
    from ansible import constants as C
    from ansible.utils.display import Display

    # One plugin per file type, so a broken hosts.yaml is not half-read as INI.
    plugins = {".yaml": ["yaml"], ".yml": ["yaml"], ".json": ["yaml"], ".ini": ["ini"],
               ".toml": ["toml"]}.get(path.suffix.lower() if path.is_file() else "")
    settings = {"INVENTORY_ENABLED": plugins or ["yaml", "ini"],
                "INVENTORY_UNPARSED_IS_FAILED": True, "INVENTORY_ANY_UNPARSED_IS_FAILED": True}
    saved = {k: getattr(C, k) for k in settings}
    display = Display()
    hooks = {"warning": lambda *a, **kw: None, "deprecated": lambda *a, **kw: None,
             "display": lambda *a, **kw: None,
             "error_as_warning": lambda msg, exception, **kw: failures.append(exception)}
    for k, v in settings.items():
        setattr(C, k, v)
    for k, v in hooks.items():
        setattr(display, k, v)
    try:
        yield
    finally:
        for k, v in saved.items():
            setattr(C, k, v)
        for k in hooks:
            vars(display).pop(k, None)


def _ansible_message(exc: BaseException, path: Path) -> str:
    """Ansible's message on one line, with the file and line it points at when it knows them."""
    where, cur = "", exc
    while cur is not None:
        if getattr(origin := getattr(cur, "obj", None), "line_num", None):
            shown = "" if origin.path == str(path) else f"{origin.path} "
            where = f"{shown}line {origin.line_num}: "
            break
        cur = cur.__cause__ or cur.__context__
    return " ".join((where + str(getattr(exc, "message", exc))).split())


def _render(templar, value: Any) -> Any:
    if isinstance(value, str) and ("{{" in value or "{%" in value):
        with suppress(Exception):  # needs role defaults or filters we do not have: leave it
            return templar.template(value)
    return value


def _plain_vars(raw: Mapping[str, Any], templar, skip=frozenset()) -> dict[str, Any]:
    out = {}
    for k, v in raw.items():
        if k not in skip:
            with suppress(TypeError, ValueError):  # vault-encrypted and other non-data values
                out[str(k)] = json.loads(json.dumps(_render(templar, v)))
    return out


def _host(name: str, groups: frozenset[str], raw: Mapping[str, Any], templar, src: Path,
          C) -> Host:
    def pick(*names: str) -> Any:
        for n in (n for n in names if raw.get(n) is not None):
            try:  # str() of a vault-encrypted value needs the vault password
                value = _render(templar, raw[n])
                return value if isinstance(value, bool) else str(value)
            except Exception as e:
                raise InventoryError(f"{src}: host {name}: cannot read {n} (vault-encrypted "
                                     f"values are not supported): {_ansible_message(e, src)}"
                                     ) from None
        return None

    ssh_args = f"{pick('ansible_ssh_common_args')} {pick('ansible_ssh_extra_args')}"
    opts = {k.lower(): v.strip("'\"") for k, v in re.findall(
        r"(?i)(UserKnownHostsFile|StrictHostKeyChecking)[= ]\s*(\S+)", ssh_args)}
    checking = pick("ansible_host_key_checking", "ansible_ssh_host_key_checking")
    checking = C.HOST_KEY_CHECKING if checking is None else checking
    if "stricthostkeychecking" in opts:
        checking = opts["stricthostkeychecking"].lower() not in ("no", "off", "accept-new")
    key_file = pick("ansible_ssh_private_key_file", "ansible_private_key_file")
    known_hosts = opts.get("userknownhostsfile")
    port = pick("ansible_port", "ansible_ssh_port") or C.DEFAULT_REMOTE_PORT or 22
    if not str(port).isdigit():
        raise InventoryError(f"{src}: host {name}: ansible_port is {port!r}, not a number")
    # str(): ansible hands out tagged str subclasses that pytest-xdist cannot serialize.
    return Host(
        name=str(name),
        address=str(pick("ansible_host", "ansible_ssh_host") or name),
        port=int(port),
        user=str(pick("ansible_user", "ansible_ssh_user") or C.DEFAULT_REMOTE_USER or "root"),
        key_file=str(Path(key_file).expanduser()) if key_file else None,
        password=pick("ansible_password", "ansible_ssh_pass", "ansible_ssh_password"),
        become=_bool(pick("ansible_become") or False, f"{src}: host {name}: ansible_become"),
        become_password=pick("ansible_become_password", "ansible_become_pass"),
        known_hosts=str(Path(known_hosts).expanduser()) if known_hosts else None,
        host_key_checking=_bool(checking, f"{src}: host {name}: ansible_host_key_checking"),
        groups=groups,
        roles=roles_of_groups(groups),
        vars=MappingProxyType(_plain_vars(raw, templar, C.INTERNAL_STATIC_VARS)),
    )


def _sort_key(h: Host):
    rank = min((_ROLE_ORDER.index(r) for r in h.roles), default=len(_ROLE_ORDER))
    return rank, [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", h.name)]


def load_inventory(path: Path, *, allow_example: bool = False) -> Inventory:
    """Load an inventory file (or directory) as ansible does, group_vars and host_vars included."""
    from ansible import constants as C
    from ansible.errors import AnsibleError
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar
    from ansible.vars.manager import VariableManager
    from ansible.vars.plugins import get_vars_from_inventory_sources

    path, failures = Path(path).absolute(), []
    with _quiet_strict_ansible(path, failures):
        try:
            loader = DataLoader()
            manager = InventoryManager(loader=loader, sources=[str(path)])
            variables = VariableManager(loader=loader, inventory=manager)
            hosts = []
            for name, h in manager.hosts.items():
                groups = frozenset(str(g.name) for g in h.get_groups()) - {"all", "ungrouped"}
                raw = variables.get_vars(host=h, include_hostvars=False, stage="all")
                hosts.append(_host(name, groups, raw, Templar(loader, variables=raw), path, C))
            cluster: dict[str, Any] = {}
            for g in (manager.groups[n] for n in CLUSTER_GROUPS if n in manager.groups):
                cluster.update(g.get_vars())
                cluster.update(get_vars_from_inventory_sources(loader, [str(path)], [g], "all"))
            cluster = _plain_vars(cluster, Templar(loader, variables=cluster))
        except AnsibleError as e:
            why = "; ".join(dict.fromkeys(_ansible_message(c, path) for c in failures or [e]))
            raise InventoryError(f"cannot load inventory {path}: {why}") from None
    what = f"{path}: kubeaccept_example"
    if not allow_example and any(_bool(h.vars.get("kubeaccept_example", False), what)
                                 for h in hosts):
        raise InventoryError(f"{path} is an example inventory; copy it to inventory/<cluster>/, "
                             "put your nodes in and drop kubeaccept_example, "
                             "or pass --hosts=PATH to your own inventory")
    if not any(h.roles for h in hosts):
        found = ", ".join(sorted(set(manager.groups) - {"all", "ungrouped"})) or "none"
        what = f"{len(hosts)} hosts, none" if hosts else "no hosts"
        raise InventoryError(f"{path} has {what} in a known group (groups found: {found}; "
                             f"expected: {', '.join(GROUP_ROLES)})")
    return Inventory(str(path), tuple(sorted(hosts, key=_sort_key)), MappingProxyType(cluster))


SPEC_OPTIONS = ("ssh_identity_file", "sudo", "roles", "timeout")


def _spec_host(spec: str, default_roles: frozenset[str]) -> Host:
    url = urlsplit(spec if "://" in spec else "ssh://" + spec)
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
    if bad := sorted(roles - set(_ROLE_ORDER)):
        raise InventoryError(f"host spec {spec!r}: unknown role {', '.join(bad)} "
                             f"(known: {', '.join(_ROLE_ORDER)})")
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
        become=_bool(opts.get("sudo", False), f"host spec {spec!r}: sudo"),
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
    return Inventory("command line", tuple(hosts))


def load_hosts(value: str, cwd: Path) -> Inventory:
    """What --hosts names: an inventory path (file or directory), else host specs."""
    path = resolve_inventory_path(value, cwd)
    return load_inventory(path) if path is not None else parse_host_specs(value)
