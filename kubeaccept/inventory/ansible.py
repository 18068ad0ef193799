"""The hosts to test: an Ansible inventory (kubespray's layout), or testinfra-style host specs.

Inventories are read by ansible-core itself, so group_vars, host_vars, INI and YAML mean
what they mean to `ansible-playbook -i`.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import shlex
import warnings
from collections.abc import Mapping
from contextlib import contextmanager, suppress
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from kubeaccept.inventory import sshargs
from kubeaccept.model.hosts import Host, Inventory, InventoryError
from kubeaccept.model.roles import (
    CONTROL_PLANE,
    ETCD,
    GROUP_ROLES,
    LB,
    RUNTIME_GROUPS,
    WORKER,
    roles_of_groups,
    roles_of_vars,
    with_stacked_etcd,
)

INVENTORY_FILES = ("hosts.yaml", "hosts.yml", "hosts.ini", "hosts",
                   "inventory.yaml", "inventory.yml", "inventory.ini", "inventory")
SKIPPED_DIRS = ("examples", "lab", "group_vars", "host_vars")
CLUSTER_GROUPS = ("all", "k8s_cluster", "k8s-cluster")
ROLE_ORDER = (CONTROL_PLANE, ETCD, WORKER, LB)
_TRUE, _FALSE = {"true", "yes", "y", "on", "1", "t"}, {"false", "no", "n", "off", "0", "f", ""}


def to_bool(value: Any, what: str) -> bool:
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


# Lookups without side effects; any other (password writes files, pipe and lines run
# commands, url and collections' reach the network) is not run while reading an inventory.
SAFE_LOOKUPS = frozenset({"env", "file", "fileglob", "first_found", "ini", "csvfile", "vars",
                          "varnames", "config", "items", "list", "dict", "indexed_items",
                          "nested", "together", "sequence", "subelements"})


def _only_safe_lookups(lookups):
    real = lookups.get

    def get(name, *args, **kwargs):
        short = str(name).removeprefix("ansible.builtin.").removeprefix("ansible.legacy.")
        if short not in SAFE_LOOKUPS:
            from ansible.errors import AnsibleError

            raise AnsibleError(f"lookup {name!r} is not run while reading an inventory (it may "
                               "write files, run commands or use the network)")
        return real(name, *args, **kwargs)

    return get


@contextmanager
def _quiet_strict_ansible(path: Path, failures: list):
    """Make ansible fail on an unparsable source, and keep its console output to ourselves."""
    from ansible import constants as C
    from ansible.plugins.loader import lookup_loader
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
    # read through the config manager (environment first), not through C
    saved_env = os.environ.get("ANSIBLE_DUPLICATE_YAML_DICT_KEY")
    os.environ["ANSIBLE_DUPLICATE_YAML_DICT_KEY"] = "error"
    for k, v in hooks.items():
        setattr(display, k, v)
    lookup_loader.get = _only_safe_lookups(lookup_loader)
    try:
        yield
    finally:
        if saved_env is None:
            os.environ.pop("ANSIBLE_DUPLICATE_YAML_DICT_KEY", None)
        else:
            os.environ["ANSIBLE_DUPLICATE_YAML_DICT_KEY"] = saved_env
        vars(lookup_loader).pop("get", None)
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


def _value(templar, raw: Mapping[str, Any], n: str, where: str) -> Any:
    """A connection variable, templated as Ansible would: an error if that cannot be done
    here (a vault-encrypted value, a lookup not run while reading an inventory)."""
    value = raw[n]
    try:
        if isinstance(value, str) and ("{{" in value or "{%" in value):
            value = templar.template(value)
        # str() of a vault-encrypted value needs the vault password
        return value if value is None or isinstance(value, (bool, int)) else str(value)
    except Exception as e:
        why = _ansible_message(e, Path(where.split(": host ")[0]))
        if "vault" in why.lower() or "decrypt" in why.lower():
            why = f"vault-encrypted values are not supported ({why})"
        raise InventoryError(f"{where}: cannot read {n}: {why}") from None


def _plugin_options(kind: str, name: str, raw, templar, where: str) -> dict[str, Any]:
    """The plugin's options as ansible-core resolves them for this host: its variables (the
    LAST name of an option's list that is set wins, so ansible_ssh_host beats ansible_host),
    then environment and ansible.cfg, then defaults."""
    from ansible import constants as C
    from ansible.errors import AnsibleError

    names = C.config.get_plugin_vars(kind, name)
    given = {n: _value(templar, raw, n, where) for n in names if raw.get(n) is not None}
    try:
        return C.config.get_plugin_options(kind, name, variables=given)
    except AnsibleError as e:
        raise InventoryError(f"{where}: {_ansible_message(e, Path(where))}") from None


def _connection_type(value: Any) -> str:
    """ansible_connection's plugin name: ssh (also smart), paramiko_ssh, local, or as given."""
    from ansible.plugins.loader import connection_loader

    name = str(value or "ssh").removeprefix("ansible.builtin.").removeprefix("ansible.legacy.")
    if name == "smart":
        return "ssh"
    with suppress(Exception):
        if (cls := connection_loader.get(name, class_only=True)) is not None:
            return cls._load_name
    return name


