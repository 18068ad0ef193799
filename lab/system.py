"""Running the machine's commands for the lab, with one-line errors."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

# The lab is not installed (it is not shipped): a lab module run from anywhere (kwok's exec
# shims, a host's namespace, the failover gate's power commands) finds it from the checkout.
CHECKOUT = Path(__file__).resolve().parents[1]


def python_m(module: str) -> str:
    """A shell command line that runs `python -m module` with this checkout's lab."""
    return f"env PYTHONPATH={shlex.quote(str(CHECKOUT))} {shlex.quote(sys.executable)} -m {module}"


# Debian package for each command the lab runs.
REQUIRED = {
    "ip": "iproute2", "nsenter": "util-linux", "unshare": "util-linux",
    "iptables-restore": "iptables", "sshd": "openssh-server", "ssh-keygen": "openssh-client",
    "socat": "socat", "haproxy": "haproxy", "ss": "iproute2", "mkswap": "util-linux",
    "nft": "nftables",
}


class LabError(Exception):
    pass


def check_machine() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab creates network namespaces: run it as root")
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    missing = sorted({pkg for cmd, pkg in REQUIRED.items() if not shutil.which(cmd, path=path)})
    if missing:
        raise LabError(f"missing packages: apt-get install -y {' '.join(missing)} "
                       "(or run scripts/setup)")


def run(*argv: str, input: str | None = None, check: bool = True, timeout: float = 60) -> str:
    try:
        proc = subprocess.run(argv, input=input, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        raise LabError(f"{' '.join(argv[:6])} did not finish within {timeout:g}s") from None
    if check and proc.returncode != 0:
        detail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:] or ["no output"]
        raise LabError(f"{' '.join(argv[:6])} failed: {detail[0]}")
    return proc.stdout


def spawn(argv: list[str], log: str) -> int:
    """Start a long-running process in its own session, reparented to init (so no zombie
    and no Popen left behind); returns its pid."""
    out = run("sh", "-c", 'setsid "$@" >>"$0" 2>&1 </dev/null & echo $!', log, *argv)
    return int(out.strip())


def alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][:1] not in ("Z", "X")
    except OSError:
        return False


def group_alive(pgid: int) -> bool:
    """Whether any live process is still in the process group."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(") ", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
            return True
    return False


def child(pid: int, timeout: float = 5) -> int:
    """The one child of `pid` (unshare --fork's, nsenter -p's: the process in the new PID
    namespace), as this machine numbers it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                kids = f.read().split()
        except OSError:
            kids = []
        if kids:
            return int(kids[0])
        if time.monotonic() > deadline or not alive(pid):
            raise LabError(f"process {pid} has no child (did it exit?)")
        time.sleep(0.01)


def entered(pid: int) -> int:
    """The process a lab host runs for `pid`: nsenter -p (HostRuntime.start) forks it into the
    host's PID namespace and waits; anything else is itself."""
    try:
        with open(f"/proc/{pid}/comm") as f:
            if f.read().strip() != "nsenter":
                return pid
    except OSError:
        return pid
    return child(pid)
