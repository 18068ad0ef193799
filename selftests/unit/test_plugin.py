"""The plugin from the command line: usage errors are one line, unreachable hosts error."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def pytest_run(tmp_path, *args):
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           f"--junitxml={tmp_path / 'j.xml'}", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout + proc.stderr


def test_repository_inventory_dir_with_only_examples(tmp_path):
    rc, out = pytest_run(tmp_path, "--hosts=inventory")
    assert rc == 4 and "inventory/ holds no cluster inventory (examples/ is never used)" in out
    assert "Traceback" not in out


def test_example_inventory_is_refused(tmp_path):
    rc, out = pytest_run(tmp_path, "--hosts=inventory/examples/kubespray/hosts.yaml")
    assert rc == 4 and "is an example inventory" in out


def test_no_hosts_is_one_usage_line(tmp_path):
    rc, out = pytest_run(tmp_path)
    assert rc == 4 and "kubeaccept's tests need --hosts=INVENTORY" in out
    assert out.count("need --hosts") == 1 and "Traceback" not in out


def test_unreachable_spec_errors_each_test_without_traceback(tmp_path):
    rc, out = pytest_run(tmp_path, "--hosts=ssh://root@127.0.0.1:1?roles=control_plane",
                         "--connect-timeout=1", "-rE")
    assert rc == 1
    assert out.count("unreachable: connection refused by root@127.0.0.1:1") >= 9
    # every test errors but cluster_control_plane's, which fails on what it could judge
    from kubeaccept.checks.all import load
    run = [c for c in load().values() if not (c.destructive or c.only_with)
           and (not c.per_host or "control_plane" in c.roles)]
    assert f"{len(run) - 1} errors" in out and "passed" not in out and "Traceback" not in out
    # cluster checks: the unreachable host's part is not judged; a real finding still fails
    assert "ERROR tests/test_etcd.py::cluster_etcd - Unreachable: etcd: not" in out
    assert "1 failed" in out and "- 127.0.0.1:components: not checked: 127.0.0.1: " \
        "unreachable" in out and "127.0.0.1:readyz: no answer" in out
    assert "kubeaccept: unreachable hosts (their tests ERROR)" in out
    # the API checks say why there is no API, in one line each
    assert "cannot read the Kubernetes API: no Kubernetes credentials" in out
    assert "node_rp_filter[127.0.0.1]" in out


def test_bad_option_value(tmp_path):
    rc, out = pytest_run(tmp_path, "--hosts=ssh://root@127.0.0.1:1", "--pod-subnet=10.244.0.0/33")
    assert rc == 4 and "10.244.0.0/33" in out and "Traceback" not in out
    rc, out = pytest_run(tmp_path, "--hosts=ssh://root@127.0.0.1:1", "--probe-sources=0")
    assert rc == 4 and "--probe-sources=0: give all, auto or a number >= 1" in out
    assert "Traceback" not in out


def test_host_in_no_known_group_is_reported_not_skipped(tmp_path):
    """A host whose groups give it no role is not tested; the run says so at the end (also
    with -q) naming its groups and the groups kubeaccept knows."""
    inv = tmp_path / "hosts.ini"
    inv.write_text("[kube_control_plane]\ncp1 ansible_host=127.0.0.1 ansible_port=1\n"
                   "[monitoring]\nprom1 ansible_host=127.0.0.1\n")
    rc, out = pytest_run(tmp_path, f"--hosts={inv}", "--collect-only", "tests")
    assert rc == 0 and "Traceback" not in out
    assert "kubeaccept: hosts not tested" in out
    assert (f"{inv}: host prom1 is not tested: none of its groups (monitoring) gives it a role; "
            "put it in one of the groups kubeaccept knows (kube_control_plane, ") in out
    assert "prom1]" not in out  # no test for it


def test_separate_etcd_hosts_get_the_port_tests(tmp_path):
    """kubespray CI ubuntu24-ha-separate-etcd: the etcd hosts are checked for their ports
    (node_listening_ports, node_ports_reachable); the node-only checks stay with the nodes."""
    inv = ROOT / "selftests/unit/fixtures/inventories/kubespray-ci/ubuntu24-ha-separate-etcd/ci_inventory.yml"
    rc, out = pytest_run(tmp_path, f"--hosts={inv}", "--collect-only", "tests/test_network.py")
    assert rc == 0
    for etcd in ("ubuntu-2404-4", "ubuntu-2404-5", "ubuntu-2404-6"):
        assert f"node_listening_ports[{etcd}]" in out and f"node_ports_reachable[{etcd}]" in out
        assert f"node_firewall_input[{etcd}]" not in out
    assert "node_firewall_input[ubuntu-2404-3]" in out
    assert "hosts not tested" not in out


def test_a_hanging_command_is_cut_by_the_per_test_timeout_also_under_xdist(tmp_path):
    """The last line of defence: a fact command that hangs past --command-timeout (an `ss`
    that sleeps) fails each test after --timeout with pytest-timeout's signal method; xdist
    workers survive (the thread method would os._exit them) and nothing is left running."""
    shim = tmp_path / "bin"
    shim.mkdir()
    hang = f"sleep {900000 + os.getpid() % 99999}"  # this run's own: pgrep sees no other
    (shim / "ss").write_text(f"#!/bin/sh\nexec {hang}\n")
    (shim / "ss").chmod(0o755)
    inv = tmp_path / "hosts.ini"
    inv.write_text("[kube_control_plane]\nhere ansible_connection=local\n")
    env = {**os.environ, "PATH": f"{shim}:{os.environ['PATH']}"}
    for extra in ((), ("-n", "2")):
        start = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--hosts={inv}",
             "--command-timeout=600", "--timeout=2", "-k", "node_swap or node_ip_forward",
             f"--junitxml={tmp_path / 'j.xml'}", *extra],
            cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
        took = time.monotonic() - start
        out = proc.stdout + proc.stderr
        assert proc.returncode == 1 and "2 errors" in out, out[-2000:]
        assert out.count("Timeout (>2.0s) from pytest-timeout") >= 2, out[-2000:]
        assert "crashed" not in out and "replacing crashed worker" not in out
        assert took < 40, took
        left = subprocess.run(["pgrep", "-fx", hang], capture_output=True)
        assert left.returncode == 1, left.stdout



def _inventory(tmp_path, workers: int) -> Path:
    inv = tmp_path / "hosts.ini"
    names = "\n".join(f"w{i} ansible_host=192.0.2.{i % 250 + 1} ansible_port={1000 + i}"
                      for i in range(workers))
    inv.write_text(f"[kube_control_plane]\nhere ansible_connection=local\n[kube_node]\n"
                   f"{names}\n")
    return inv


def test_n_auto_runs_a_small_inventory_serially(tmp_path):
    """xdist's -n auto would start a worker per CPU; below 300 hosts (two workers' worth)
    kubeaccept's pytest_xdist_auto_num_workers picks none and the header says why."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
         f"--hosts={_inventory(tmp_path, 5)}", "-n", "auto", "--collect-only",
         f"--junitxml={tmp_path / 'j.xml'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "kubeaccept: -n auto: serial: 6 hosts" in proc.stdout


