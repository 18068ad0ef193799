"""SSH to one host with paramiko: bounded connect, bounded commands, one-line errors."""

from __future__ import annotations

import errno
import functools
import getpass
import hashlib
import logging
import os
import select
import signal
import socket
import subprocess
import time
from contextlib import suppress
from dataclasses import dataclass, replace

import paramiko

from kubeaccept.inventory import sshargs
from kubeaccept.model.hosts import Host

# paramiko logs a traceback for each failed handshake; the one-line cause says it all.
if logging.getLogger("paramiko").level == logging.NOTSET:
    logging.getLogger("paramiko").setLevel(logging.CRITICAL)


class Unreachable(Exception):
    """The host could not be logged into; str() is the one-line cause."""


class CommandTimeout(Exception):
    pass


def sudo_refused(host: Host, stderr: str) -> str | None:
    """What to do when sudo refused, with sudo's own last words; else None."""
    low = stderr.lower()
    if "sudo" not in low:
        return None
    if "password is required" in low:  # sudo -n
        what = (f"sudo on {host.name} asks {host.user} for a password (set "
                "ansible_become_password, or allow this user sudo without a password)")
    elif "incorrect password" in low or "no password was provided" in low or \
            "sorry, try again" in low:
        what = (f"sudo on {host.name} refused ansible_become_password for {host.user}: "
                "it is not this user's password")
    elif "not in the sudoers" in low or "not allowed to execute" in low:
        what = f"{host.user} may not use sudo on {host.name}: allow it in /etc/sudoers.d"
    else:
        return None
    return f"{what} ({stderr.strip().splitlines()[-1]})"


@dataclass(frozen=True)
class Result:
    exit_status: int
    stdout: str  # bytes when asked for raw output
    stderr: str


def _known_hosts_file(host: Host) -> str:
    return host.known_hosts or os.path.expanduser("~/.ssh/known_hosts")


def _cause(host: Host, exc: BaseException, timeout: float, jump: bool = False,
           elapsed: float | None = None) -> str:
    """`elapsed`: how long the attempt took, so that "within Ns" is said only when N s passed."""
    where = f"{host.user}@{host.address}:{host.port}"
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError) and exc.errors:
        exc = next(iter(exc.errors.values()))  # paramiko wraps the socket error per address
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return f"connection to {where} timed out after {timeout:g}s"
    if isinstance(exc, ConnectionRefusedError) or getattr(exc, "errno", None) == errno.ECONNREFUSED:
        return f"connection refused by {where} (is sshd running and listening on {host.port}?)"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve {host.address!r}: {exc.strerror}"
    if isinstance(exc, paramiko.BadHostKeyException):
        return (f"host key of {host.address} does not match {_known_hosts_file(host)}: "
                "the host was rebuilt or this is not the host you mean")
    if isinstance(exc, paramiko.AuthenticationException):
        key = host.key_file or "default keys"
        return f"authentication failed for {where} with {key}"
    if isinstance(exc, paramiko.SSHException) and "not found in known_hosts" in str(exc):
        kh = _known_hosts_file(host)
        return (f"host key of {host.address} is not in {kh}: add it "
                f"(ssh-keyscan -p {host.port} {host.address} >> {kh})"
                + ("" if jump else " or set ansible_host_key_checking=false"))
    if _no_handshake(exc) and elapsed is not None and elapsed < timeout * 0.9:
        # paramiko says "Error reading SSH protocol banner" for an EOF too: the peer hung up
        return (f"{where} closed the connection after {elapsed:.1f}s without an SSH banner "
                f"(paramiko: {str(exc).strip() or type(exc).__name__}): not an SSH server, or "
                "sshd dropped the client (MaxStartups, tcp wrappers, a DenyUsers/Match rule: "
                "see its log)")
    if _no_handshake(exc):
        return f"no SSH handshake with {where} within {timeout:g}s (not an SSH server, or it hangs)"
    if getattr(exc, "errno", None) == errno.EHOSTUNREACH:
        return (f"cannot connect to {where}: No route to host (host down, or a firewall "
                "rejects SSH with icmp-host-prohibited)")
    if isinstance(exc, OSError) and exc.strerror:
        return f"cannot connect to {where}: {exc.strerror}"
    return f"cannot connect to {where}: {exc}"


