"""What ran on the lab's hosts and what changed there: strace follows every exec under each
host's sshd (sessions included), and the hosts' writable layers are hashed before and after.
The read-only audit compares both with kubeaccept.facts.allowlist."""

from __future__ import annotations

import hashlib
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from kubeaccept.facts import allowlist

from .system import entered

# Written by the lab's own daemons while it runs, never by a client
BUSY = ("varlib.upper/etcd/",)
_EXEC = re.compile(r'^(\d+)\s+execve\("(?:[^"\\]|\\.)*", \[(.*)\], .*?'
                   r'(?:\) = 0$|<unfinished \.\.\.>$)', re.M)
_RESUMED = re.compile(r"^(\d+)\s+<\.\.\. execve resumed>.*\) = 0$", re.M)
_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"(\.\.\.)?')
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "v": "\v", "f": "\f", '"': '"', "\\": "\\"}


@dataclass(frozen=True)
class Exec:
    host: str
    pid: int
    argv: tuple[str, ...]


def _unescape(s: str) -> str:
    out, i = [], 0
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            nxt = s[i + 1]
            if nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
                i += 2
                continue
            octal = re.match(r"[0-7]{1,3}", s[i + 1:])
            if octal:
                out.append(chr(int(octal.group(0), 8)))
                i += 1 + len(octal.group(0))
                continue
        out.append(c)
        i += 1
    return "".join(out)


def parse(host: str, text: str) -> list[Exec]:
    """The successful execve calls of an `strace -f -e trace=execve` log (a call another
    process interrupted is printed in two lines: "<unfinished ...>", "<... execve resumed>")."""
    execs, pending = [], {}
    for line in text.splitlines():
        m = _EXEC.match(line)
        if m:
            argv = tuple(_unescape(s.group(1)) + ("…" if s.group(2) else "")
                         for s in _STRING.finditer(m.group(2)))
            if line.endswith("<unfinished ...>"):
                pending[m.group(1)] = argv
            else:
                execs.append(Exec(host, int(m.group(1)), argv))
        elif (r := _RESUMED.match(line)) and r.group(1) in pending:
            execs.append(Exec(host, int(r.group(1)), pending.pop(r.group(1))))
    return execs


def violations(execs: list[Exec]) -> list[str]:
    """Each exec the allow-list does not allow, as "host: why"."""
    out = []
    for e in execs:
        if e.argv and e.argv[0].rsplit("/", 1)[-1] in allowlist.SSH_SERVER:
            continue
        why = allowlist.program(list(e.argv))
        if why:
            out.append(f"{e.host}: {why}")
    return out


class Tracer:
    """strace attached to each host's sshd for the time of a `with` block."""

    def __init__(self, lab, out_dir: Path):
        self.lab = lab
        self.out_dir = out_dir
        self.procs: dict[str, subprocess.Popen] = {}

    def __enter__(self) -> Tracer:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for h in self.lab.hosts:
            pid = entered(self.lab.state["pids"][h.name]["sshd"])
            self.procs[h.name] = subprocess.Popen(
                ["strace", "-f", "-qq", "-e", "trace=execve", "-e", "signal=none", "-s", "1048576",
                 "-o", str(self.out_dir / f"{h.name}.trace"), "-p", str(pid)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)  # attached before the first connection
        return self

    def __exit__(self, *exc) -> None:
        for proc in self.procs.values():
            proc.send_signal(signal.SIGINT)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def execs(self) -> list[Exec]:
        out = []
        for name in self.procs:
            path = self.out_dir / f"{name}.trace"
            out += parse(name, path.read_text(errors="replace") if path.exists() else "")
        return out


def snapshot(lab) -> dict[str, str]:
    """sha256 of every file in each host's writable layers (its /etc and /var/lib)."""
    out = {}
    for h in lab.hosts:
        base = lab.dir / "hosts" / h.name
        for layer in ("etc.upper", "varlib.upper"):
            root = base / layer
            for path in sorted(root.rglob("*")) if root.exists() else ():
                rel = f"{h.name}/{path.relative_to(base)}"
                if any(f"/{b}" in f"/{rel.split('/', 1)[1]}" for b in BUSY):
                    continue
                if path.is_symlink():
                    out[rel] = "-> " + str(path.readlink())
                elif path.is_file():
                    out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
                elif path.is_dir():
                    out[rel] = "dir"
    return out


def changed(before: dict[str, str], after: dict[str, str]) -> list[str]:
    def what(p: str) -> str:
        return "created" if p not in before else "removed" if p not in after else "modified"

    return sorted(f"{p}: {what(p)}" for p in set(before) | set(after)
                  if before.get(p) != after.get(p))
