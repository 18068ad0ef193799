"""containerd's cgroup driver as containerd itself reads it: the main config and its imports
(containerd's order and merge rules), the key paths of each config version, the default runtime
and the defaults, for the containerd version on the node (`containerd --version`)."""

from __future__ import annotations

import copy
import fnmatch
import posixpath
from dataclasses import dataclass, field

from kubeaccept.facts import FileFact, NodeFacts
from kubeaccept.facts.config import ConfigError, load

MAIN = "/etc/containerd/config.toml"
# Where gather.sh reads containerd files from (a *.toml in these directories, or nothing).
GATHERED_DIRS = ("/etc/containerd", "/etc/containerd/conf.d")
CRI_GRPC = "io.containerd.grpc.v1.cri"  # the CRI service; config version 1-2 runtime settings
CRI_RUNTIME = "io.containerd.cri.v1.runtime"  # containerd 2.x: config version 3+ settings
RUNC = "io.containerd.runc.v2"
LINUX_V1 = "io.containerd.runtime.v1.linux"
# containerd 2.x moves these CRI keys to other plugins when migrating a version 1/2 config.
NOT_RUNTIME_KEYS = {"sandbox_image", "registry", "image_decryption", "max_concurrent_downloads",
                    "image_pull_progress_timeout", "image_pull_with_sync_fs",
                    "stats_collect_period", "disable_tcp_service", "stream_server_address",
                    "stream_server_port", "stream_idle_timeout", "enable_tls_streaming",
                    "x509_key_pair_streaming", "cni", "containerd"}
IMAGE_KEYS = {"snapshotter", "disable_snapshot_annotations", "discard_unpacked_layers"}
CRI_UNIMPLEMENTED = ("kubelet and kubeadm fail with \"CRI v1 runtime API is not implemented for "
                     "endpoint \\\"unix:///var/run/containerd/containerd.sock\\\": rpc error: "
                     "code = Unimplemented desc = unknown service runtime.v1.RuntimeService\"")


@dataclass
class Problem:
    """containerd cannot serve kubelet at all; no cgroup driver question to ask."""

    observed: str
    why: str
    fix: str


@dataclass
class Containerd:
    version: tuple[int, int, int] | None
    how: str  # which containerd rules were applied, and why
    driver: str | None = None  # systemd, cgroupfs; None when not decidable from the files
    source: str = ""  # file: key = value (or the default) the driver comes from
    problem: Problem | None = None
    files: list[str] = field(default_factory=list)  # loaded, in containerd's order
    notes: list[str] = field(default_factory=list)
    reports_driver: bool | None = None  # implements CRI RuntimeConfig (containerd >= 2.0)
    options: str = ""  # [table] of the default runtime's options, where SystemdCgroup goes
    options_file: str = MAIN
    # What CRI RuntimeConfig tells kubelet (containerd 2.x), and from which runtime's options:
    # not always the default runtime's driver.
    reported: str | None = None
    reported_source: str = ""


@dataclass
class _File:
    path: str
    version: int  # as written (0: absent)
    raw: dict  # its plugins as written
    plugins: dict  # as containerd reads them after renaming and migrating


@dataclass
class _Section:
    """The merged CRI runtime table, and what says where its values come from."""

    table: dict
    key: str  # plugins."<id>" the table is read under
    files: list[_File]
    major: int
    origins: dict = field(default_factory=dict)  # 2.x: the table's leaves -> "file\0key"


