"""Services systemd starts at boot that turn swap on, from the `swap-services` facts section
(gather.sh): for each service a boot target wants whose unit, drop-ins or ExecStart* script
names swap, its unit files (a mask is a link to /dev/null), the links that want it, and the
config files of the packages whose scripts are known. Parsing and reading only; judged in
kubeaccept/checks/swap.py.

Known packages (Debian 12's, unpacked and read): dphys-swapfile 20100506-7.1
(`ExecStart=/sbin/dphys-swapfile setup` then `swapon`: a swap file CONF_SWAPFILE, default
/var/swap, of CONF_SWAPSIZE MB or CONF_SWAPFACTOR (2) × RAM, at most CONF_MAXSWAP (2048), read
from /etc/dphys-swapfile) and zram-tools 0.3.3.1 (`ExecStart=/usr/sbin/zramswap start`: /dev/zram0
of PERCENT % of MemTotal or SIZE MiB, default 256, from /etc/default/zramswap). Ubuntu's
zram-config runs `init-zram-swapping`, a script that calls mkswap and swapon."""

from __future__ import annotations

import base64
import re
import shlex
from dataclasses import dataclass, field

# systemd.unit(5) unit search path, highest priority first
UNIT_DIRS = ("/etc/systemd/system", "/run/systemd/system", "/usr/local/lib/systemd/system",
             "/usr/lib/systemd/system", "/lib/systemd/system")
# the targets a normal boot reaches (default.target is multi-user or graphical)
BOOT_TARGETS = ("sysinit.target", "basic.target", "multi-user.target", "default.target",
                "graphical.target", "local-fs.target", "swap.target", "network.target",
                "network-online.target", "timers.target", "sockets.target")
EXEC_KEYS = ("ExecStartPre", "ExecStart", "ExecStartPost")
_SWAPON = re.compile(r"(?:^|[\s;&|`(/])(swapon|mkswap)(?=$|[\s;&|`)])(.*)")
_SHOW = re.compile(r"^\s*(?:-s\b|--show|--summary|-h\b|--help|-V\b|--version)")


@dataclass(frozen=True)
class Service:
    name: str
    files: tuple[tuple[str, str | None], ...] = ()  # (path, text); None: a link to /dev/null
    wants: tuple[tuple[str, str], ...] = ()          # (link path, its target)

    def fragment(self) -> tuple[str, str | None] | None:
        """The unit file systemd loads for the name: the first in the search path."""
        for d in UNIT_DIRS:
            for path, text in self.files:
                if path == f"{d}/{self.name}":
                    return path, text
        return None

    def masked(self) -> str | None:
        frag = self.fragment()
        return frag[0] if frag and frag[1] is None else None

    def dropins(self) -> list[tuple[str, str]]:
        """`NAME.d/*.conf` by file name; a name in a higher directory hides a lower one."""
        chosen: dict[str, tuple[str, str | None]] = {}
        for d in reversed(UNIT_DIRS):
            for path, text in self.files:
                if path.startswith(f"{d}/{self.name}.d/"):
                    chosen[path.rsplit("/", 1)[1]] = (path, text)
        return [(p, t) for n, (p, t) in sorted(chosen.items()) if t is not None]

    def texts(self) -> list[tuple[str, str]]:
        frag = self.fragment()
        head = [(frag[0], frag[1])] if frag and frag[1] is not None else []
        return head + self.dropins()

    def exec_lines(self) -> list[tuple[str, str, str]]:
        """(key, command line, file) of ExecStartPre/ExecStart/ExecStartPost after drop-ins
        (an empty assignment clears the list: systemd.service(5))."""
        lists: dict[str, list[tuple[str, str, str]]] = {k: [] for k in EXEC_KEYS}
        for path, text in self.texts():
            section = None
            for raw in text.splitlines():
                line = raw.strip()
                if line.startswith("["):
                    section = line
                    continue
                m = re.match(r"(ExecStartPre|ExecStart|ExecStartPost)\s*=\s*(.*)$", line)
                if section == "[Service]" and m:
                    if m.group(2):
                        lists[m.group(1)].append((m.group(1), m.group(2), path))
                    else:
                        lists[m.group(1)] = []
        return [x for k in EXEC_KEYS for x in lists[k]]

    def boot_wants(self) -> list[str]:
        out = []
        for path, _ in self.wants:
            parent = path.rsplit("/", 2)[-2]
            if parent.endswith((".wants", ".requires")) \
                    and parent.rsplit(".", 1)[0] in BOOT_TARGETS:
                out.append(path)
        return out

    def is_enabled(self) -> str:
        """What `systemctl is-enabled` says (systemd 252, checked with `systemctl --root`
        in selftests/unit/test_swap_services.py): a mask wins; then the symlinks in the
        configuration directories /etc and /run (a vendor link in /usr/lib counts for boot
        but not here); then [Install]."""
        frag = self.fragment()
        if frag and frag[1] is None:
            return "masked-runtime" if frag[0].startswith("/run/") else "masked"
        config = [p for p, _ in self.wants if p.startswith(("/etc/", "/run/"))]
        if any(p.startswith("/etc/") for p in config):
            return "enabled"
        if config:
            return "enabled-runtime"
        text = frag[1] if frag else ""
        return "disabled" if re.search(r"^\s*\[Install\]", text or "", re.M) else "static"


