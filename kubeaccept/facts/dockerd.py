"""Docker's cgroup driver as dockerd decides it: `--exec-opt` flags from dockerd's systemd unit
(systemd's unit, drop-in and Environment= rules) or `exec-opts` in daemon.json (moby's
decoding), for the dockerd version on the node (`dockerd --version`)."""

from __future__ import annotations

import json
import posixpath
import re
import shlex
from dataclasses import dataclass, field

from kubeaccept.facts import NodeFacts
from kubeaccept.facts.config import ConfigError, parse_text
from kubeaccept.facts.containerd import Problem

DAEMON_JSON = "/etc/docker/daemon.json"
UNIT = "docker.service"
# systemd's system unit directories, highest priority first.
UNIT_DIRS = ("/etc/systemd/system", "/run/systemd/system", "/usr/local/lib/systemd/system",
             "/usr/lib/systemd/system", "/lib/systemd/system")
ENV_FILES = ("/etc/default/docker", "/etc/sysconfig/docker")  # what gather.sh reads
BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$\$")


@dataclass
class Docker:
    version: tuple[int, int, int] | None
    driver: str | None = None
    source: str = ""
    problem: Problem | None = None
    notes: list[str] = field(default_factory=list)
    unit: str = ""  # the files dockerd's command line comes from
    flag_file: str = ""  # where the --exec-opt flags dockerd runs with are written
    reports_driver: bool | None = None  # cri-dockerd implements CRI RuntimeConfig


@dataclass
class _Command:
    flags: list[str] = field(default_factory=list)  # --exec-opt values, in order
    config_file: str = DAEMON_JSON
    where: str = ""  # file holding the ExecStart
    via: str = ""  # the variable the flags come through


def read(facts: NodeFacts, cgroup2: bool) -> Docker:
    """Raises parse.ConfigError for a daemon.json dockerd cannot parse."""
    version = facts.runtime_versions.get("dockerd")
    cri = facts.runtime_versions.get("cri-dockerd")
    docker = Docker(version)
    docker.reports_driver = None if cri is None else (
        cri >= (0, 4, 0) or (0, 3, 17) <= cri < (0, 4, 0))
    command = _command(facts, docker)
    if docker.problem:
        return docker
    conf = _daemon_json(facts, command.config_file, docker)
    if docker.problem or conf is None:
        return docker
    if command.flags and "exec-opts" in conf:
        flag = "[" + " ".join(command.flags) + "]"
        file = "[" + " ".join(map(str, conf["exec-opts"] or [])) + "]"
        docker.problem = Problem(
            f"dockerd does not start: exec-opts is set both by --exec-opt in {command.where} "
            f"and in {command.config_file}",
            "dockerd refuses a setting made twice, even when both agree (\"unable to configure "
            f"the Docker daemon with file {command.config_file}: the following directives are "
            "specified both as a flag and in the configuration file: exec-opts: (from flag: "
            f"{flag}, from file: {file})\"); kubelet (cri-dockerd) has no runtime",
            f"keep native.cgroupdriver=systemd in one place: drop --exec-opt from {command.where}"
            f" or \"exec-opts\" from {command.config_file}; systemctl daemon-reload; restart "
            "docker")
        return docker
    if command.flags:
        opts = command.flags
        where = (f"{command.where}: ${command.via} (in dockerd's ExecStart) --exec-opt"
                 if command.via else f"{command.where}: ExecStart --exec-opt")
        docker.flag_file = command.where
    else:
        opts, where = conf.get("exec-opts") or [], f"{command.config_file}: exec-opts"
    _driver(docker, [str(o) for o in opts] if isinstance(opts, list) else [], where, cgroup2)
    return docker


