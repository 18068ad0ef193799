"""Connection failures become one line that says what happened and what to do."""

from __future__ import annotations

import errno
import getpass
import os
import shlex
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import paramiko
import pytest

from kubeaccept.model.hosts import Host, as_root
from kubeaccept.remote.transport import (
    CommandTimeout,
    Connection,
    LocalConnection,
    Unreachable,
    _cause,
    _client,
    _parsed_known_hosts,
    connect,
    plan,
    sudo_refused,
)

from . import localserver, sshstandin
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


def _listener(behaviour: str):
    """A real TCP server on 127.0.0.1 that either closes each connection at once ("close")
    or accepts and never writes ("silent"); returns (port, stop)."""
    return localserver.serve(lambda conn: conn.close() if behaviour == "close" else None)


def test_a_peer_that_hangs_up_is_not_said_to_have_taken_the_timeout():
    """paramiko 3/4 raises "Error reading SSH protocol banner" both for silence until
    banner_timeout and for an EOF at once (transport.py _check_banner); "within 10s" is said
    only when 10 s passed."""
    port, stop = _listener("close")
    h = host().__class__(name="x", address="127.0.0.1", port=port, host_key_checking=False)
    started = time.monotonic()
    try:
        with pytest.raises(Unreachable) as err:
            Connection(h, connect_timeout=10)
    finally:
        stop()
    assert time.monotonic() - started < 5
    assert "closed the connection after" in str(err.value)
    assert "without an SSH banner" in str(err.value) and "within 10s" not in str(err.value)


def test_a_silent_peer_is_said_to_have_taken_the_whole_timeout():
    port, stop = _listener("silent")
    h = host().__class__(name="x", address="127.0.0.1", port=port, host_key_checking=False)
    started = time.monotonic()
    try:
        with pytest.raises(Unreachable, match=r"no SSH handshake with .* within 1\.5s"):
            Connection(h, connect_timeout=1.5)
    finally:
        stop()
    assert time.monotonic() - started >= 1.4


# --- ansible_connection=local -------------------------------------------------------------


def test_local_connection_runs_sh_here_with_the_ssh_contract(tmp_path):
    """Ansible's local connection runs the command on the machine running Ansible, as its
    user; kubeaccept's LocalConnection does the same with `sh -c`, returning what Connection
    returns (exit status, stdout, stderr; stdin fed) and raising CommandTimeout when slow."""
    h = Host("node1", "node1", connection="local", user=getpass.getuser())
    conn = connect(h, connect_timeout=1)
    assert isinstance(conn, LocalConnection)
    r = conn.run("read line; echo \"got $line\"; echo warn >&2; exit 3", timeout=10, stdin=b"x\n")
    assert (r.exit_status, r.stdout, r.stderr) == (3, "got x\n", "warn\n")
    # the facts command's shape: sh -c SCRIPT NAME ARGS
    line = "sh -c " + shlex.quote('echo "$0 $1 $2"') + " kubeaccept-facts tok 3"
    assert conn.run(line, timeout=10).stdout == "kubeaccept-facts tok 3\n"


def test_local_command_timeout_kills_what_it_started(tmp_path):
    pidfile = tmp_path / "pid"
    conn = LocalConnection(Host("node1", "node1", connection="local"), 1)
    start = time.monotonic()
    with pytest.raises(CommandTimeout, match=r"local command did not finish within 0.5s"):
        conn.run(f"sleep 30 & echo $! > {pidfile}; wait", timeout=0.5)
    assert time.monotonic() - start < 5
    pid = int(pidfile.read_text())
    time.sleep(0.2)
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]


def test_unsupported_connection_is_unreachable_with_the_reason():
    with pytest.raises(Unreachable, match=r"^ansible_connection=winrm is not supported: "
                       r"kubeaccept connects over SSH \(ssh, paramiko\) or runs locally"):
        connect(Host("win1", "192.0.2.9", connection="winrm"), 1)


# --- ProxyCommand and ProxyJump ------------------------------------------------------------

STANDIN = Path(__file__).with_name("sshstandin.py")