def _host(name: str, groups: frozenset[str], raw: Mapping[str, Any], templar, src: Path,
          bastion: Mapping[str, Any] | None, role_groups: Mapping[str, str]) -> Host:
    from ansible import constants as C

    where = f"{src}: host {name}"

    def pick(*names: str) -> Any:
        for n in (n for n in names if raw.get(n) is not None):
            return _value(templar, raw, n, where)
        return None

    for n in ("ansible_host", "ansible_ssh_host"):
        if n in raw and raw[n] is not None and not str(raw[n]).strip():
            raise InventoryError(f"{where} has no address ({n} is empty): set it to the "
                                 "host's IP address or DNS name")
    connection = _connection_type(pick("ansible_connection"))
    become = to_bool(pick("ansible_become") or False, f"{where}: ansible_become")
    become_password = _plugin_options("become", "sudo", raw, templar, where).get("become_pass")
    plain = _plain_vars(raw, templar, C.INTERNAL_STATIC_VARS)
    try:
        roles = roles_of_groups(groups, role_groups) | roles_of_vars(plain)
    except ValueError as exc:
        raise InventoryError(f"{where}: {exc}") from None
    common = {"name": str(name), "become": become, "groups": groups,
              "become_password": None if become_password is None else str(become_password),
              "roles": roles, "connection": connection, "vars": MappingProxyType(plain)}
    for n in ("ansible_host_key_checking", "ansible_ssh_host_key_checking"):
        if (v := pick(n)) is not None:  # ansible reads any other word as false: refuse it
            to_bool(v, f"{where}: {n}")
    if connection == "local":
        # Ansible's local connection runs commands here as the user running it.
        return Host(address=str(pick("ansible_host") or name), port=0,
                    user=getpass.getuser(), host_key_checking=False, **common)
    if connection not in ("ssh", "paramiko_ssh"):
        return Host(address=str(name), host_key_checking=True, **common)
    opts = _plugin_options("connection", connection, raw, templar, where)
    if connection == "ssh":
        address, args = opts.get("host"), []
        if raw.get("ansible_ssh_common_args") is None and bastion is not None \
                and name != "bastion":
            opts["ssh_common_args"] = _kubespray_bastion_args(
                bastion, pick("ansible_ssh_private_key_file"))
        for opt in ("ssh_args", "ssh_common_args", "ssh_extra_args"):
            args += sshargs.split(opts.get(opt))
            if opt == "ssh_args" and opts.get("host_key_checking") is False:
                args += ["-o", "StrictHostKeyChecking=no"]  # ansible puts it right here
        try:
            ssh = sshargs.with_config(sshargs.parse(args), str(address or name))
        except sshargs.SshArgsError as e:
            raise InventoryError(f"{where}: {e}") from None
        address = ssh.get("hostname") or address  # ssh_config's HostName for the alias
        strict = ssh.get("stricthostkeychecking")
        checking = strict is None or strict.lower() not in ("no", "off", "accept-new")
        known = (ssh.get("userknownhostsfile") or "").split()
        known_hosts = known[0] if known else None
        proxy_command, proxy_jump = ssh.proxy_command, ssh.proxy_jump
        user = opts.get("remote_user") or ssh.get("user")
        port = opts.get("port") or ssh.get("port")
        key_file = opts.get("private_key_file") or ssh.get("identityfile")
    else:  # paramiko: no ssh arguments; its own proxy_command (ansible_paramiko_proxy_command)
        address, user, port = opts.get("remote_addr"), opts.get("remote_user"), opts.get("port")
        key_file, known_hosts, proxy_jump = opts.get("private_key_file"), None, None
        checking = opts.get("host_key_checking") is not False
        proxy_command = opts.get("proxy_command") or None
    if port is not None and not str(port).isdigit():
        raise InventoryError(f"{where}: the SSH port is {port!r}, not a number")
    # str(): ansible hands out tagged str subclasses that pytest-xdist cannot serialize.
    return Host(
        address=str(address or name),
        port=int(port or 22),
        user=str(user or "root"),
        key_file=str(Path(str(key_file)).expanduser()) if key_file else None,
        password=None if opts.get("password") is None else str(opts["password"]),
        known_hosts=str(Path(known_hosts).expanduser()) if known_hosts else None,
        host_key_checking=bool(checking),
        proxy_command=None if proxy_command is None else str(proxy_command),
        proxy_jump=None if proxy_jump is None else str(proxy_jump),
        **common,
    )