def read(facts: NodeFacts) -> Containerd:
    """Raises parse.ConfigError for a file containerd cannot parse."""
    version = facts.runtime_versions.get("containerd")
    main = facts.file(MAIN)
    if not main.exists:
        ctd = Containerd(version, _version_words(version, None))
        ctd.reports_driver = None if version is None else version >= (2, 0, 0)
        ctd.driver, ctd.source = "cgroupfs", (
            f"{MAIN} absent: containerd's built-in defaults (runc SystemdCgroup = false)")
        ctd.notes += _unimported(facts, set())
        return ctd
    first = _read_file(main)
    major = 2 if (version and version >= (2, 0, 0)) or (
        version is None and _int(first.get("version")) >= 3) else 1
    ctd = Containerd(version, _version_words(version, _int(first.get("version")), major))
    ctd.reports_driver = True if major == 2 else (False if version else None)
    files = _load(facts, first, major, ctd)
    if ctd.problem:
        return ctd
    section = (_merge_1x if major == 1 else _merge_2x)(files, version, ctd)
    if section is not None and not ctd.problem:
        _runtime_driver(section, ctd)
    return ctd


# containerd decodes these keys into typed fields and refuses to start on another type.
_TYPED = {"imports": (list, "array"), "disabled_plugins": (list, "array"),
          "plugins": (dict, "table")}


def _read_file(fact: FileFact) -> dict:
    data = load(fact) or {}
    for key, (kind, name) in _TYPED.items():
        if key in data and not isinstance(data[key], kind):
            raise ConfigError(f"{fact.path}: {key} must be a TOML {name}, not "
                              f"{type(data[key]).__name__} (containerd cannot decode it)")
    return data


def _version_words(version, config_version, major=None) -> str:
    if version:
        return "containerd " + ".".join(map(str, version))
    words = "containerd version unknown (no `containerd --version` on the node"
    if config_version is None:
        return words + ")"
    return (f"{words}; read with containerd {major}.x rules, as config version "
            f"{config_version or 1} is written for them)")


def _int(value) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _scanned(facts: NodeFacts, directory: str) -> bool:
    """Whether the facts hold every *.toml of `directory` (so a missing one is missing)."""
    return (directory in GATHERED_DIRS and facts.section("runtime-files") is not None
            and "!truncated" not in facts.runtime_files)


def _not_read(path: str) -> str:
    return (f"import {path} not read (the facts hold /etc/containerd/*.toml and "
            "/etc/containerd/conf.d/*.toml only): settings it holds are not taken into account")


def _resolve(parent: str, imports, version, major: int) -> list[str]:
    """containerd's resolveImports: relative to the importing file's directory; a pattern
    with * is a glob (containerd before 1.6.29 / 1.7.16 globbed relative patterns from its
    working directory, / under systemd)."""
    old_glob = version is not None and major == 1 and (
        version < (1, 6, 29) or (1, 7, 0) <= version < (1, 7, 16))
    out = []
    for raw in imports if isinstance(imports, list) else []:
        path = posixpath.normpath(str(raw))
        if not path.startswith("/"):
            base = "/" if old_glob and "*" in path else posixpath.dirname(parent)
            path = posixpath.normpath(posixpath.join(base, path))
        out.append(path)
    return out


def _load(facts: NodeFacts, first: dict, major: int, ctd: Containerd) -> list[tuple[str, dict]]:
    """The files in containerd's order (the main file, then imports breadth first; a glob's
    matches sorted; each file once), parsed."""
    pending: list[tuple[str, dict | None]] = [(MAIN, first)]
    loaded: list[tuple[str, dict]] = []
    while pending:
        path, data = pending.pop(0)
        if path in dict(loaded):
            continue
        directory = posixpath.dirname(path)
        if "*" in path:
            if "*" in directory or not _scanned(facts, directory):
                ctd.notes.append(_not_read(path))
                continue
            matches = sorted(p for p in facts.runtime_files
                             if posixpath.dirname(p) == directory and fnmatch.fnmatchcase(
                                 posixpath.basename(p), posixpath.basename(path)))
            pending[:0] = [(m, None) for m in matches]
            continue
        if data is None:
            fact = facts.runtime_files.get(path)
            if fact is None and _scanned(facts, directory) and path.endswith(".toml"):
                ctd.problem = Problem(
                    f"containerd does not start: import {path} does not exist",
                    f"containerd stops at a missing import (\"open {path}: no such file or "
                    "directory\"); kubelet has no runtime and the node goes NotReady",
                    f"create {path} or remove it from `imports`; restart containerd")
                return []
            if fact is None:
                ctd.notes.append(_not_read(path))
                continue
            data = _read_file(fact)
        loaded.append((path, data))
        pending += [(p, None) for p in _resolve(path, data.get("imports"), ctd.version, major)]
    ctd.files = [p for p, _ in loaded]
    ctd.notes += _unimported(facts, set(ctd.files))
    return loaded