@pytest.fixture
def keys(tmp_path):
    """A host key for the stand-in server(s) and a client key the server accepts."""
    out = {}
    for name in ("target", "jump", "client"):
        key = paramiko.ECDSAKey.generate()
        key.write_private_key_file(str(tmp_path / name))
        (tmp_path / f"{name}.pub").write_text(f"{key.get_name()} {key.get_base64()}\n")
        out[name] = key
    return out


def known_hosts(path, entries):
    path.write_text("".join(f"{name} {key.get_name()} {key.get_base64()}\n"
                            for name, key in entries))
    return str(path)


def proxied_host(tmp_path, checking=True, **kw):
    """kubespray's openstack bastion shape: ProxyCommand='ssh -o StrictHostKeyChecking=no
    -o UserKnownHostsFile=/dev/null -W %h:%p -q USER@BASTION', with the stand-in in ssh's place."""
    proxy = (f"{sys.executable} {STANDIN} {tmp_path / 'target'} {tmp_path / 'client.pub'} "
             "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -W %h:%p -q %r@bastion")
    return Host("w1", "10.0.0.21", 22, "ubuntu", key_file=str(tmp_path / "client"),
                known_hosts=str(tmp_path / "known_hosts"), host_key_checking=checking,
                proxy_command=proxy, **kw)


def test_plan_for_a_proxy_command(tmp_path):
    h = proxied_host(tmp_path)
    p = plan(h)
    assert p.proxy_command.endswith("-W 10.0.0.21:22 -q ubuntu@bastion")  # %h %p %r expanded
    assert p.proxy_argv[1:] == ("-c", "exec " + p.proxy_command)  # $SHELL -c "exec ..." as ssh
    assert (p.check_host_key, p.known_hosts, p.jumps) == (True, str(tmp_path / "known_hosts"), ())
    assert str(p).startswith("ubuntu@10.0.0.21:22 through ProxyCommand ")
    assert str(p).endswith(f"its host key checked against {tmp_path / 'known_hosts'}")


def test_plan_for_jump_hosts(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    h = Host("w2", "192.0.2.22", 22, "ubuntu", known_hosts="/kh",
             proxy_jump="ops@203.0.113.5:2222,10.0.0.5")
    p = plan(h)
    assert [str(j) for j in p.jumps] == ["ops@203.0.113.5:2222", "10.0.0.5:22"]
    assert p.jump_known_hosts == (str(tmp_path / ".ssh" / "known_hosts"), "/kh")
    assert p.proxy_command is None
    assert "through jump host(s) ops@203.0.113.5:2222, 10.0.0.5:22" in str(p)


def test_login_through_a_proxy_command_checks_the_targets_key(tmp_path, keys):
    """The login goes through the ProxyCommand's stdin/stdout (paramiko's sock), and the
    target's key is checked against the target's known_hosts: the StrictHostKeyChecking=no
    and UserKnownHostsFile=/dev/null inside the ProxyCommand belong to the bastion's ssh."""
    known_hosts(tmp_path / "known_hosts", [("10.0.0.21", keys["target"])])
    conn = Connection(proxied_host(tmp_path), connect_timeout=10)
    try:
        r = conn.run("echo hi", timeout=10)
    finally:
        conn.close()
    assert r.exit_status == 0
    assert r.stdout == ("proxied ubuntu: echo hi [-o StrictHostKeyChecking=no -o "
                        "UserKnownHostsFile=/dev/null -W 10.0.0.21:22 -q ubuntu@bastion]\n")
    assert conn._proxy.process.poll() is not None  # closing ends the proxy command

    known_hosts(tmp_path / "known_hosts", [("10.0.0.99", keys["target"])])
    with pytest.raises(Unreachable, match=r"host key of 10.0.0.21 is not in .*known_hosts: "
                       r"add it \(ssh-keyscan -p 22 10.0.0.21"):
        Connection(proxied_host(tmp_path), connect_timeout=10)
    known_hosts(tmp_path / "known_hosts", [("10.0.0.21", keys["jump"])])
    with pytest.raises(Unreachable, match=r"host key of 10.0.0.21 does not match"):
        Connection(proxied_host(tmp_path, checking=False), connect_timeout=10)


def test_proxy_command_that_fails_says_why_quickly(tmp_path):
    """ssh -W to a bastion that refuses: the proxy exits 255 with ssh's words on stderr."""
    h = replace(proxied_host(tmp_path), proxy_command=(
        "sh -c \"echo 'ssh: connect to host bastion port 22: Connection refused' >&2; "
        "exit 255\""))
    start = time.monotonic()
    with pytest.raises(Unreachable) as e:
        Connection(h, connect_timeout=10)
    assert time.monotonic() - start < 5
    assert str(e.value).startswith("cannot log into ubuntu@10.0.0.21:22 through ProxyCommand ")
    assert str(e.value).endswith("which exited with status 255: ssh: connect to host bastion "
                                 "port 22: Connection refused")


def test_proxy_command_that_hangs_is_bounded_and_ended(tmp_path):
    pidfile = tmp_path / "pid"
    h = replace(proxied_host(tmp_path), proxy_command=f"sh -c 'echo $$ > {pidfile}; exec sleep 30'")
    start = time.monotonic()
    with pytest.raises(Unreachable, match=r"through ProxyCommand .*: no SSH server answered "
                       r"through it within 1s"):
        Connection(h, connect_timeout=1)
    assert time.monotonic() - start < 6
    pid = int(pidfile.read_text())
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]