def _kubespray_bastion_args(bastion: Mapping[str, Any], key_file: str | None) -> str:
    """kubespray's default ansible_ssh_common_args when the inventory has a host named
    bastion (roles/kubespray_defaults): every other host is reached through it."""
    user, address = bastion.get("ansible_user"), bastion.get("ansible_host") or "bastion"
    proxy = (f"ssh -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no -W %h:%p "
             f"-p {bastion.get('ansible_port') or 22} {user + '@' if user else ''}{address}"
             + (f" -i {key_file}" if key_file else ""))
    return f"-o ProxyCommand={shlex.quote(proxy)}"


def _sort_key(h: Host):
    rank = min((ROLE_ORDER.index(r) for r in h.roles), default=len(ROLE_ORDER))
    return rank, [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", h.name)]


def _add_runtime_groups(manager) -> None:
    """What kubespray's roles/dynamic_groups does first: group_by over each host's inventory
    groups (one pass), so group_vars/k8s_cluster/ applies although no k8s_cluster is declared."""
    static = {name: {str(g.name) for g in h.get_groups()} for name, h in manager.hosts.items()}
    for group, sources in RUNTIME_GROUPS.items():
        for name, groups in static.items():
            if groups & set(sources):  # as the group_by task: parent group all
                manager.add_dynamic_group(manager.hosts[name],
                                          {"add_group": group, "parent_groups": ["all"]})


def load_inventory(path: Path, *, allow_example: bool = False,
                   role_groups: Mapping[str, str] | None = None) -> Inventory:
    """Load an inventory file (or directory) as ansible does, group_vars and host_vars included;
    roles from the groups (and --role-groups' `role_groups`, group -> role) and host variables.
    Hosts without a role are kept (the run names them and says how to map them)."""
    from ansible.errors import AnsibleError
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.plugins.loader import become_loader, connection_loader
    from ansible.template import Templar
    from ansible.vars.manager import VariableManager
    from ansible.vars.plugins import get_vars_from_inventory_sources

    path, failures = Path(path).absolute(), []
    with _quiet_strict_ansible(path, failures):
        try:
            with warnings.catch_warnings():
                # ansible's ssh plugin imports cryptography's DSA names, deprecated by
                # cryptography 51: not the operator's problem, and an error under -W error
                warnings.simplefilter("ignore")
                for kind, plugins in (("ssh", connection_loader),
                                      ("paramiko_ssh", connection_loader),
                                      ("sudo", become_loader)):
                    plugins.get(kind, class_only=True)  # registers the plugin's options
            loader = DataLoader()
            manager = InventoryManager(loader=loader, sources=[str(path)])
            _add_runtime_groups(manager)
            variables = VariableManager(loader=loader, inventory=manager)
            raws = {name: variables.get_vars(host=h, include_hostvars=False, stage="all")
                    for name, h in manager.hosts.items()}
            bastion = None
            if "bastion" in raws:
                raw = raws["bastion"]
                bastion = _plain_vars(raw, Templar(loader, variables=raw))
            hosts = []
            for name, h in manager.hosts.items():
                groups = frozenset(str(g.name) for g in h.get_groups()) - {"all", "ungrouped"}
                raw = raws[name]
                hosts.append(_host(name, groups, raw, Templar(loader, variables=raw), path,
                                   bastion, role_groups or {}))
            cluster: dict[str, Any] = {}
            for g in (manager.groups[n] for n in CLUSTER_GROUPS if n in manager.groups):
                cluster.update(g.get_vars())
                cluster.update(get_vars_from_inventory_sources(loader, [str(path)], [g], "all"))
            cluster = _plain_vars(cluster, Templar(loader, variables=cluster))
        except AnsibleError as e:
            why = "; ".join(dict.fromkeys(_ansible_message(c, path) for c in failures or [e]))
            if "line " not in why and (where := _ini_syntax(path)):
                why = f"{where} ({why})"
            raise InventoryError(f"cannot load inventory {path}: {why}") from None
    no_duplicates(hosts, str(path))
    what = f"{path}: kubeaccept_example"
    if not allow_example and any(to_bool(h.vars.get("kubeaccept_example", False), what)
                                 for h in hosts):
        raise InventoryError(f"{path} is an example inventory; copy it to inventory/<cluster>/, "
                             "put your nodes in and drop kubeaccept_example, "
                             "or pass --hosts=PATH to your own inventory")
    if not hosts:
        raise InventoryError(f"{path} has no hosts: put the cluster's hosts in it (groups "
                             f"kubeaccept knows: {', '.join(GROUP_ROLES)})")
    return Inventory(str(path), _with_stacked_etcd(hosts), MappingProxyType(cluster))


def _ini_syntax(path: Path) -> str | None:
    """The line of an INI inventory that Ansible's parser failed on without saying where:
    a section header that is not closed ("[kube_node")."""
    files = [path] if path.is_file() else sorted(path.glob("*.ini"))
    for f in files:
        if f.suffix.lower() not in (".ini", "") or not f.is_file():
            continue
        for number, line in enumerate(f.read_text(errors="replace").splitlines(), 1):
            text = line.strip()
            if text.startswith("[") and not text.endswith("]"):
                return (f"{'' if f == path else f'{f} '}line {number}: section header "
                        f"{text!r} is not closed with ]")
    return None


def no_duplicates(hosts, source: str) -> None:
    """A host without an address, or two names for one address: a copy-paste slip that
    would test one machine twice and another not at all."""
    seen: dict[tuple[str, int], str] = {}
    for h in hosts:
        if h.connection == "local":
            continue
        if not str(h.address).strip():
            raise InventoryError(f"{source}: host {h.name} has no address (ansible_host is "
                                 "empty): set ansible_host to its IP address or DNS name")
        key = (str(h.address), h.port)
        if key in seen:
            raise InventoryError(f"{source}: hosts {seen[key]} and {h.name} have the same "
                                 f"address {h.address}:{h.port}: one of them is wrong")
        seen[key] = h.name


def _with_stacked_etcd(hosts: list[Host]) -> tuple[Host, ...]:
    roles = with_stacked_etcd({h.name: h.roles for h in hosts})
    return tuple(sorted((replace(h, roles=roles[h.name]) for h in hosts), key=_sort_key))