class ProxySock(paramiko.ProxyCommand):
    """A ProxyCommand as ssh runs it ($SHELL -c "exec <command>"), as paramiko's socket: EOF
    is EOF (not a busy loop), and close() ends the command's process group."""

    def __init__(self, line: str, argv):
        self.line = line
        self.cmd = list(argv)
        self.process = subprocess.Popen(self.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, bufsize=0,
                                        start_new_session=True)
        self.timeout = None
        self.killed = False  # by close(), not by itself
        self.words = b""     # what it wrote to stderr

    def recv(self, size: int) -> bytes:
        if not select.select([self.process.stdout], [], [], self.timeout)[0]:
            raise TimeoutError()
        return os.read(self.process.stdout.fileno(), size)  # b"" once the command is gone

    def close(self) -> None:
        if self.process.poll() is None:
            try:  # it may be exiting after its last words
                self.process.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                self.killed = True
                with suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGTERM)
                try:
                    self.process.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    with suppress(ProcessLookupError):
                        os.killpg(self.process.pid, signal.SIGKILL)
                    self.process.wait()
        with suppress(OSError, ValueError, TypeError):
            os.set_blocking(self.process.stderr.fileno(), False)
            self.words += self.process.stderr.read() or b""
        for f in (self.process.stdin, self.process.stdout, self.process.stderr):
            with suppress(OSError):
                f.close()

    def outcome(self, timeout: float) -> str:
        """Why no SSH server answered through it, in the proxy's words if it ended."""
        self.close()
        if self.killed:
            return (f"through ProxyCommand {self.line!r}: no SSH server answered through it "
                    f"within {timeout:g}s")
        last = (self.words.decode(errors="replace").strip().splitlines() or [""])[-1]
        return (f"through ProxyCommand {self.line!r}, which exited with status "
                f"{self.process.returncode}" + (f": {last}" if last else ""))


@dataclass(frozen=True)
class Plan:
    """How a host is reached, decided before any connection is made."""

    target: str                       # user@address:port
    known_hosts: str                  # the target's key is looked up here...
    check_host_key: bool              # ...and an unknown key refused (else accepted)
    proxy_command: str | None = None  # ssh's ProxyCommand, %-tokens expanded
    proxy_argv: tuple[str, ...] = ()  # ...as ssh starts it
    jumps: tuple[sshargs.Jump, ...] = ()  # ProxyJump hosts, in order
    jump_known_hosts: tuple[str, ...] = ()  # their keys: always checked, as ssh -J does

    def __str__(self) -> str:
        how = (f" through ProxyCommand {self.proxy_command!r}" if self.proxy_command else
               f" through jump host(s) {', '.join(map(str, self.jumps))}" if self.jumps else "")
        key = "checked against" if self.check_host_key else "accepted if not in"
        return f"{self.target}{how}, its host key {key} {self.known_hosts}"


def plan(host: Host) -> Plan:
    """The connection to make for an SSH host; Unreachable if its ProxyJump is unreadable."""
    jumps: tuple[sshargs.Jump, ...] = ()
    if host.proxy_jump:
        try:
            jumps = tuple(sshargs.parse_jumps(host.proxy_jump))
        except sshargs.SshArgsError as exc:
            raise Unreachable(str(exc)) from None
    line = None
    if host.proxy_command and not jumps:
        line = sshargs.expand_proxy_command(host.proxy_command, host.address, host.port,
                                            host.user, host.name)
    known = _known_hosts_file(host)
    return Plan(f"{host.user}@{host.address}:{host.port}", known, host.host_key_checking,
                line, tuple(sshargs.proxy_argv(line)) if line else (), jumps,
                tuple(dict.fromkeys([os.path.expanduser("~/.ssh/known_hosts"), known]))
                if jumps else ())


@functools.lru_cache(maxsize=32)
def _parsed_known_hosts(path: str, digest: bytes) -> paramiko.HostKeys:
    return paramiko.HostKeys(path)


def _known_hosts(path: str) -> paramiko.HostKeys:
    """The file parsed once per content (hashing it is 1 % of parsing it)."""
    with open(path, "rb") as f:
        return _parsed_known_hosts(path, hashlib.sha256(f.read()).digest())


def _client(known_hosts, checking: bool, address: str, port: int) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    # the name paramiko looks the server's key up by (as ssh does: [host]:port off port 22)
    name = address if port == 22 else f"[{address}]:{port}"
    for kh in known_hosts:
        if not os.path.exists(kh):
            continue
        if not checking:
            client.load_host_keys(kh)  # paramiko's own behaviour, new keys saved to the file
            continue
        # Parsed once per run, not per login: paramiko's load_host_keys parses every line
        # (a key object each), O(hosts) per login, O(hosts²) per run: 75 % of a login's CPU
        # with 200 hosts. Only the target's entries matter to the check.
        for keytype, key in (_known_hosts(kh).lookup(name) or {}).items():
            client.get_host_keys().add(name, keytype, key)
    policy = paramiko.RejectPolicy() if checking else paramiko.AutoAddPolicy()
    client.set_missing_host_key_policy(policy)
    return client


