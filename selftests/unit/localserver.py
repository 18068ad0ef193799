"""A real TCP server on 127.0.0.1 for tests of the clients' words: each connection is handed
to `handle` in a thread; `stop` closes the server and every connection it accepted."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from contextlib import suppress


def serve(handle: Callable[[socket.socket], object]) -> tuple[int, Callable[[], None]]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    held: list[socket.socket] = []

    def loop():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            held.append(conn)
            with suppress(OSError):  # ssl.SSLError too: the client's side is what is read
                handle(conn)

    threading.Thread(target=loop, daemon=True).start()

    def stop():
        srv.close()
        for c in held:
            c.close()
    return srv.getsockname()[1], stop
