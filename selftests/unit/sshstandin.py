"""A stand-in SSH server (paramiko) for the transport tests, with no network.

- Run as a script, it speaks SSH on its stdin/stdout: a ProxyCommand in the place of
  `ssh -W %h:%p user@bastion`, which is what a bastion's ssh hands the client.
  `python sshstandin.py HOSTKEY CLIENTPUB [ssh-style args ...]`
- `serve_socket` serves a socket (a loopback one: a jump host) and answers direct-tcpip
  channels with a second server, the target behind the jump host.
It runs nothing: an exec request is answered with `<label> <user>: <command> <args>`.
"""

from __future__ import annotations

import os
import select
import socket
import sys
import threading

import paramiko


class _Server(paramiko.ServerInterface):
    def __init__(self, client_pub: str, label: str, extra: str = ""):
        self.client_pub, self.label, self.extra = client_pub, label, extra
        self.user = "?"
        self.forwards: dict[int, tuple] = {}

    def get_allowed_auths(self, username):
        return "publickey"

    def check_auth_publickey(self, username, key):
        self.user = username
        ok = f"{key.get_name()} {key.get_base64()}" == self.client_pub
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def check_channel_request(self, kind, chanid):
        return paramiko.OPEN_SUCCEEDED if kind == "session" else \
            paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_direct_tcpip_request(self, chanid, origin, destination):
        self.forwards[chanid] = destination
        return paramiko.OPEN_SUCCEEDED

    def check_channel_exec_request(self, channel, command):
        def reply():
            channel.sendall(f"{self.label} {self.user}: {command.decode()}{self.extra}\n"
                            .encode())
            channel.send_exit_status(0)
            channel.shutdown_write()

        threading.Thread(target=reply, daemon=True).start()
        return True


def serve(sock, host_key: paramiko.PKey, client_pub: str, label: str,
          target_key: paramiko.PKey | None = None, extra: str = "") -> paramiko.Transport:
    """Serve one SSH connection on sock; with target_key, a direct-tcpip channel is served
    as the target (a jump host whose network is itself)."""
    transport = paramiko.Transport(sock)
    transport.add_server_key(host_key)
    server = _Server(client_pub, label, extra)
    try:
        transport.start_server(server=server)
    except (paramiko.SSHException, OSError, EOFError):
        # a client that refuses our host key hangs up mid-handshake: as sshd, carry on
        transport.close()
        return transport

    def accept():
        while transport.is_active():
            chan = transport.accept(timeout=0.5)
            if chan is not None and chan.get_id() in server.forwards and target_key:
                threading.Thread(target=serve, args=(chan, target_key, client_pub,
                                                     f"target {server.forwards[chan.get_id()]}"),
                                 daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return transport


def serve_socket(listener: socket.socket, host_key, client_pub, target_key) -> None:
    def loop():
        conn, _ = listener.accept()
        serve(conn, host_key, client_pub, "jump", target_key)

    threading.Thread(target=loop, daemon=True).start()


class _Stdio:
    """stdin/stdout as the socket paramiko wants."""

    def __init__(self):
        self.timeout = None

    def settimeout(self, timeout):
        self.timeout = timeout

    def send(self, data):
        return os.write(1, data)

    def recv(self, size):
        if not select.select([0], [], [], self.timeout)[0]:
            raise TimeoutError()
        return os.read(0, size)

    def close(self):
        pass


if __name__ == "__main__":
    key = paramiko.ECDSAKey.from_private_key_file(sys.argv[1])
    with open(sys.argv[2]) as f:
        pub = " ".join(f.read().split()[:2])
    t = serve(_Stdio(), key, pub, "proxied", extra=" [" + " ".join(sys.argv[3:]) + "]")
    while t.is_active():
        t.join(0.5)
