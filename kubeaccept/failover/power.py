"""How to power a host off and on: inventory variables `kubeaccept_power_off` and
`kubeaccept_power_on`, each either a command template run on the machine running the suite
(`{host}`, `{address}` filled in: ipmitool, a cloud CLI, `virsh destroy {host}`) or a
built-in method run over SSH:

  stop-services   stop kubelet and the container runtime and kill the static-pod processes
                  (power-on: start-services, the default for it)
  shutdown        `systemctl poweroff` (needs a power-on command: nothing answers SSH then)
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from dataclasses import dataclass

from kubeaccept.model.hosts import Host
from kubeaccept.model.redact import redact
from kubeaccept.remote.transport import CommandTimeout, Unreachable, connect

OFF_VAR, ON_VAR = "kubeaccept_power_off", "kubeaccept_power_on"
RUNTIMES = "containerd docker cri-docker crio kubelet"
STOP = ("systemctl stop kubelet; systemctl stop containerd docker cri-docker crio "
        "2>/dev/null; pkill -9 -x etcd; pkill -9 -x kube-apiserver; "
        "pkill -9 -x kube-controller-manager; pkill -9 -x kube-scheduler; true")
# start what this node has, in order: the runtime first, then kubelet (it restarts the
# static pods)
START = (f"for u in {RUNTIMES}; do systemctl cat \"$u\" >/dev/null 2>&1 && "
         "systemctl start \"$u\"; done; systemctl is-active kubelet")
SHUTDOWN = "systemctl poweroff || shutdown -h now"


class PowerError(Exception):
    """str() is one line: which host, what is wrong, what to do."""


@dataclass(frozen=True)
class Method:
    kind: str  # "command" (on the runner) or "ssh"
    text: str  # the command line, filled in
    name: str  # as the inventory gave it

    def describe(self) -> str:
        """For the terminal and reports: a password in the command (ipmitool -P) masked."""
        return (f"{redact(self.text)!r} on this machine" if self.kind == "command"
                else f"{self.name} over SSH")


def _fill(host: Host, var: str, template: str) -> str:
    fields = {"host": host.name, "address": host.address,
              "ip": str(host.vars.get("ip") or host.address)}
    try:
        return template.format_map(fields)
    except (KeyError, IndexError, ValueError) as exc:
        raise PowerError(f"{host.name}: {var} {template!r}: unknown placeholder {exc} "
                         "(use {host}, {address} or {ip})") from None


def methods(host: Host) -> tuple[Method, Method]:
    """(power-off, power-on) of the host, validated before anything is touched."""
    off = str(host.vars.get(OFF_VAR) or "").strip()
    on = str(host.vars.get(ON_VAR) or "").strip()
    if not off:
        raise PowerError(f"{host.name}: no power-off method: set {OFF_VAR} in the inventory "
                         "(a command run here with {host}/{address}, e.g. 'virsh destroy "
                         "{host}', or stop-services / shutdown over SSH); nothing was changed")
    if off == "stop-services":
        power_off = Method("ssh", STOP, off)
        on = on or "start-services"
    elif off == "shutdown":
        power_off = Method("ssh", SHUTDOWN, off)
    else:
        power_off = _command(host, OFF_VAR, off)
    if not on:
        raise PowerError(f"{host.name}: {OFF_VAR}={off!r} needs a way back: set {ON_VAR} "
                         "(e.g. 'virsh start {host}' or an ipmitool power on); nothing was "
                         "changed")
    if on == "start-services":
        if off == "shutdown":
            raise PowerError(f"{host.name}: start-services cannot power on a host that was "
                             f"shut down: set {ON_VAR} to a command run here; nothing was "
                             "changed")
        return power_off, Method("ssh", START, on)
    return power_off, _command(host, ON_VAR, on)


def _command(host: Host, var: str, template: str) -> Method:
    line = _fill(host, var, template)
    try:
        argv = shlex.split(line)
    except ValueError as exc:
        raise PowerError(f"{host.name}: {var} {template!r}: {exc}") from None
    if not argv or not shutil.which(argv[0]):
        raise PowerError(f"{host.name}: {var}: {argv[0] if argv else template!r} is not a "
                         "command on this machine; nothing was changed")
    return Method("command", line, template)


def run(method: Method, host: Host, timeout: float, connect_timeout: float) -> str:
    """Apply the method; PowerError with its output when it fails."""
    if method.kind == "command":
        try:
            proc = subprocess.run(["sh", "-c", method.text], capture_output=True, text=True,
                                  timeout=timeout, stdin=subprocess.DEVNULL,
                                  start_new_session=True)  # Ctrl-C in a terminal: not this
        except subprocess.TimeoutExpired:
            raise PowerError(f"{host.name}: {method.text!r} did not finish within "
                             f"{timeout:g}s") from None
        out = (proc.stdout + proc.stderr).strip()
        if proc.returncode:
            last = out.splitlines()[-1] if out else "no output"
            raise PowerError(f"{host.name}: {method.text!r} exited {proc.returncode}: {last}")
        return out
    line = method.text
    if host.become and host.user != "root":
        line = f"sudo -n -- sh -c {shlex.quote(line)}"
    try:
        conn = connect(host, connect_timeout)
    except Unreachable as exc:
        raise PowerError(f"{host.name}: {method.name}: {exc}") from None
    try:
        result = conn.run(line, timeout)
    except Unreachable:
        if method.text == SHUTDOWN:
            return "connection closed by the shutdown"
        raise
    except CommandTimeout as exc:
        raise PowerError(f"{host.name}: {method.name}: {exc}") from None
    finally:
        conn.close()
    if result.exit_status and method.text != SHUTDOWN:
        raise PowerError(f"{host.name}: {method.name} exited {result.exit_status}: "
                         f"{(result.stderr or result.stdout).strip()[-200:]}")
    return result.stdout.strip()