def _unimported(facts: NodeFacts, loaded: set[str]) -> list[str]:
    """conf.d files nothing imports: containerd never reads them (containerd 2.2+ only writes
    `imports = ['/etc/containerd/conf.d/*.toml']` into what `containerd config default`
    prints; it does not look into conf.d on its own)."""
    stray = sorted(p for p in facts.runtime_files
                   if p.startswith("/etc/containerd/conf.d/") and p not in loaded)
    return [f"{p} is not imported by {MAIN}: containerd does not read it" for p in stray]


def _v1_name(name: str) -> str:
    """containerd 2.x's renaming of version 1 plugin ids (only the CRI's matters here)."""
    if "." in name:
        return name
    return CRI_GRPC if name == "cri" else "io.containerd.grpc.v1." + name


def _migrate_cri(plugins: dict, replace: bool) -> None:
    """containerd 2.x's CRI runtime migration: version 1/2 settings under CRI_GRPC move to
    CRI_RUNTIME, each key only where CRI_RUNTIME does not set it (2.0.0 and 2.0.1 replaced
    CRI_RUNTIME with the migrated table)."""
    src = plugins.get(CRI_GRPC)
    if not isinstance(src, dict):
        return
    dst = plugins.get(CRI_RUNTIME)
    dst = {} if replace or not isinstance(dst, dict) else dst
    for key, value in src.items():
        if key not in NOT_RUNTIME_KEYS:
            dst.setdefault(key, value)
    if isinstance(src.get("containerd"), dict):
        table = dst.setdefault("containerd", {})
        if isinstance(table, dict):
            for key, value in src["containerd"].items():
                if key not in IMAGE_KEYS:
                    table.setdefault(key, value)
    plugins[CRI_RUNTIME] = dst


def _deep_merge(to: dict, src: dict) -> None:
    """mergo.Merge(WithOverride) over containerd 2.x's plugin maps: tables merge key by key,
    any other value of a later file replaces the earlier one."""
    for key, value in src.items():
        if isinstance(value, dict) and isinstance(to.get(key), dict):
            _deep_merge(to[key], value)
        else:
            to[key] = copy.deepcopy(value)


def _cri_disabled(ctd: Containerd, files, listed: str) -> None:
    where = next((p for p, d in files if listed in map(str, d.get("disabled_plugins") or [])),
                 MAIN)
    ctd.problem = Problem(
        "CRI disabled: kubelet cannot use this containerd "
        f"(disabled_plugins = [\"{listed}\"] in {where})",
        "containerd runs without its CRI plugin, as Docker's containerd.io package configures "
        "it for Docker alone; " + CRI_UNIMPLEMENTED,
        f"remove \"{listed}\" from disabled_plugins in {where} (or regenerate the file with "
        "`containerd config default` and set SystemdCgroup = true); restart containerd")