@dataclass(frozen=True)
class SwapServices:
    services: dict[str, Service] = field(default_factory=dict)
    execs: dict[str, str] = field(default_factory=dict)  # script path -> text
    confs: dict[str, str] = field(default_factory=dict)  # the known packages' config files


def _b64(data: str) -> str:
    try:
        return base64.b64decode(data.strip()).decode(errors="replace")
    except ValueError:
        return ""


def _unit_name(path: str) -> str:
    base = path.rsplit("/", 1)[-1]
    parent = path.rsplit("/", 2)[-2] if path.count("/") >= 2 else ""
    return parent[:-2] if parent.endswith(".d") and base.endswith(".conf") else base


def parse(text: str | None) -> SwapServices | None:
    if text is None:
        return None
    files: dict[str, list] = {}
    wants: dict[str, list] = {}
    execs, confs = {}, {}
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        path, _, data = rest.partition(" ")
        if kind == "svc-unit":
            files.setdefault(_unit_name(path), []).append((path, _b64(data)))
        elif kind == "svc-link" and data.strip() == "/dev/null":
            files.setdefault(_unit_name(path), []).append((path, None))
        elif kind == "svc-want":
            wants.setdefault(path.rsplit("/", 1)[-1], []).append((path, data.strip()))
        elif kind == "svc-exec":
            execs[path] = _b64(data)
        elif kind == "svc-conf":
            confs[path] = _b64(data)
    names = set(files) | set(wants)
    services = {n: Service(n, tuple(files.get(n, ())), tuple(wants.get(n, ()))) for n in names}
    return SwapServices(services, execs, confs)


def shell_assignments(text: str) -> dict[str, str] | None:
    """`KEY=value` lines of a file a script sources with `.`; None when a line does more than
    assign a plain value (its result cannot be read without running it)."""
    out = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"(?:export\s+)?([A-Za-z_]\w*)=(.*)", line)
        if not m or re.search(r"[`$;&|<>()]", m.group(2)):
            return None
        try:
            words = shlex.split(m.group(2), comments=True)
        except ValueError:
            return None
        out[m.group(1)] = " ".join(words)
    return out


def program(command: str) -> tuple[str, list[str]]:
    """The program (base name) and arguments of an Exec line, its prefixes (-@:+!) dropped."""
    line = command.lstrip("-@:+!")
    try:
        words = shlex.split(line)
    except ValueError:
        words = line.split()
    if not words:
        return "", []
    return words[0].rsplit("/", 1)[-1], words[1:]


def swapon_in(text: str) -> str | None:
    """The first line of a script or command that runs swapon or mkswap (not to show)."""
    for raw in text.splitlines():
        line = raw.split("#", 1)[0] if not raw.lstrip().startswith("#!") else ""
        m = _SWAPON.search(line)
        if m and not (m.group(1) == "swapon" and _SHOW.match(m.group(2))):
            return raw.strip()
    return None


@dataclass(frozen=True)
class Effect:
    swap: bool       # the service turns swap on when it starts
    what: str        # what it does, from which line
    fix: str
    evidence: tuple[str, ...] = ()