def test_n_auto_starts_a_worker_per_150_hosts_up_to_the_cpus(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from kubeaccept.suite import state, xdist

    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    for workers, expect in ((5, 0), (199, 0), (298, 0), (299, 2), (449, 3), (1000, 4)):
        config = SimpleNamespace(option=SimpleNamespace(hosts=str(_inventory(tmp_path,
                                                                               workers))),
                                 stash=pytest.Stash())
        assert xdist.pytest_xdist_auto_num_workers(config) == expect, workers
        assert config.stash[state.AUTO].startswith(
            "-n auto: serial: " if not expect else f"-n auto: {expect} workers for ")
    config = SimpleNamespace(option=SimpleNamespace(hosts=None), stash=pytest.Stash())
    assert xdist.pytest_xdist_auto_num_workers(config) is None  # not ours to choose


def test_heap_alive_at_collection_and_at_the_end_is_frozen_out_of_full_collections():
    """CPython's gc.collect() skips frozen objects: pytest's two collections at exit (and the
    gen-2 ones during the run) then do not walk the facts of hundreds of hosts."""
    import gc
    from types import SimpleNamespace

    from kubeaccept.suite import plugin

    closed = []
    state = SimpleNamespace(close=lambda: closed.append(1))
    config = SimpleNamespace(stash={plugin.STATE: state})
    gc.unfreeze()
    try:
        plugin.pytest_collection_finish(SimpleNamespace(config=SimpleNamespace(stash={})))
        assert gc.get_freeze_count() == 0  # not a kubeaccept run: left alone
        plugin.pytest_collection_finish(SimpleNamespace(config=config))
        frozen = gc.get_freeze_count()
        assert frozen > 1000
        garbage = [[] for _ in range(2000)]
        plugin.pytest_unconfigure(config)
        assert closed == [1] and gc.get_freeze_count() >= frozen + 2000
        del garbage
    finally:
        gc.unfreeze()


def test_run_order_runs_each_wave_of_gathered_hosts_before_the_next():
    """API tests first; then the hosts' tests a wave (GATHER_AT_ONCE hosts, in gathering
    order) at a time; control planes, and what reads their facts, in the last wave; the
    tests of the whole cluster last."""
    from types import SimpleNamespace

    from kubeaccept.model.hosts import Inventory
    from kubeaccept.model.roles import CONTROL_PLANE, WORKER
    from kubeaccept.model.settings import Settings
    from kubeaccept.remote.factstore import GATHER_AT_ONCE
    from kubeaccept.suite.order import run_order

    from .factory import host

    n = GATHER_AT_ONCE
    cps = [host(f"cp{i}", f"192.0.2.{i}", (CONTROL_PLANE,)) for i in (1, 2, 3)]
    workers = [host(f"w{i}", f"198.51.100.{i}", (WORKER,)) for i in range(1, 2 * n + 1)]
    inv = Inventory("t", (*cps, *workers))
    settings = Settings(probe_sources=1)

    def item(check, h=None, fixtures=()):
        params = {"node": h} if h else {}
        return SimpleNamespace(originalname=check, callspec=SimpleNamespace(params=params),
                               fixturenames=("verdict", *(["node"] if h else []), *fixtures),
                               name=f"{check}[{h.name if h else ''}]")
    items = [item("cluster_etcd", fixtures=("cluster",)), item("api_nodes_ready", fixtures=("api",))]
    for check in ("node_cluster_ca", "node_ports_reachable", "node_swap"):
        items += [item(check, h) for h in inv.hosts
                  if check != "node_cluster_ca" or h in cps]
    order = [i.name for i in run_order(items, list(inv.hosts), inv, settings)]
    assert order[0] == "api_nodes_ready[]" and order[-1] == "cluster_etcd[]"
    pos = {name: i for i, name in enumerate(order)}
    first_wave = [h.name for h in inv.hosts[3:n]]  # w1..: cps are moved to the last wave
    # within a wave, check-major (file order)
    assert pos["node_swap[w1]"] > pos[f"node_swap[{first_wave[-1]}]"] - len(first_wave)
    assert pos["node_swap[w1]"] < pos[f"node_swap[w{n}]"] < pos[f"node_swap[w{2 * n}]"]
    # w1's own tests come before the next wave's; its port test reads a control plane's
    # probe (10250 is probed from a control plane), so it waits for the last wave
    assert pos["node_swap[w1]"] < pos[f"node_swap[w{n - 2}]"]
    assert pos["node_ports_reachable[w1]"] > pos[f"node_swap[w{2 * n - 3}]"]
    for cp in ("cp1", "cp2", "cp3"):
        assert pos[f"node_swap[{cp}]"] > pos[f"node_swap[w{2 * n - 3}]"]
        assert pos[f"node_cluster_ca[{cp}]"] > pos[f"node_swap[w{2 * n - 3}]"]
    assert sorted(order) == sorted(i.name for i in items)


def test_every_check_that_reads_other_hosts_facts_declares_them(tmp_path):
    """A check reading ctx.peers without declaring `peers` would run before those hosts'
    facts are in and wait for them (stalling the run): each node check is run on a context
    whose peers mapping records what is read."""
    from kubeaccept.checks import NodeContext
    from kubeaccept.checks.all import load
    from kubeaccept.model.hosts import Inventory
    from kubeaccept.model.registry import Context
    from kubeaccept.model.roles import CONTROL_PLANE, ETCD, WORKER
    from kubeaccept.model.settings import Settings

    from .factory import facts, host

    hosts = (host("cp1", "192.0.2.1", (CONTROL_PLANE, ETCD)),
             host("cp2", "192.0.2.2", (CONTROL_PLANE, ETCD)),
             host("w1", "192.0.2.3", (WORKER,)), host("w2", "192.0.2.4", (WORKER,)))
    inv = Inventory("t", hosts)
    settings = Settings(probe_sources=1)

    class Recording(dict):
        def __init__(self):
            super().__init__()
            self.read = set()

        def get(self, name, default=None):
            self.read.add(name)
            return facts(name)

        def __getitem__(self, name):
            return self.get(name)

    checked = 0
    for check in load().values():
        if "node" not in check.needs or check.destructive:
            continue
        for h in hosts:
            if not set(h.roles) & set(check.roles):
                continue
            peers = Recording()
            ctx = NodeContext(h, facts(h.name), inv, settings, peers)
            with contextlib.suppress(Exception):  # only what it read matters here
                check.fn(Context(check.id, node=ctx))
            declared = set(check.peers(h, inv, settings)) if check.peers else set()
            assert peers.read <= declared | {h.name}, (check.id, h.name, peers.read)
            checked += 1
    assert checked > 20


def test_the_api_opening_hands_its_failure_to_the_tests():
    """Opened in a daemon thread as the run starts: whatever it raises is raised again in each
    test that uses the API, not lost with the thread."""
    from kubeaccept.model.hosts import Inventory
    from kubeaccept.model.settings import Settings
    from kubeaccept.session import Session

    session = Session.open(Inventory("x", ()), Settings())

    def broken():
        raise KeyError("no kubeconfig")
    session.open_api = broken
    session.start_api()
    with pytest.raises(KeyError, match="no kubeconfig"):
        session.api_result()
    session.close()