def _login(client: paramiko.SSHClient, address: str, port: int, user: str, timeout: float,
           key_file: str | None, password: str | None, sock=None) -> None:
    client.connect(
        address,
        port=port,
        username=user,
        password=password,
        key_filename=key_file,
        look_for_keys=key_file is None and password is None,
        allow_agent=key_file is None and password is None,
        timeout=timeout,
        banner_timeout=timeout,
        auth_timeout=timeout,
        channel_timeout=timeout,
        sock=sock,
    )


def _no_handshake(exc: BaseException) -> bool:
    """paramiko's words for an SSH handshake that did not happen in time (or at all)."""
    return isinstance(exc, paramiko.SSHException) and (
        "protocol banner" in str(exc) or "No existing session" in str(exc))


class Connection:
    """One SSH login, reused for every command to the host: directly, through the host's
    ProxyCommand, or through its ProxyJump hosts (each a paramiko login, same timeouts)."""

    def __init__(self, host: Host, connect_timeout: float):
        self.host = host
        self.plan = how = plan(host)
        self._timeout = connect_timeout
        self._hops: list[paramiko.SSHClient] = []
        self._proxy: ProxySock | None = None
        sock = None
        if how.jumps:
            sock = self._jump(how, connect_timeout)
        elif how.proxy_command:
            try:
                self._proxy = sock = ProxySock(how.proxy_command, how.proxy_argv)
            except OSError as exc:
                raise Unreachable(f"cannot start ProxyCommand {how.proxy_command!r}: "
                                  f"{exc.strerror}") from None
        client = _client([how.known_hosts], how.check_host_key, host.address, host.port)
        started = time.monotonic()
        try:
            _login(client, host.address, host.port, host.user, connect_timeout, host.key_file,
                   host.password, sock)
        except (OSError, paramiko.SSHException, EOFError) as exc:
            cause = _cause(host, exc, connect_timeout, elapsed=time.monotonic() - started)
            # no SSH server answered through the proxy (it failed, or is still trying)
            if self._proxy is not None and (_no_handshake(exc) or isinstance(
                    exc, (EOFError, TimeoutError, paramiko.ProxyCommandFailure))):
                cause = f"cannot log into {how.target} " + self._proxy.outcome(connect_timeout)
            client.close()
            self._close_hops()
            raise Unreachable(cause) from None
        self._client = client

    def _jump(self, how: Plan, timeout: float) -> paramiko.Channel:
        """Log into each ProxyJump host in turn and open a direct-tcpip channel to the next;
        the jump's own login uses keys and the agent, as ssh -J (never the host's password)."""
        host = self.host
        sock = None
        hops = [*how.jumps[1:], sshargs.Jump(host.user, host.address, host.port)]
        for jump, nxt in zip(how.jumps, hops, strict=True):
            client = _client(how.jump_known_hosts, True, jump.host, jump.port)
            self._hops.append(client)
            where = replace(host, address=jump.host, port=jump.port,
                            user=jump.user or getpass.getuser(),
                            known_hosts=how.jump_known_hosts[-1])
            started = time.monotonic()
            try:
                _login(client, where.address, where.port, where.user, timeout, host.key_file,
                       None, sock)
                sock = client.get_transport().open_channel(
                    "direct-tcpip", (nxt.host, nxt.port), ("127.0.0.1", 0), timeout=timeout)
            except (OSError, paramiko.SSHException, EOFError) as exc:
                self._close_hops()
                cause = _cause(where, exc, timeout, jump=True,
                               elapsed=time.monotonic() - started)
                raise Unreachable(f"through jump host {jump}: {cause}") from None
        return sock

    def _close_hops(self) -> None:
        for client in reversed(self._hops):
            client.close()
        self._hops.clear()
        if self._proxy is not None:
            self._proxy.close()

    def run(self, command: str, timeout: float, stdin: bytes = b"",
            raw: bool = False) -> Result:
        """`raw`: stdout and stderr as the bytes the host sent (else decoded text)."""
        transport = self._client.get_transport()
        if transport is None or not transport.is_active():
            raise Unreachable(f"connection to {self.host.address} was closed")
        try:
            chan = transport.open_session(timeout=self._timeout)
        except (OSError, paramiko.SSHException) as exc:
            raise Unreachable(_cause(self.host, exc, self._timeout)) from None
        with chan:
            chan.exec_command(command)
            if stdin:
                chan.sendall(stdin)
            chan.shutdown_write()
            return _collect(chan, timeout, command, raw)

    def close(self) -> None:
        target = self._client.get_transport()
        self._client.close()
        if target is not None and self._hops:
            # Its thread closes its socket once more on the way out, and through a jump host
            # that socket is a channel of the hop's transport: closed first, the hop made that
            # last close raise EOFError in the thread (a flaky unit test's unhandled exception).
            target.join(2)
        self._close_hops()