def _dphys(svcs: SwapServices, memtotal_kb: int | None, line: str) -> Effect:
    """/sbin/dphys-swapfile (20100506-7.1) `setup`: CONF_SWAPSIZE, else CONF_SWAPFACTOR ×
    (MemTotal MB + 10), capped by CONF_MAXSWAP; `dd count=SIZE` then mkswap, under `set -e`."""
    conf_text = svcs.confs.get("/etc/dphys-swapfile")
    conf = shell_assignments(conf_text) if conf_text is not None else {}
    fix = ("dphys-swapfile swapoff; dphys-swapfile uninstall; systemctl disable "
           "dphys-swapfile.service (or apt purge dphys-swapfile)")
    if conf is None:
        return Effect(True, f"`{line}` turns on a swap file (/etc/dphys-swapfile is more than "
                      "plain assignments: its size is not read here)", fix)
    path = conf.get("CONF_SWAPFILE", "/var/swap")
    size = conf.get("CONF_SWAPSIZE", "")
    maxswap = conf.get("CONF_MAXSWAP", "2048")
    try:
        if size == "":
            if memtotal_kb is None:
                raise ValueError
            mb = (memtotal_kb // 1024 + 10) * int(conf.get("CONF_SWAPFACTOR", "2"))
            how = f"{conf.get('CONF_SWAPFACTOR', '2')} × RAM"
        else:
            mb, how = int(size), f"CONF_SWAPSIZE={size}"
        if maxswap != "" and mb > int(maxswap):
            mb, how = int(maxswap), f"{how}, capped by CONF_MAXSWAP={maxswap}"
    except ValueError:
        return Effect(True, f"`{line}` turns on the swap file {path}", fix)
    evidence = (f"/etc/dphys-swapfile: CONF_SWAPFILE={path} CONF_SWAPSIZE={size!r} "
                f"CONF_MAXSWAP={maxswap}",)
    if mb <= 0:
        # dd count=0 makes an empty file; mkswap refuses it and `set -e` stops the script
        return Effect(False, f"`{line}` would make {path} of 0 MB ({how}): mkswap refuses it "
                      "(\"mkswap: error: swap area needs to be at least 40 KiB\"), so the "
                      "service fails at every boot and turns no swap on", fix, evidence)
    return Effect(True, f"`{line}` makes and turns on the swap file {path} of {mb} MB ({how})",
                  fix, evidence)


def _zramswap(svcs: SwapServices, memtotal_kb: int | None, line: str) -> Effect:
    """/usr/sbin/zramswap (zram-tools 0.3.3.1) `start`: /dev/zram0 of PERCENT % of MemTotal,
    else SIZE MiB (default 256), mkswap, swapon -p PRIORITY."""
    conf_text = svcs.confs.get("/etc/default/zramswap")
    conf = (shell_assignments(conf_text) if conf_text is not None else {}) or {}
    if conf.get("PERCENT"):
        size = f"{conf['PERCENT']} % of RAM"
    else:
        size = f"{conf.get('SIZE', '256')} MiB" + ("" if conf.get("SIZE") else " (its default)")
    return Effect(True, f"`{line}` makes /dev/zram0 swap of {size}",
                  "systemctl disable --now zramswap.service (or apt purge zram-tools)",
                  tuple(f"/etc/default/zramswap: {k}={v}" for k, v in sorted(conf.items())))


def analyse(svc: Service, svcs: SwapServices, memtotal_kb: int | None) -> Effect | None:
    """Whether the service turns swap on when it starts, from its Exec lines: the known
    packages' programs by what their scripts do, else a swapon/mkswap in the line or in the
    script it runs (read by gather.sh)."""
    for key, command, path in svc.exec_lines():
        name, args = program(command)
        line = f"{key}={command}"
        if name == "dphys-swapfile" and args[:1] in (["setup"], ["swapon"]):
            return _dphys(svcs, memtotal_kb, line)
        if name == "zramswap" and args[:1] in (["start"], ["restart"]):
            return _zramswap(svcs, memtotal_kb, line)
        fix = (f"systemctl disable --now {svc.name} (or remove its swapon: {path})")
        if name == "init-zram-swapping":
            return Effect(True, f"`{line}` (zram-config) makes zram swap devices",
                          f"systemctl disable --now {svc.name} (or apt purge zram-config)")
        hit = swapon_in(command)
        if hit:
            return Effect(True, f"`{line}` runs {_SWAPON.search(hit).group(1)}", fix)
        exe = command.lstrip("-@:+!").split()[0] if command.strip("-@:+! ") else ""
        script = svcs.execs.get(exe)
        if script is not None and swapon_in(script):
            return Effect(True, f"`{line}` runs {exe}, a script that turns swap on: "
                          f"`{swapon_in(script)}`", fix)
    return None