def test_login_through_a_jump_host(tmp_path, keys, monkeypatch):
    """ProxyJump: log into the jump host (its key checked against known_hosts, always), open a
    direct-tcpip channel to the target from there, log into the target over that channel."""
    monkeypatch.setenv("HOME", str(tmp_path))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    sshstandin.serve_socket(listener, keys["jump"], (tmp_path / "client.pub").read_text().strip(),
                            keys["target"])
    kh = known_hosts(tmp_path / "known_hosts", [(f"[127.0.0.1]:{port}", keys["jump"]),
                                                 ("10.0.0.21", keys["target"])])
    h = Host("w1", "10.0.0.21", 22, "ubuntu", key_file=str(tmp_path / "client"),
             known_hosts=kh, proxy_jump=f"ops@127.0.0.1:{port}")
    conn = Connection(h, connect_timeout=10)
    try:
        assert conn.run("id -u", timeout=10).stdout == "target ('10.0.0.21', 22) ubuntu: id -u\n"
    finally:
        conn.close()
    listener.close()


def test_jump_host_refused_or_unknown(tmp_path, keys, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    h = Host("w1", "10.0.0.21", 22, "ubuntu", key_file=str(tmp_path / "client"),
             host_key_checking=False, proxy_jump=f"ops@127.0.0.1:{port}")
    with pytest.raises(Unreachable, match=rf"^through jump host ops@127.0.0.1:{port}: "
                       rf"connection refused by ops@127.0.0.1:{port}"):
        Connection(h, connect_timeout=2)


def test_jump_host_key_is_checked_even_when_the_target_is_not(tmp_path, keys, monkeypatch):
    """ssh -J checks the jump host's key whatever the target's StrictHostKeyChecking says."""
    monkeypatch.setenv("HOME", str(tmp_path))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    sshstandin.serve_socket(listener, keys["jump"], (tmp_path / "client.pub").read_text().strip(),
                            keys["target"])
    kh = known_hosts(tmp_path / "known_hosts", [("10.0.0.21", keys["target"])])
    h = Host("w1", "10.0.0.21", 22, "ubuntu", key_file=str(tmp_path / "client"), known_hosts=kh,
             host_key_checking=False, proxy_jump=f"ops@127.0.0.1:{port}")
    with pytest.raises(Unreachable) as e:
        Connection(h, connect_timeout=10)
    assert str(e.value) == (f"through jump host ops@127.0.0.1:{port}: host key of 127.0.0.1 is "
                            f"not in {kh}: add it (ssh-keyscan -p {port} 127.0.0.1 >> {kh})")
    listener.close()


# sudo 1.9.13 (Debian 12) on stderr, as seen over SSH on the lab's sudo-password fault
SUDO_N = ("sudo: unable to resolve host w1: Temporary failure in name resolution\n"
          "sudo: a password is required\n")
SUDO_WRONG = ("sudo: unable to resolve host w1: Temporary failure in name resolution\n"
              "Sorry, try again.\n\nsudo: no password was provided\n"
              "sudo: 1 incorrect password attempt\n")
SUDO_NOT_ALLOWED = "ops is not in the sudoers file.\n"  # 1.9.13's words without a rule


def test_sudo_is_used_only_when_the_inventory_asks_for_it():
    root, ops = host(), Host("n", "a", user="ops", become=True)
    assert as_root(root, "cat x") == ("cat x", b"")
    assert as_root(replace(root, become=True), "cat x") == ("cat x", b"")  # root already
    assert as_root(replace(ops, become=False), "cat x") == ("cat x", b"")
    # -n: sudo fails at once instead of waiting at a prompt nobody answers
    assert as_root(ops, "cat x") == ("sudo -n -- cat x", b"")
    assert as_root(replace(ops, become_password="pw"), "cat x") == \
        ("sudo -S -p '' -- cat x", b"pw\n")


def test_sudo_refusals_say_what_to_do():
    ops = Host("w1", "a", user="ops", become=True)
    assert "asks ops for a password (set ansible_become_password" in sudo_refused(ops, SUDO_N)
    assert "refused ansible_become_password for ops" in sudo_refused(ops, SUDO_WRONG)
    assert "ops may not use sudo on w1" in sudo_refused(ops, "sudo: " + SUDO_NOT_ALLOWED)
    assert sudo_refused(ops, SUDO_N).endswith("(sudo: a password is required)")  # its words
    assert sudo_refused(ops, "cat: /etc/x: No such file or directory\n") is None


def test_closing_a_local_connection_ends_orphans_and_forks_in_flight():
    """A command that keeps forking, its children orphaned at once (`(sleep &)`, as a shell
    pipeline does when its parent dies): closing the connection must end every one of them,
    found by process group as well as by parentage, or they hold the output pipe open and
    the run waits for them at exit."""
    import threading

    tag = f"sleep {800000 + os.getpid() % 99999}"
    conn = LocalConnection(host(), 3)
    worker = threading.Thread(target=lambda: conn.run(
        f"timeout -k 5 60 sh -c 'while :; do ({tag} &); sleep 0.01; done'", 60), daemon=True)
    worker.start()
    time.sleep(1)
    conn.close()
    worker.join(10)
    assert not worker.is_alive(), "run() still waiting: something holds its output pipe"
    time.sleep(0.2)
    left = subprocess.run(["pgrep", "-fx", tag], capture_output=True, text=True)
    assert left.returncode == 1, left.stdout


def test_known_hosts_parsed_once_and_only_the_targets_keys_used(tmp_path, keys):
    """paramiko's load_host_keys parses every line into a key object on every login (O(hosts²)
    per run); the client gets the target's entries of a file parsed once per content, looked
    up as paramiko looks them up ([host]:port off port 22, hashed names too)."""
    kh = tmp_path / "known_hosts"
    hashed = paramiko.HostKeys.hash_host("10.0.0.7")
    known_hosts(kh, [("10.0.0.5", keys["target"]), ("[10.0.0.6]:2222", keys["jump"]),
                     (hashed, keys["jump"])])
    one = _client([str(kh)], True, "10.0.0.5", 22).get_host_keys()
    assert list(one.keys()) == ["10.0.0.5"]
    assert _client([str(kh)], True, "10.0.0.6", 22).get_host_keys().keys() == []
    assert list(_client([str(kh)], True, "10.0.0.6", 2222).get_host_keys()) == ["[10.0.0.6]:2222"]
    assert len(_client([str(kh)], True, "10.0.0.7", 22).get_host_keys()) == 1
    assert _parsed_known_hosts.cache_info().currsize >= 1
    misses = _parsed_known_hosts.cache_info().misses
    _client([str(kh)], True, "10.0.0.5", 22)
    assert _parsed_known_hosts.cache_info().misses == misses  # not parsed again
    known_hosts(kh, [("10.0.0.5", keys["jump"])])  # same size, maybe same mtime: new content
    key = _client([str(kh)], True, "10.0.0.5", 22).get_host_keys().lookup("10.0.0.5")
    assert list(key.values())[0] == keys["jump"]