def _driver(docker: Docker, opts: list[str], where: str, cgroup2: bool) -> None:
    """moby's exec-opt parsing: key trimmed and case-insensitive, value trimmed; dockerd 28+
    takes the last native.cgroupdriver and refuses malformed or unknown options, older dockerd
    took the first and skipped what it could not parse."""
    strict = docker.version is not None and docker.version >= (28, 0, 0)
    values = []
    for opt in opts:
        key, sep, value = opt.partition("=")
        key, value = key.strip().lower(), value.strip()
        if strict and (not sep or not key or not value or key != "native.cgroupdriver"):
            why = ("must be formatted 'opt=value'" if not (sep and key and value) else
                   f"unknown option: '{key}'")
            docker.problem = Problem(
                f"dockerd does not start: exec-opt \"{opt}\" ({where})",
                f"dockerd {docker.version[0]} refuses it (\"invalid exec-opt ({opt}): {why}\"); "
                "kubelet (cri-dockerd) has no runtime",
                f"write \"native.cgroupdriver=systemd\" in {where.split(':')[0]}; restart docker")
            return
        if sep and key == "native.cgroupdriver":
            values.append((value, opt))
    if len({v for v, _ in values}) > 1 and docker.version is None:
        docker.problem = Problem(
            "native.cgroupdriver is given more than once with different values ("
            + ", ".join(v for v, _ in values) + f"; {where})",
            "dockerd 28 and later use the last one, older dockerd the first, and the dockerd "
            "version is unknown (no `dockerd --version` on the node)",
            f"keep a single native.cgroupdriver=systemd in {where.split(':')[0]}; restart docker")
        return
    if values:
        value, opt = values[-1] if strict or docker.version is None else values[0]
        if value not in ("systemd", "cgroupfs"):
            said = ("is internally used and cannot be specified manually" if value == "none"
                    else "not supported")
            docker.problem = Problem(
                f"dockerd does not start: native.cgroupdriver={value} ({where})",
                f"dockerd refuses it (\"native.cgroupdriver option {value} {said}\"); kubelet "
                "(cri-dockerd) has no runtime",
                f"write native.cgroupdriver=systemd in {where.split(':')[0]}; restart docker")
            return
        docker.driver, docker.source = value, f"{where} {opt.strip()}"
        if len(values) > 1:
            docker.source += (" (the " + ("last" if strict else "first") + " of "
                              f"{len(values)}: dockerd {'28+' if strict else '< 28'})")
        return
    # dockerd 20.10+: systemd when the host runs cgroup v2 under systemd, else cgroupfs.
    old = docker.version is not None and docker.version < (20, 10, 0)
    docker.driver = "systemd" if cgroup2 and not old else "cgroupfs"
    docker.source = f"{where.split(':')[0]}: no native.cgroupdriver exec-opt (Docker default " \
                    f"{docker.driver}" + (" on cgroup v2" if cgroup2 and not old else "") + ")"


def _daemon_json(facts: NodeFacts, path: str, docker: Docker) -> dict | None:
    raw = facts.file_bytes(path)
    if raw is None:
        if path != DAEMON_JSON:
            docker.notes.append(f"dockerd reads {path} (--config-file): not read, its settings "
                                "are not taken into account")
        fact = facts.file(path)
        if fact.exists and fact.error:
            raise ConfigError(f"{path}: {fact.error}")
        return {}
    text = None
    for bom, codec in BOMS:
        if raw.startswith(bom):
            if docker.version is not None and docker.version < (23, 0, 0):
                docker.problem = Problem(
                    f"dockerd does not start: {path} begins with a byte order mark",
                    f"dockerd {'.'.join(map(str, docker.version))} reads daemon.json as plain "
                    "UTF-8 (\"invalid character 'ï' looking for beginning of value\"); dockerd "
                    "23 and later skip the mark",
                    f"save {path} as UTF-8 without BOM; restart docker")
                return None
            text = raw[len(bom):].decode(codec, errors="replace")
            docker.notes.append(f"{path} begins with a {codec.upper()} byte order mark, which "
                                "dockerd 23+ accepts")
            break
    if text is None:
        text = raw.decode(errors="replace")
    conf = parse_text(path, text, "json")
    opts = conf.get("exec-opts")
    if opts is not None and not (isinstance(opts, list) and all(isinstance(o, str) for o in opts)):
        # dockerd does not start: "json: cannot unmarshal ... of type []string"
        raise ConfigError(f"{path}: exec-opts is {json.dumps(opts)[:80]}, not a list of strings")
    return conf


def _directives(text: str) -> list[tuple[str, str, str]]:
    """(section, key, value) of a unit file: comments skipped, backslash continuations joined
    (with a space, as systemd does)."""
    out, section, pending = [], "", None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped[:1] in ("#", ";") or (not stripped and pending is None):
            continue
        if pending is not None:
            stripped = pending + " " + stripped
        if stripped.endswith("\\"):
            pending = stripped[:-1].rstrip()
            continue
        pending = None
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped[1:-1]
        elif "=" in stripped:
            key, _, value = stripped.partition("=")
            out.append((section, key.strip(), value.strip()))
    return out


def _words(value: str) -> list[str]:
    try:
        return shlex.split(value, comments=False, posix=True)
    except ValueError:
        return value.split()


