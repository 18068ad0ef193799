"""The pytest plugin: `--hosts=INVENTORY` opens a session (kubeaccept.session), hosts are
parametrized by role, tests run in gathering order; the summary says what was not judged.
Its parts: options, fixtures, verdict, xdist, waive (loaded through pytest_plugins), order,
site (the user's testinfra tests, registered with --hosts)."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from kubeaccept.model.hosts import InventoryError, unassigned, unchecked_host_keys
from kubeaccept.model.roles import ALL_ROLES, NODE
from kubeaccept.session import Session, settings_for
from kubeaccept.suite import site, xdist
from kubeaccept.suite.options import LISTING, default_timeout
from kubeaccept.suite.order import run_order
from kubeaccept.suite.state import AUTO, SELECTED, STATE, node_param

pytest_plugins = ["kubeaccept.suite.options", "kubeaccept.suite.fixtures",
                  "kubeaccept.suite.verdict", "kubeaccept.suite.xdist", "kubeaccept.suite.waive"]


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "roles(*roles): node roles a check applies to "
                            f"({', '.join(ALL_ROLES)})")
    spec = getattr(config.option, "hosts", None)
    if not spec:
        return
    default_timeout(config)
    try:
        inventory = xdist.inventory_of(config, spec)
        settings = settings_for(config.option, inventory)
    except (InventoryError, ValueError) as exc:
        raise pytest.UsageError(str(exc)) from None
    shared, worker = xdist.sharing(config, inventory)
    broker = shared / xdist.BROKER if shared and xdist.is_worker(config) else None
    config.stash[STATE] = state = Session.open(inventory, settings, config.option.kubeconfig,
                                               shared, worker, broker=broker)
    if shared and not xdist.is_worker(config):
        state.store.serve(shared / xdist.BROKER)  # the workers' SSH logins, held here
    # the user's own testinfra tests on the same logins (its `host` replaces testinfra's)
    config.pluginmanager.register(site, "kubeaccept-site")
    if not xdist.is_worker(config) and not config.option.xmlpath and \
            LISTING not in config.stash:
        # one file per phase: the failover gate runs apart from the non-destructive suite
        name = "junit-failover.xml" if getattr(config.option, "failover", None) else "junit.xml"
        config.option.xmlpath = str(Path(config.rootpath) / "reports" / name)


def pytest_collection_finish(session: pytest.Session) -> None:
    # What is alive now (modules, ansible, the items) lives until the end: CPython's full
    # collections, every 25% growth of the heap, need not walk it again (measured at 200 hosts:
    # 0.7 s of gen-2 collections during the run).
    if session.config.stash.get(STATE, None):
        gc.freeze()


@pytest.hookimpl(tryfirst=True)  # before pytest's unraisableexception plugin
def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state:
        state.close()
        # pytest ends with two gc.collect() over the whole heap, to report unraisable
        # exceptions of __del__ in reference cycles (there are none of ours to report); the
        # process is about to exit and free it all anyway (measured at 200 hosts: 1.2 s).
        gc.freeze()


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    state = config.stash.get(STATE, None)
    if state is None:
        return None
    inv = state.inventory
    counts = ", ".join(f"{len(inv.by_role(r))} {r}" for r in ALL_ROLES if inv.by_role(r))
    return [f"kubeaccept: {inv.source}: {len(inv.hosts)} hosts ({counts})",
            *(f"kubeaccept: {line}" for line in unassigned(inv)),
            *(f"kubeaccept: {line}" for line in filter(None, [unchecked_host_keys(inv),
                                                               config.stash.get(AUTO, None)]))]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "node" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("roles")
    if marker is None or not marker.args:
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: a node test must declare "
                                "@pytest.mark.roles(...)")
    state = metafunc.config.stash.get(STATE, None)
    # Without --hosts there is nothing to test; pytest_collection_modifyitems says so once.
    hosts = state.inventory.by_role(*marker.args) if state else ()
    if state and not hosts:
        roles = "/".join(marker.args)
        # A cluster has control planes and nodes: none in the inventory is a mistake in it,
        # and the test fails saying so. A load balancer host is optional (kube-vip, or
        # kubespray's nginx proxy on every node): its tests skip, with the reason in -ra.
        marks = () if set(marker.args) & set(NODE) else pytest.mark.skip(
            reason=f"the inventory has no host in role {roles}")
        metafunc.parametrize("node", [pytest.param(None, id=f"no-{roles}-host", marks=marks)],
                             indirect=True)
        return
    metafunc.parametrize("node", hosts, ids=[str(h.name) for h in hosts], indirect=True)


def pytest_collection_modifyitems(session: pytest.Session, config, items) -> None:
    state = config.stash.get(STATE, None)
    if state is None:
        if LISTING not in config.stash and any(
                {"node", "cluster"} & set(getattr(item, "fixturenames", ())) for item in items):
            raise pytest.UsageError("kubeaccept's tests need --hosts=INVENTORY (an inventory "
                                    "file or directory, e.g. --hosts=inventory, or "
                                    "ssh://user@host specs)")
        return
    names = {host.name for item in items if (host := node_param(item))}
    selected = [h for h in state.inventory.hosts if h.name in names]
    config.stash[SELECTED] = selected
    items[:] = run_order(items, selected, state.inventory, state.settings)


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> None:
    # Gathering starts with the run, not with the first host's test; so does reading the
    # API (its credentials come from a control plane being gathered at the same time: 3 s
    # at 200 hosts that the first test needing it waited for).
    state = session.config.stash.get(STATE, None)
    if state is None or session.config.option.collectonly:
        return
    if selected := session.config.stash.get(SELECTED, None):
        state.store.prefetch(selected, wait=False)
    if any("kube" in getattr(item, "fixturenames", ()) for item in session.items):
        state.start_api()


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """Hosts not tested, and notes: information a passing check wants the operator to see
    (also under xdist)."""
    state = config.stash.get(STATE, None)
    if state is not None and (lines := unassigned(state.inventory)):
        terminalreporter.section("kubeaccept: hosts not tested")  # never skipped in silence
        for line in lines:
            terminalreporter.line(f"{state.inventory.source}: {line}")
    if state is not None and (line := unchecked_host_keys(state.inventory)):
        terminalreporter.section("kubeaccept: SSH host keys not verified")
        terminalreporter.line(line)
    notes, unreachable = [], {}
    for reports in terminalreporter.stats.values():
        for rep in reports:
            props = getattr(rep, "user_properties", ())
            if getattr(rep, "when", None) == "call":
                notes += [v for k, v in props if k == "note"]
            for k, v in props:
                if k == "unreachable":
                    host, _, cause = v.partition("\t")
                    unreachable.setdefault(host, cause)
    if unreachable:
        # apart from the failed checks: these hosts were not judged at all
        terminalreporter.section("kubeaccept: unreachable hosts (their tests ERROR)")
        for host, cause in sorted(unreachable.items()):
            terminalreporter.line(f"{host}: {cause}")
    if notes:
        terminalreporter.section("kubeaccept notes")
        for note in dict.fromkeys(notes):
            terminalreporter.line(note)