def _merge_1x(files, version, ctd: Containerd) -> _Section | None:
    """containerd 1.x: the last non-zero `version` counts for every file, and each file's
    table for a plugin replaces that plugin's whole table from the files before it."""
    config_version, plugins, origin = 0, {}, {}
    disabled: list[str] = []
    for path, data in files:
        config_version = _int(data.get("version")) or config_version
        for name, value in (data.get("plugins") or {}).items():
            plugins[name], origin[name] = value, path
        disabled += [str(d) for d in data.get("disabled_plugins") or [] if str(d) not in disabled]
    config_version = config_version or 1
    if config_version > 2:
        if version is None or (1, 6, 32) <= version < (1, 7, 0) or version >= (1, 7, 17):
            ctd.problem = Problem(
                f"containerd does not start: config version {config_version}",
                f"{ctd.how} refuses it (\"containerd config version `{config_version}` is not "
                "supported, the max version is `2`\"); kubelet has no runtime and the node "
                "goes NotReady",
                f"write {MAIN} as version = 2 with plugins.\"{CRI_GRPC}\" keys, or upgrade "
                "containerd to 2.x; restart containerd")
            return None
        ctd.notes.append(f"config version {config_version} is newer than {ctd.how} knows: "
                         f"its plugins.\"{CRI_RUNTIME}\" settings are ignored")
    if config_version >= 2:
        bad = [n for n in disabled + list(plugins) if len(n.split(".")) < 4]
        if bad:
            ctd.problem = Problem(
                f"containerd does not start: plugin name \"{bad[0]}\" in a version "
                f"{config_version} config",
                f"containerd 1.x wants full plugin names in a version 2 config (\"invalid plugin "
                f"URI \\\"{bad[0]}\\\" expect io.containerd.x.vx\"); kubelet has no runtime",
                f"write the full name (\"{CRI_GRPC}\" for cri) or drop `version = 2`; restart "
                "containerd")
            return None
    key = "cri" if config_version == 1 else CRI_GRPC
    if key in disabled:
        _cri_disabled(ctd, files, key)
        return None
    table = plugins.get(key)
    if not isinstance(table, dict):
        return _Section({}, f"plugins.{_quote(key)}", [], 1)
    earlier = [p for p, d in files if p != origin[key] and key in (d.get("plugins") or {})]
    if earlier:
        ctd.notes.append(f"{origin[key]} replaces the whole [plugins.{_quote(key)}] table of "
                         f"{', '.join(earlier)} (containerd 1.x merges imported files table by "
                         "table)")
    written = next(d for p, d in files if p == origin[key])
    return _Section(table, f"plugins.{_quote(key)}",
                    [_File(origin[key], _int(written.get("version")), written["plugins"],
                           {key: table})], 1)


def _origins(tree, path: str, written: str, keys=()) -> dict | str:
    """`tree` with every leaf replaced by "file\0key as written": where each value comes from."""
    if isinstance(tree, dict) and tree:
        return {k: _origins(v, path, written, (*keys, k)) for k, v in tree.items()}
    if isinstance(tree, dict):
        return {}
    return f"{path}\0plugins.{_quote(written)}." + ".".join(keys)