def _env_file(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;" or "=" not in line:
            continue
        key, _, value = line.partition("=")
        words = _words(value)
        out[key.strip().removeprefix("export ").strip()] = " ".join(words)
    return out


def _unit_files(facts: NodeFacts) -> tuple[str | None, list[str]]:
    """The unit file systemd loads (the highest-priority directory's) and its drop-ins: every
    directory's docker.service.d/*.conf, a name in a higher directory hiding the same name
    below, applied in name order."""
    main = next((f"{d}/{UNIT}" for d in UNIT_DIRS if f"{d}/{UNIT}" in facts.runtime_files),
                None)
    dropins: dict[str, str] = {}
    for d in UNIT_DIRS:
        prefix = f"{d}/{UNIT}.d/"
        for path in facts.runtime_files:
            if path.startswith(prefix) and path.endswith(".conf") and "/" not in \
                    path[len(prefix):]:
                dropins.setdefault(posixpath.basename(path), path)
    return main, [dropins[name] for name in sorted(dropins)]


def _command(facts: NodeFacts, docker: Docker) -> _Command:
    """dockerd's flags from the ExecStart systemd would run."""
    main, dropins = _unit_files(facts)
    docker.unit = ", ".join(([main] if main else []) + dropins)
    return _command_from(facts, main, dropins, docker)


def _command_from(facts, main, dropins, docker: Docker) -> _Command:
    if main is None:
        docker.notes.append("dockerd's systemd unit (docker.service) not found: --exec-opt "
                            "flags not read")
        return _Command()
    starts: list[tuple[str, str]] = []
    env: dict[str, tuple[str, str]] = {}  # name -> (value, file setting it)
    env_files: list[tuple[str, str]] = []
    kind = "simple"
    for path in [main, *dropins]:
        for section, key, value in _directives(facts.runtime_files[path].text or ""):
            if section != "Service":
                continue
            if key == "ExecStart":
                starts = starts + [(value, path)] if value else []
            elif key == "Environment":
                env = env if value else {}
                env.update((w.partition("=")[0], (w.partition("=")[2], f"Environment= in {path}"))
                           for w in _words(value) if "=" in w)
            elif key == "EnvironmentFile":
                env_files = env_files + [(value, path)] if value else []
            elif key == "Type":
                kind = value
    if len(starts) != 1 and kind != "oneshot":
        where = ", ".join(p for _, p in starts) or main
        docker.problem = Problem(
            f"docker.service does not start: {len(starts)} ExecStart= lines ({where})",
            "systemd refuses the unit (\"Service has more than one ExecStart= setting, which is "
            "only allowed for Type=oneshot services. Refusing.\"): a drop-in must reset the "
            "vendor command with an empty ExecStart= before its own" if starts else
            "systemd refuses a service without ExecStart= (\"Service has no ExecStart=, "
            "ExecStop=, or SuccessAction=. Refusing.\")",
            "put `ExecStart=` (empty) before the new ExecStart= in the drop-in; systemctl "
            "daemon-reload; restart docker")
        return _Command()
    unread = []
    for entry, _ in env_files:
        path = entry.removeprefix("-")
        fact = facts.runtime_files.get(path)
        if fact is not None and fact.text is not None:  # EnvironmentFile= wins over Environment=
            env.update((k, (v, path)) for k, v in _env_file(fact.text).items())
        elif path not in ENV_FILES:
            unread.append(path)
    value, where = starts[-1]
    words, used = _expand(_words(value.lstrip("@-:+!")), {k: v for k, (v, _) in env.items()})
    missing = [v for v in used if v not in env]
    if missing and unread:
        docker.notes.append(f"ExecStart uses ${missing[0]}, which EnvironmentFile="
                            f"{unread[0]} may set (not read)")
    program = posixpath.basename(words[0]) if words else ""
    args = words[1:] if program == "dockerd" else (
        words[2:] if program == "docker" and words[1:2] == ["daemon"] else None)
    if args is None:
        docker.notes.append(f"{where}: ExecStart runs {program or 'nothing'}, not dockerd: "
                            "--exec-opt flags not read")
        return _Command(where=where)
    command = _Command(where=where)
    carriers = [v for v in used if v in env and "--exec-opt" in env[v][0]]
    if carriers:
        command.via = carriers[0]
        command.where = env[carriers[0]][1].removeprefix("Environment= in ")
    for i, arg in enumerate(args):
        for flag in ("--exec-opt", "--config-file"):
            value = arg[len(flag) + 1:] if arg.startswith(flag + "=") else (
                args[i + 1] if arg == flag and i + 1 < len(args) else None)
            if value is None:
                continue
            if flag == "--exec-opt":
                command.flags.append(value)
            else:
                command.config_file = value
    return command


def _expand(words: list[str], env: dict[str, str]) -> tuple[list[str], list[str]]:
    """systemd's ExecStart variables: a word that is just $NAME becomes the value's words,
    ${NAME} is replaced inside a word, $$ is a $. Unset variables are empty."""
    out, used = [], []
    for word in words:
        m = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", word)
        if m:
            used.append(m.group(1))
            out += env.get(m.group(1), "").split()
            continue

        def sub(m: re.Match) -> str:
            if m.group(0) == "$$":
                return "$"
            used.append(m.group(1))
            return env.get(m.group(1), "")

        out.append(_VAR.sub(sub, word))
    return out, used
