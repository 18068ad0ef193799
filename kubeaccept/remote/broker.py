"""One SSH login per host for a whole pytest-xdist run: the controller process holds the
connections and runs commands on them for the workers, which ask over a Unix socket in the
run's private directory (mkdtemp: mode 0700). As OpenSSH's ControlMaster, for paramiko.

One request per socket connection: a JSON line {host, command, timeout, stdin} answered by a
JSON line {status, stdout, stderr} (base64, the bytes as the host sent them) or {unreachable}
/ {timeout} (the one-line cause). Nothing crosses it but what the command printed."""

from __future__ import annotations

import base64
import json
import socket
import socketserver
import threading
from pathlib import Path

from kubeaccept.model.hosts import Host
from kubeaccept.remote.transport import CommandTimeout, Result, Unreachable

# A worker waits for the broker no longer than the command's own timeout plus the login's
# plus this margin (the broker's threads bound both).
MARGIN = 5.0


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        store = self.server.store
        try:
            ask = json.loads(self.rfile.readline())
            host = store.host_named(ask["host"])
            conn = store.connection(host)
            result = conn.run(ask["command"], float(ask["timeout"]),
                              base64.b64decode(ask.get("stdin", "")), raw=True)
            answer = {"status": result.exit_status, "stdout": _b64(result.stdout),
                      "stderr": _b64(result.stderr)}
        except Unreachable as exc:
            answer = {"unreachable": str(exc)}
        except CommandTimeout as exc:
            answer = {"timeout": str(exc)}
        except (ValueError, KeyError) as exc:
            answer = {"unreachable": f"bad request to the run's SSH broker: {exc}"}
        self.wfile.write(json.dumps(answer).encode() + b"\n")


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True  # a command still running does not hold the run's exit


class Broker:
    """The controller's side: serves `store`'s connections at `path` until close()."""

    def __init__(self, store, path: Path):
        self.path = path
        self.server = _Server(str(path), _Handler)
        self.server.store = store
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True,
                                       name="kubeaccept-ssh-broker")
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.path.unlink(missing_ok=True)


class BrokerConnection:
    """A worker's side: the contract of transport.Connection, the login the controller's."""

    def __init__(self, path: Path, host: Host, connect_timeout: float):
        self.path = path
        self.host = host
        self.connect_timeout = connect_timeout

    def run(self, command: str, timeout: float, stdin: bytes = b"",
            raw: bool = False) -> Result:
        ask = {"host": self.host.name, "command": command, "timeout": timeout,
               "stdin": _b64(stdin)}
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                # the broker may first have to log in, then runs the command
                sock.settimeout(self.connect_timeout + timeout + MARGIN)
                sock.connect(str(self.path))
                sock.sendall(json.dumps(ask).encode() + b"\n")
                answer = json.loads(sock.makefile("rb").readline() or b"null")
        except (OSError, ValueError) as exc:
            raise Unreachable(f"the run's SSH broker ({self.path}) did not answer for "
                              f"{self.host.name}: {exc}") from None
        if not isinstance(answer, dict):
            raise Unreachable(f"the run's SSH broker closed the request for {self.host.name}")
        if "unreachable" in answer:
            raise Unreachable(answer["unreachable"])
        if "timeout" in answer:
            raise CommandTimeout(answer["timeout"])
        out, err = base64.b64decode(answer["stdout"]), base64.b64decode(answer["stderr"])
        if raw:
            return Result(answer["status"], out, err)
        return Result(answer["status"], out.decode(errors="replace"),
                      err.decode(errors="replace"))

    def close(self) -> None:
        """The login is the controller's; nothing of it to close here."""
