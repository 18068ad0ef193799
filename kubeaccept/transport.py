"""SSH to one host with paramiko: bounded connect, bounded commands, one-line errors."""

from __future__ import annotations

import errno
import os
import select
import socket
import time
from dataclasses import dataclass

import paramiko

from .inventory import Host


class Unreachable(Exception):
    """The host could not be logged into; str() is the one-line cause."""


class CommandTimeout(Exception):
    pass


@dataclass(frozen=True)
class Result:
    exit_status: int
    stdout: str
    stderr: str


def _known_hosts_file(host: Host) -> str:
    return host.known_hosts or os.path.expanduser("~/.ssh/known_hosts")


def _cause(host: Host, exc: BaseException, timeout: float) -> str:
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
                f"(ssh-keyscan -p {host.port} {host.address} >> {kh}) "
                "or set ansible_host_key_checking=false")
    if getattr(exc, "errno", None) == errno.EHOSTUNREACH:
        return (f"cannot connect to {where}: No route to host (host down, or a firewall "
                "rejects SSH with icmp-host-prohibited)")
    if isinstance(exc, OSError) and exc.strerror:
        return f"cannot connect to {where}: {exc.strerror}"
    return f"cannot connect to {where}: {exc}"


class Connection:
    """One SSH login, reused for every command to the host."""

    def __init__(self, host: Host, connect_timeout: float):
        self.host = host
        client = paramiko.SSHClient()
        kh = _known_hosts_file(host)
        if os.path.exists(kh):
            client.load_host_keys(kh)
        policy = paramiko.RejectPolicy() if host.host_key_checking else paramiko.AutoAddPolicy()
        client.set_missing_host_key_policy(policy)
        try:
            client.connect(
                host.address,
                port=host.port,
                username=host.user,
                password=host.password,
                key_filename=host.key_file,
                look_for_keys=host.key_file is None and host.password is None,
                allow_agent=host.key_file is None and host.password is None,
                timeout=connect_timeout,
                banner_timeout=connect_timeout,
                auth_timeout=connect_timeout,
                channel_timeout=connect_timeout,
            )
        except (OSError, paramiko.SSHException, EOFError) as exc:
            client.close()
            raise Unreachable(_cause(host, exc, connect_timeout)) from None
        self._client = client
        self._timeout = connect_timeout

    def run(self, command: str, timeout: float, stdin: bytes = b"") -> Result:
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
            return _collect(chan, timeout, command)

    def close(self) -> None:
        self._client.close()


def _collect(chan: paramiko.Channel, timeout: float, command: str) -> Result:
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
        left = deadline - time.monotonic()
        if left <= 0:
            raise CommandTimeout(f"remote command did not finish within {timeout:g}s")
        select.select([chan], [], [], min(left, 1.0))
    return Result(chan.recv_exit_status(), out.decode(errors="replace"),
                  err.decode(errors="replace"))
