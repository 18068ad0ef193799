"""Connection failures become one line that says what happened and what to do."""

from __future__ import annotations

import errno
import socket

import paramiko
import pytest

from kubeaccept.transport import Connection, Unreachable, _cause

from .factory import host


@pytest.mark.parametrize("exc, words", [
    (TimeoutError(), "timed out after 5s"),
    (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), "connection refused by root@192.0.2.11:22"),
    (OSError(errno.EHOSTUNREACH, "No route to host"), "icmp-host-prohibited"),
    (paramiko.AuthenticationException("x"), "authentication failed for root@192.0.2.11:22"),
    (paramiko.SSHException("Server '[x]:22' not found in known_hosts"), "ssh-keyscan -p 22 192.0.2.11"),
    (socket.gaierror(-2, "Name or service not known"), "cannot resolve '192.0.2.11'"),
    (paramiko.ssh_exception.NoValidConnectionsError(
        {("192.0.2.11", 22): ConnectionRefusedError(errno.ECONNREFUSED, "x")}), "connection refused"),
])
def test_causes(exc, words):
    assert words in _cause(host(), exc, 5)


def test_connect_to_a_closed_local_port_is_unreachable_quickly():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    h = host().__class__(name="x", address="127.0.0.1", port=port, host_key_checking=False)
    with pytest.raises(Unreachable, match="connection refused"):
        Connection(h, connect_timeout=2)