def _merge_2x(files, version, ctd: Containerd) -> _Section | None:
    """containerd 2.x (cmd/containerd/server/config/config.go LoadConfig, mergeConfig):
    version 1 plugin ids renamed, the files merged in order (mergo: tables key by key, a later
    value replaces an earlier one), the merged `version` that of the last file with version 2+
    (containerd's own default config counting first). 2.0-2.2 then migrate version 2 CRI keys
    to plugins."io.containerd.cri.v1.runtime" once, on the merged config, only when its version
    is below 3 and only into keys still missing (plugins/cri/runtime/plugin.go configMigration;
    `config dump` and server.New alike). 2.3+ migrate each file before merging it
    (LoadConfigWithPlugins), a version 3 file's version 2 keys too."""
    per_file = version >= (2, 3, 0) if version else any(
        _int(d.get("version")) >= 4 for _, d in files)
    newest = 4 if per_file or version is None else 3
    replace = version is not None and version < (2, 0, 2)
    running, merged, origins, loaded, disabled = newest, {}, {}, [], []
    setter = ""  # the file whose `version` the merged config has
    for path, data in files:
        written = _int(data.get("version"))
        if written < 2 and running > newest and not per_file:
            ctd.problem = Problem(
                f"containerd does not start: it crashes reading {path} (no `version`) after a "
                f"version {running} file",
                f"{ctd.how} migrates a file without version to the version read so far and has "
                f"no migration to version {running} (\"panic: runtime error: index out of range "
                f"[{newest}] with length {newest}\"); kubelet has no runtime and the node goes "
                "NotReady",
                f"write every containerd file as version = {newest}, or upgrade containerd; "
                "restart containerd")
            return None
        raw = data.get("plugins") if isinstance(data.get("plugins"), dict) else {}
        plugins = copy.deepcopy(raw)
        tree = {k: _origins(v, path, k) for k, v in raw.items()}
        names = [str(d) for d in data.get("disabled_plugins") or []]
        if written < 2:
            plugins = {_v1_name(k): v for k, v in plugins.items()}
            tree = {_v1_name(k): v for k, v in tree.items()}
            names = [_v1_name(n) for n in names]
        if per_file and written < running:
            _migrate_cri(plugins, replace)
            _migrate_cri(tree, replace)
        if written >= 2 and (written > running or not per_file):
            running, setter = written, path
        loaded.append(_File(path, written, raw, plugins))
        disabled += [n for n in names if n not in disabled]
        _deep_merge(merged, plugins)
        _deep_merge(origins, tree)
    if running > newest:
        last = files[-1][0]
        ctd.problem = Problem(
            f"containerd does not start: config version {running} in {setter}",
            f"{ctd.how} reads config versions up to {newest}, and the merged config has the "
            f"version of the last file with version 2 or more (\"failed to load TOML from "
            f"{last}: expected containerd config version equal to or less than `{newest}`, got "
            f"`{running}`\"); kubelet has no runtime and the node goes NotReady",
            f"write the files as version = {newest}, or upgrade containerd; restart containerd")
        return None
    if not per_file:
        _note_v2_keys(loaded, merged, running, ctd)
        if running < 3:
            _migrate_cri(merged, replace)
            _migrate_cri(origins, replace)
    bad = [n for n in disabled if "." not in n]
    if bad:
        ctd.problem = Problem(
            f"containerd does not start: plugin name \"{bad[0]}\" in disabled_plugins",
            f"containerd 2.x wants full plugin names from config version 2 on (\"invalid "
            f"disabled plugin URI \\\"{bad[0]}\\\" expect io.containerd.x.vx\"); kubelet has no "
            "runtime and the node goes NotReady",
            f"write the full name (\"{CRI_GRPC}\" for cri); restart containerd")
        return None
    for name in (CRI_GRPC, CRI_RUNTIME):
        if name in disabled:
            listed = next((str(x) for _, d in files for x in d.get("disabled_plugins") or []
                           if _v1_name(str(x)) == name), name)
            _cri_disabled(ctd, files, listed)
            return None
    table = merged.get(CRI_RUNTIME)
    return _Section(table if isinstance(table, dict) else {}, f"plugins.{_quote(CRI_RUNTIME)}",
                    loaded, 2, origins.get(CRI_RUNTIME) if isinstance(origins.get(CRI_RUNTIME),
                                                                     dict) else {})


def _note_v2_keys(loaded: list[_File], merged: dict, running: int, ctd: Containerd) -> None:
    """Why containerd 2.0-2.2 drop a file's version 2 runtime settings."""
    have = _dig(merged, CRI_RUNTIME, "containerd")
    have = have if isinstance(have, dict) else {}
    for f in loaded:
        table = _dig(f.plugins, CRI_GRPC, "containerd")
        if not isinstance(table, dict):
            continue
        where = f"{f.path}: plugins.{_quote(_written_cri(f))}.containerd"
        if running >= 3:
            why = (f"a file without `version = 2` is taken as version {running} with only its "
                   "plugin names updated, and the merged config is version "
                   f"{running}" if f.version < 2 else
                   f"the merged config is version {running} (the last file with a version "
                   "sets it)")
            ctd.notes.append(f"{where} settings are ignored: {why}; containerd 2.0-2.2 migrate "
                             "version 2 keys only for a merged version below 3, and version 3 "
                             f"reads plugins.\"{CRI_RUNTIME}\".containerd")
            continue
        dropped = [k for k in table if k in have]
        if not dropped:
            continue
        setters = [x.path for x in loaded if any(
            _dig(x.plugins, CRI_RUNTIME, "containerd", k) is not None for k in dropped)]
        ctd.notes.append(
            f"{where}.{{{', '.join(dropped)}}} ignored: containerd 2.0-2.2 migrate version 2 "
            "settings once, on the merged config, and only into keys still missing, and "
            f"plugins.\"{CRI_RUNTIME}\".containerd already has them (from "
            f"{', '.join(setters)}); write {f.path} as version 3 under plugins."
            f"\"{CRI_RUNTIME}\" to have them read")


