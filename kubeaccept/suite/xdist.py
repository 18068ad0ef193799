"""pytest-xdist: how many workers -n auto runs, and what the controller hands each worker
(the inventory it read, the directory where gathered facts are shared)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from kubeaccept.inventory import load_hosts
from kubeaccept.model.hosts import Inventory, InventoryError
from kubeaccept.suite.state import AUTO, LOADED

# `-n auto`: one xdist worker per this many hosts, up to the CPU count; fewer than two
# workers' worth runs serial. A worker costs its start-up, its collection and its own parse
# of every host's facts (runner CPU at 200 hosts: 7.1 s serial, 10.2-13.2 s with -n 2), and
# the facts are gathered by threads in every process anyway: at 200 hosts serial measured
# 13.2-13.5 s against 13.5-17.1 s with -n 2 (README "Performance").
HOSTS_PER_WORKER = 150
# The controller's SSH broker in the shared directory: one login per host for all workers.
BROKER = "ssh.sock"


def auto_workers(hosts: int, cpus: int) -> int:
    """The xdist workers -n auto runs `hosts` with; 0: serial."""
    workers = min(cpus, hosts // HOSTS_PER_WORKER)
    return workers if workers >= 2 else 0


@pytest.hookimpl(optionalhook=True, tryfirst=True)  # before xdist's CPU count
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """-n auto / -n logical: pick the workers from the inventory's size, never slower than
    serial; the header says what was picked and why."""
    spec = getattr(config.option, "hosts", None)
    if not spec:
        return None  # not a kubeaccept run: xdist's own choice
    try:
        config.stash[LOADED] = load_hosts(spec, Path.cwd(),
                                          getattr(config.option, "role_groups", None))
    except (InventoryError, ValueError):
        return 0  # pytest_configure says what is wrong with it
    hosts = len(config.stash[LOADED].hosts)
    cpus = os.cpu_count() or 1
    workers = auto_workers(hosts, cpus)
    if not workers:
        config.stash[AUTO] = (f"-n auto: serial: {hosts} hosts (a worker per "
                              f"{HOSTS_PER_WORKER} hosts pays for its start-up)")
        return 0
    config.stash[AUTO] = (f"-n auto: {workers} workers for {hosts} hosts (one per "
                          f"{HOSTS_PER_WORKER} hosts, {cpus} CPUs)")
    return workers


def is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def workers_asked(config: pytest.Config) -> bool:
    return bool(getattr(config.option, "numprocesses", None) or getattr(config.option, "tx", None))


def inventory_of(config: pytest.Config, spec: str) -> Inventory:
    """A worker takes the controller's inventory instead of loading it with ansible again
    (0.8 s per process at 50 hosts); the controller reuses what -n auto read."""
    if is_worker(config) and "kubeaccept_inventory" in config.workerinput:
        return Inventory.from_json(config.workerinput["kubeaccept_inventory"])
    return config.stash.get(LOADED, None) or load_hosts(
        spec, Path.cwd(), getattr(config.option, "role_groups", None))


def sharing(config: pytest.Config, inventory: Inventory) -> tuple[Path | None, tuple[int, int]]:
    """(the per-run directory where processes share gathered facts, or None when serial;
    (this worker's number, the number of workers))."""
    if is_worker(config):
        wi = config.workerinput
        return (Path(wi["kubeaccept_facts_dir"]),
                (int(str(wi.get("workerid", "gw0")).removeprefix("gw") or 0),
                 int(wi.get("workercount", 1))))
    if config.pluginmanager.hasplugin("xdist") and workers_asked(config):
        shared = Path(tempfile.mkdtemp(prefix="kubeaccept-facts-"))
        config.pluginmanager.register(_XdistHooks(shared, inventory), "kubeaccept-xdist")
        return shared, (0, 1)
    return None, (0, 1)


class _XdistHooks:
    def __init__(self, shared: Path, inventory: Inventory):
        self.shared = shared
        self.inventory = inventory.to_json()

    def pytest_configure_node(self, node) -> None:
        node.workerinput["kubeaccept_facts_dir"] = str(self.shared)
        node.workerinput["kubeaccept_inventory"] = self.inventory

    def pytest_unconfigure(self) -> None:
        shutil.rmtree(self.shared, ignore_errors=True)
