"""Node facts for a test session: one login and one facts command per host, shared by
pytest-xdist workers through a directory of per-host files."""

from __future__ import annotations

import fcntl
import json
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from kubeaccept import facts
from kubeaccept.model.hosts import Host, Inventory
from kubeaccept.model.ports import probe_targets
from kubeaccept.model.roles import NODE
from kubeaccept.model.settings import Settings
from kubeaccept.remote.broker import Broker, BrokerConnection
from kubeaccept.remote.transport import (
    CommandTimeout,
    Connection,
    LocalConnection,
    Unreachable,
    connect,
    sudo_refused,
)


class Peers(Mapping):
    """name -> facts (or why there are none) of every inventory host but one."""

    def __init__(self, store: FactStore, host: Host):
        self._store = store
        self._hosts = {h.name: h for h in store.inventory.hosts if h.name != host.name}

    def __getitem__(self, name: str) -> facts.NodeFacts | str:
        return self._store.get(self._hosts[name])

    def __iter__(self):
        return iter(self._hosts)

    def __len__(self) -> int:
        return len(self._hosts)


# Hosts gathered at once (threads of one runner process).
GATHER_AT_ONCE = 32


class FactStore:
    def __init__(self, inventory: Inventory, settings: Settings, shared_dir: Path | None = None,
                 worker: tuple[int, int] = (0, 1), broker: Path | None = None):
        # (index, count) of this xdist worker: each starts gathering at its own share of the
        # hosts, so workers gather different hosts at once instead of queueing on one lock.
        self.worker = worker
        self.inventory = inventory
        self.settings = settings
        self.shared_dir = shared_dir
        self.logins = 0
        # an xdist worker's commands go through the controller's logins (remote.broker)
        self.broker = broker
        self._serving: Broker | None = None
        self._by_name = {h.name: h for h in inventory.hosts}
        self._parsed: dict[str, facts.NodeFacts | str] = {}
        self._connections: dict[str, Connection | LocalConnection | BrokerConnection] = {}
        self._peers: dict[str, Peers] = {}
        self._locks = {h.name: threading.Lock() for h in inventory.hosts}
        self._conn_locks = {h.name: threading.Lock() for h in inventory.hosts}
        self._pool: ThreadPoolExecutor | None = None
        self._queued: set[str] = set()
        self.order: list[str] = []  # host names in the order the first prefetch gathers them

    def get(self, host: Host) -> facts.NodeFacts | str:
        """The host's facts, or the one-line reason there are none ("unreachable: …").
        Parsed once: every test of the run shares the object (and its parsed sections)."""
        with self._locks[host.name]:
            if host.name not in self._parsed:
                data = self._shared(host)
                self._parsed[host.name] = (data["error"] if "error" in data
                                           else facts.NodeFacts.from_json(data))
        return self._parsed[host.name]

    def peers(self, host: Host) -> Peers:
        """The other hosts' facts, read only when a check asks for one."""
        if host.name not in self._peers:
            self._peers[host.name] = Peers(self, host)
        return self._peers[host.name]

    def prefetch(self, hosts, wait: bool = True) -> None:
        """Gather the hosts' facts, GATHER_AT_ONCE at a time; `wait=False`: in the background,
        so that the tests of the hosts gathered first run while the others are gathered (get()
        waits for its own host only)."""
        ordered = self.gather_order(hosts)
        self.order = self.order or [h.name for h in ordered]
        todo = [h for h in ordered if h.name not in self._parsed and h.name not in self._queued]
        if todo:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=GATHER_AT_ONCE)
            for h in todo:
                self._queued.add(h.name)
                self._pool.submit(self.get, h)
        if wait:
            for h in hosts:
                self.get(h)

    def gather_order(self, hosts) -> list:
        """The order this process gathers `hosts` in: from its own share of them on."""
        hosts = list(hosts)
        start = len(hosts) * self.worker[0] // max(1, self.worker[1])
        return hosts[start:] + hosts[:start]

    def host_named(self, name: str) -> Host:
        return self._by_name[name]

    def serve(self, path: Path) -> None:
        """Log in and run commands for the xdist workers (their FactStore's `broker`)."""
        self._serving = Broker(self, path)

    def close(self) -> None:
        if self._serving is not None:
            self._serving.close()
        if self._pool is not None:
            # not waiting: after pytest-timeout's Timeout, waiting here for a hung gather
            # would undo the per-test timeout (the command timeout still bounds it)
            self._pool.shutdown(wait=False, cancel_futures=True)
        for conn in list(self._connections.values()):
            conn.close()
        self._connections.clear()

    def _shared(self, host: Host) -> dict:
        if self.shared_dir is None:
            return self._gather(host)
        path = self.shared_dir / f"{host.name}.json"
        with open(self.shared_dir / f"{host.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another worker may be gathering this host
            if path.exists():
                return json.loads(path.read_text())
            data = self._gather(host)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data))
            tmp.replace(path)
            return data

    def connection(self, host: Host) -> Connection | LocalConnection | BrokerConnection:
        # one login per host also when the API's opening asks while its gathering logs in
        with self._conn_locks[host.name]:
            if host.name not in self._connections:
                if self.broker is not None:
                    self._connections[host.name] = BrokerConnection(
                        self.broker, host, self.settings.connect_timeout)
                    return self._connections[host.name]
                self._connections[host.name] = connect(host, self.settings.connect_timeout)
                self.logins += 1
        return self._connections[host.name]

    def _gather(self, host: Host) -> dict:
        try:
            conn = self.connection(host)
        except Unreachable as exc:
            return {"error": f"unreachable: {exc}"}
        token = facts.new_token()
        dns = self.settings.dns_ip if set(host.roles) & set(NODE) else None
        targets = probe_targets(host, self.inventory, self.settings.probe_sources)
        line, stdin = facts.command(host, token, self.settings.probe_timeout, targets, dns,
                                    self.settings.command_timeout)
        try:
            result = conn.run(line, self.settings.command_timeout, stdin)
            if result.exit_status and (refused := sudo_refused(host, result.stderr)):
                return {"error": f"cannot gather facts on {host.name}: {refused}"}
            return facts.parse(host.name, token, result.stdout, result.stderr,
                               result.exit_status).to_json()
        except Unreachable as exc:
            return {"error": f"unreachable: {exc}"}
        except (CommandTimeout, facts.FactsError) as exc:
            return {"error": f"cannot gather facts on {host.name}: {exc}"}