def _written_cri(f: _File) -> str:
    return "cri" if "cri" in f.raw and CRI_GRPC not in f.raw else CRI_GRPC


def _quote(name: str) -> str:
    return f'"{name}"' if "." in name else name


def _dig(data, *path):
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _where(section: _Section, *path) -> tuple[str, str]:
    """(file, key as that file writes it) the value at plugins.<CRI>.<path> comes from."""
    if section.major == 2:
        leaf = _dig(section.origins, *path)
        return tuple(leaf.split("\0", 1)) if isinstance(leaf, str) else ("", "")
    if not section.files:
        return "", ""
    target = next(iter(section.files[0].plugins), "")
    for f in reversed(section.files):
        if _dig(f.plugins, target, *path) is not None:
            return f.path, f"plugins.{_quote(target)}." + ".".join(path)
    return "", ""


def _runtime_driver(section: _Section, ctd: Containerd) -> None:
    table = section.table
    containerd = table.get("containerd") if isinstance(table.get("containerd"), dict) else {}
    legacy = containerd.get("default_runtime") if section.major == 1 else None
    if isinstance(legacy, dict) and legacy.get("runtime_type"):
        name, runtime = "default", legacy  # containerd 1.x's deprecated default_runtime
    else:
        name = str(containerd.get("default_runtime_name") or "runc")
        runtimes = containerd.get("runtimes")
        runtime = runtimes.get(name) if isinstance(runtimes, dict) else None
        if runtime is None and name == "runc":
            runtime = {"runtime_type": RUNC}  # containerd's built-in runc runtime
    if name != "runc":
        file, key = _where(section, "containerd", "default_runtime_name")
        ctd.source = f"{file}: {key} = \"{name}\"; " if file else ""
    if not isinstance(runtime, dict):
        ctd.problem = Problem(
            f"containerd's CRI plugin does not load: default_runtime_name = \"{name}\" names "
            "no runtime",
            "containerd refuses the CRI config (\"no corresponding runtime configured in "
            f"`containerd.runtimes` for `containerd` `default_runtime_name = \\\"{name}\\\"`\"); "
            + CRI_UNIMPLEMENTED,
            f"add [{section.key}.containerd.runtimes.{name}] with runtime_type = \"{RUNC}\" and "
            "options SystemdCgroup = true, or set default_runtime_name = \"runc\"; restart "
            "containerd")
        return
    kind = str(runtime.get("runtime_type") or RUNC)
    systemd_cgroup = table.get("systemd_cgroup")
    if section.major == 1 and systemd_cgroup is True and kind != LINUX_V1:
        ctd.problem = Problem(
            f"containerd's CRI plugin does not load: systemd_cgroup = true with runtime "
            f"\"{name}\" ({kind})",
            f"containerd 1.x refuses it (\"`systemd_cgroup` only works for runtime {LINUX_V1}\")"
            "; " + CRI_UNIMPLEMENTED,
            f"remove systemd_cgroup from [{section.key}] and set SystemdCgroup = true under "
            f"[{section.key}.containerd.runtimes.{name}.options]; restart containerd")
        return
    if section.major == 1 and kind == LINUX_V1:
        ctd.driver = "systemd" if systemd_cgroup is True else "cgroupfs"
        ctd.source += (f"{section.files[0].path if section.files else MAIN}: {section.key}."
                       f"systemd_cgroup = {str(systemd_cgroup is True).lower()} (runtime "
                       f"\"{name}\" is {LINUX_V1})")
        return
    if kind != RUNC:
        ctd.source += f"default runtime \"{name}\" is {kind}, not runc"
        ctd.notes.append(f"containerd's default runtime \"{name}\" ({kind}) takes no "
                         "SystemdCgroup: its cgroup driver was not checked")
        return
    path = ("containerd", "runtimes", name, "options", "SystemdCgroup")
    value = _dig(table, *path)
    file, key = _where(section, *path)
    # containerd 2.x reads plugins."io.containerd.cri.v1.runtime" of any file, whatever its
    # version (and 2.0-2.2 may drop a version 2 key: see _note_v2_keys).
    layout = section.key.removeprefix("plugins.").strip('"')
    if section.major == 2:
        _reported(section, name, ctd)
    ctd.options_file = file or MAIN
    ctd.options = (key.removesuffix(".SystemdCgroup") if key else
                   f"plugins.{_quote(layout)}." + ".".join(path[:-1]))
    if value is None:
        ctd.driver = "cgroupfs"
        where = f"{section.key}.{'.'.join(path)}"
        ctd.source += (f"{', '.join(ctd.files) or MAIN}: {where} not set (containerd's default: "
                       "false, cgroupfs)")
        return
    if not isinstance(value, bool):
        ctd.problem = Problem(
            f"containerd cannot read its runc options: {file}: {key} = {value!r}",
            "SystemdCgroup must be the TOML boolean true or false; containerd fails to decode "
            "the runtime options and pod sandboxes do not start",
            f"write SystemdCgroup = true (no quotes) in {file}; restart containerd")
        return
    ctd.driver = "systemd" if value else "cgroupfs"
    ctd.source += f"{file}: {key} = {str(value).lower()}"


