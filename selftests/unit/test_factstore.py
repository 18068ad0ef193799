"""The fact store hands every test the same parsed facts; peers are read when asked for."""

from __future__ import annotations

import threading

from kubeaccept.model.hosts import Inventory
from kubeaccept.model.settings import Settings
from kubeaccept.remote.factstore import FactStore

from .factory import facts, host


def store_of(names, gathered):
    inv = Inventory("inv", tuple(host(n, f"192.0.2.{i + 1}") for i, n in enumerate(names)))
    store = FactStore(inv, Settings())

    def shared(h):
        gathered.append(h.name)
        return {"error": "unreachable: refused"} if h.name == "down" else \
            facts(h.name).to_json()

    store._shared = shared
    return inv, store


def test_facts_are_gathered_and_parsed_once_per_host():
    gathered = []
    inv, store = store_of(["a", "b", "down"], gathered)
    first = store.get(inv.get("a"))
    assert store.get(inv.get("a")) is first  # the same parsed object: caches shared
    assert store.get(inv.get("down")) == "unreachable: refused"
    assert gathered == ["a", "down"]


def test_peers_are_the_other_hosts_read_lazily():
    gathered = []
    inv, store = store_of(["a", "b", "c", "down"], gathered)
    peers = store.peers(inv.get("a"))
    assert list(peers) == ["b", "c", "down"] and len(peers) == 3 and gathered == []
    assert peers["b"].host == "b" and gathered == ["b"]
    assert peers.get("down") == "unreachable: refused" and peers.get("a") is None
    assert peers.get("nope") is None


def test_background_prefetch_lets_a_host_be_tested_before_the_others_are_in():
    gathered = []
    inv, store = store_of(["a", "slow", "c"], gathered)
    release = threading.Event()
    plain = store._shared

    def shared(h):
        if h.name == "slow":
            assert release.wait(10)
        return plain(h)

    store._shared = shared
    hosts = list(inv.hosts)
    store.prefetch(hosts, wait=False)  # returns at once: "slow" is still being gathered
    assert store.get(inv.get("a")).host == "a" and store.get(inv.get("c")).host == "c"
    assert "slow" not in gathered
    store.prefetch(hosts, wait=False)  # queued once: no second gather
    release.set()
    store.prefetch(hosts)  # waits for all
    assert sorted(gathered) == ["a", "c", "slow"]
    store.close()


def test_a_host_is_logged_into_once_when_two_threads_ask_at_once(monkeypatch):
    """The API's opening reads admin.conf from a control plane while its gathering logs in."""
    import time

    from kubeaccept.remote import factstore

    logins = []

    def slow_connect(host, timeout):
        logins.append(host.name)
        time.sleep(0.2)
        return object()

    monkeypatch.setattr(factstore, "connect", slow_connect)
    inv, store = store_of(["cp1"], [])
    got = []
    threads = [threading.Thread(target=lambda: got.append(store.connection(inv.get("cp1"))))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert logins == ["cp1"] and store.logins == 1 and len({id(c) for c in got}) == 1
