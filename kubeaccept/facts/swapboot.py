"""What systemd will do about swap at the next boot, from the `swap-boot` facts section:
swap unit files and the symlinks that enable or mask them, zram-generator's configuration,
the kernel command line, the /dev/disk links that exist. Parsing only; judged in
kubeaccept/checks/swap.py."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field

from kubeaccept.facts import zramgen

# systemd's unit search path, highest priority first (systemd.unit(5)); /lib is /usr/lib on
# merged-/usr systems and counts after it.
UNIT_DIRS = ("/etc/systemd/system", "/run/systemd/system", "/usr/local/lib/systemd/system",
             "/usr/lib/systemd/system", "/lib/systemd/system")
BOOT_TARGETS = ("swap.target", "local-fs.target", "sysinit.target", "basic.target",
                "multi-user.target", "default.target", "graphical.target")


@dataclass(frozen=True)
class UnitFile:
    path: str
    text: str | None  # None: a symlink
    target: str | None = None  # where the symlink points

    # A path without a directory is none gather.sh prints: it is in no unit directory.
    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def directory(self) -> str:
        return self.path.rsplit("/", 1)[0] if "/" in self.path else ""


@dataclass(frozen=True)
class SwapBoot:
    files: tuple[UnitFile, ...] = ()
    zram_confs: tuple[tuple[str, str], ...] = ()
    zram_generator: bool = False
    cmdline: str = ""
    disks: frozenset[str] = frozenset()
    exists: frozenset[str] = frozenset()
    zswap: str | None = None
    extra: dict = field(default_factory=dict, compare=False)
    memtotal_kb: int | None = None  # /proc/meminfo MemTotal
    generator_links: tuple[tuple[str, str], ...] = ()  # /etc or /run system-generators links

    def zram(self) -> zramgen.Outcome:
        """What zram-generator makes at boot (kubeaccept.facts.zramgen)."""
        return zramgen.generate(dict(self.zram_confs), self.memtotal_kb, self.cmdline)

    def generator_masked(self) -> str | None:
        """A link in /etc or /run that replaces zram-generator with /dev/null
        (systemd.generator(7)): it does not run."""
        return next((p for p, t in self.generator_links if t == "/dev/null"), None)

    def unit(self, name: str) -> UnitFile | None:
        """The unit file systemd uses for `name`: the first in the search path."""
        for d in UNIT_DIRS:
            for f in self.files:
                if f.directory == d and f.name == name:
                    return f
        return None

    def masked(self, name: str) -> str | None:
        """The masking symlink of `name`, or None."""
        f = self.unit(name)
        if f and f.text is None and f.target in ("/dev/null",):
            return f.path
        return None

    def enablers(self, name: str) -> list[str]:
        """The `<target>.wants/` or `.requires/` symlinks that pull `name` in at boot."""
        out = []
        for f in self.files:
            parent = f.directory.rsplit("/", 1)[-1]
            target = parent.rsplit(".", 1)[0]
            if f.name == name and parent.endswith((".wants", ".requires")) \
                    and target in BOOT_TARGETS:
                out.append(f.path)
        return out

    def swap_units(self) -> list[str]:
        names = {f.name for f in self.files if f.name.endswith(".swap")}
        return sorted(names)

    def cmdline_flag(self, key: str) -> str | None:
        for word in self.cmdline.split():
            k, _, v = word.partition("=")
            if k == key:
                return v or "1"
        return None


def parse(text: str | None) -> SwapBoot | None:
    if text is None:
        return None
    files, confs, disks, exists = [], [], set(), set()
    generator, cmdline, zswap, memtotal, glinks = False, "", None, None, []
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "unit":
            path, _, data = rest.partition(" ")
            files.append(UnitFile(path, _b64(data)))
        elif kind == "link":
            path, _, target = rest.partition(" ")
            files.append(UnitFile(path, None, target.strip()))
        elif kind == "zram-conf":
            path, _, data = rest.partition(" ")
            confs.append((path, _b64(data)))
        elif kind == "zram-null":
            confs.append((rest.strip(), ""))
        elif kind == "zram-generator":
            generator = True
        elif kind == "generator-link":
            path, _, target = rest.partition(" ")
            glinks.append((path, target.strip()))
        elif kind == "meminfo":
            m = re.match(r"MemTotal:\s*(\d+)", rest)
            memtotal = int(m.group(1)) if m else None
        elif kind == "cmdline":
            cmdline = rest
        elif kind == "disk":
            disks.add(rest.strip())
        elif kind == "exists":
            exists.add(rest.strip())
        elif kind == "zswap":
            zswap = rest.strip()
    return SwapBoot(tuple(files), tuple(confs), generator, cmdline, frozenset(disks),
                    frozenset(exists), zswap, memtotal_kb=memtotal, generator_links=tuple(glinks))


def _b64(data: str) -> str:
    try:
        return base64.b64decode(data.strip()).decode(errors="replace")
    except ValueError:
        return ""


def unit_field(text: str, key: str) -> str | None:
    """The last `Key=value` of a unit file's text (systemd: later assignments win)."""
    value = None
    for line in text.splitlines():
        m = re.match(rf"\s*{re.escape(key)}\s*=\s*(.*)$", line)
        if m:
            value = m.group(1).strip()
    return value


def escape_path(path: str) -> str:
    """systemd-escape --path: the unit name systemd gives a device or file path."""
    p = re.sub("/+", "/", path).strip("/") or "-"
    out = []
    for i, ch in enumerate(p):
        if ch == "/":
            out.append("-")
        elif ch.isascii() and (ch.isalnum() or ch in ":_.") and not (i == 0 and ch == "."):
            out.append(ch)
        else:
            out.extend(f"\\x{b:02x}" for b in ch.encode())
    return "".join(out)


def source_path(source: str) -> str:
    """An fstab source as the device node path systemd waits for (fstab_node_to_udev_node)."""
    for tag, d in (("UUID=", "by-uuid"), ("LABEL=", "by-label"), ("PARTUUID=", "by-partuuid"),
                   ("PARTLABEL=", "by-partlabel")):
        if source.startswith(tag):
            value = source[len(tag):].strip('"')
            return f"/dev/disk/{d}/" + value.replace("/", "\\x2f")
    return source