class LocalConnection:
    """ansible_connection=local: the same contract as Connection, commands run here with
    `sh -c` (Ansible's local connection runs them as the user running it)."""

    def __init__(self, host: Host, connect_timeout: float):
        self.host = host
        self._running: set[subprocess.Popen] = set()

    def run(self, command: str, timeout: float, stdin: bytes = b"",
            raw: bool = False) -> Result:
        try:
            proc = subprocess.Popen(["/bin/sh", "-c", command], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    start_new_session=True)
        except OSError as exc:
            raise Unreachable(f"cannot run /bin/sh here: {exc.strerror}") from None
        self._running.add(proc)
        try:
            out, err = proc.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_tree(proc.pid)  # the command and whatever it started
            proc.communicate()
            raise CommandTimeout(f"local command did not finish within {timeout:g}s") from None
        finally:
            self._running.discard(proc)
        if raw:
            return Result(proc.returncode, out, err)
        return Result(proc.returncode, out.decode(errors="replace"),
                      err.decode(errors="replace"))

    def close(self) -> None:
        """End commands still running (a test timed out on them): the run must not wait.
        Their whole tree: coreutils' timeout puts itself in a process group of its own."""
        for proc in list(self._running):
            _kill_tree(proc.pid)


def _kill_tree(pid: int, rounds: int = 10) -> None:
    """SIGKILL `pid`, everything below it and their process groups (coreutils' timeout makes
    its own), in several rounds: a shell forking while it is killed leaves an orphan that
    only its process group still names, and that orphan would hold the output pipe open."""
    groups: set[int] = set()
    for _ in range(rounds):
        pids = [*_descendants(pid), pid]
        for p in pids:
            with suppress(OSError):
                groups.add(os.getpgid(p))
        groups.discard(os.getpgrp())  # never this run's own group
        for g in list(groups):
            try:
                os.killpg(g, signal.SIGKILL)
            except ProcessLookupError:
                groups.discard(g)
        for p in pids:
            with suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
        if not groups:
            return
        time.sleep(0.02)


def _descendants(pid: int) -> list[int]:
    """Every process below `pid`, from /proc (children first)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out[::-1]


def connect(host: Host, connect_timeout: float) -> Connection | LocalConnection:
    """The host's connection as its ansible_connection says: ssh/paramiko or local."""
    if host.connection == "local":
        return LocalConnection(host, connect_timeout)
    if host.connection not in ("ssh", "paramiko_ssh"):
        raise Unreachable(f"ansible_connection={host.connection} is not supported: kubeaccept "
                          "connects over SSH (ssh, paramiko) or runs locally (local)")
    return Connection(host, connect_timeout)


def _collect(chan: paramiko.Channel, timeout: float, command: str, raw: bool = False) -> Result:
    """Read until the remote end closed its output AND sent the exit status: OpenSSH may send
    the exit status before the last of the output."""
    deadline = time.monotonic() + timeout
    out, err = bytearray(), bytearray()
    while True:
        while chan.recv_ready():
            out += chan.recv(65536)
        while chan.recv_stderr_ready():
            err += chan.recv_stderr(65536)
        if (chan.eof_received and chan.exit_status_ready()
                and not chan.recv_ready() and not chan.recv_stderr_ready()):
            break
        if chan.closed and not chan.exit_status_ready():
            # close() from another thread (the run is ending) or the connection dropped
            raise Unreachable(f"the connection closed while {command.split()[0]} ran")
        left = deadline - time.monotonic()
        if left <= 0:
            raise CommandTimeout(f"remote command did not finish within {timeout:g}s")
        select.select([chan], [], [], min(left, 1.0))
    if raw:
        return Result(chan.recv_exit_status(), bytes(out), bytes(err))
    return Result(chan.recv_exit_status(), out.decode(errors="replace"),
                  err.decode(errors="replace"))