def _reported(section: _Section, default: str, ctd: Containerd) -> None:
    """The driver containerd 2.x answers kubelet's CRI RuntimeConfig with
    (internal/cri/server/runtime_config_linux.go getCgroupDriver): the runtimes in order, the
    default one first, the others by name; the first whose options decode as runc options
    decides (SystemdCgroup true: systemd, else cgroupfs). A runtime without an options table
    says nothing, so the answer can come from another runtime than the one pods run with.
    containerd's own runc runtime always has options (SystemdCgroup = false by default)."""
    containerd = section.table.get("containerd")
    runtimes = containerd.get("runtimes") if isinstance(containerd, dict) else None
    handlers = dict(runtimes) if isinstance(runtimes, dict) else {}
    handlers.setdefault("runc", {})
    for handler in sorted(handlers, key=lambda n: (n != default, n)):
        runtime = handlers[handler] if isinstance(handlers[handler], dict) else {}
        options = runtime.get("options")
        kind = runtime.get("runtime_type") or (RUNC if handler == "runc" else "")
        if handler == "runc" and not isinstance(options, dict):
            options = {}
        value = options.get("SystemdCgroup") if isinstance(options, dict) else None
        if kind != RUNC or not isinstance(options, dict) or (
                value is not None and not isinstance(value, bool)):
            continue
        ctd.reported = "systemd" if value is True else "cgroupfs"
        file, key = _where(section, "containerd", "runtimes", handler, "options",
                           "SystemdCgroup")
        said = (f"{file}: {key} = {str(value).lower()}" if file else
                "SystemdCgroup not set (containerd's default: false)")
        ctd.reported_source = f"runtime \"{handler}\" ({said})"
        return
    ctd.reported = "systemd"
    ctd.reported_source = ("no runtime's options name a driver: containerd answers systemd when "
                           "it runs under systemd (/run/systemd/system exists), else cgroupfs")
