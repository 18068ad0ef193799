"""Site checks: the operator's own testinfra tests (`def test_x(host)`) run on the inventory's
hosts through the suite's own SSH logins (kubeaccept.remote), with the inventory's key,
known_hosts, user, port, jump host and become; ids are the inventory's host names
(`test_x[w1]`), `@pytest.mark.roles(...)` picks hosts by role. A cluster site test asks for
`kube`, the API client the API checks use. Their commands are the user's, not on kubeaccept's
allow-list: each test's report lists what it ran.

Registered in pytest_configure when --hosts is given, i.e. after testinfra's own plugin: its
`host` fixture then replaces testinfra's (the fixture registered last wins)."""

from __future__ import annotations

import shlex

import pytest
import testinfra.backend.base
import testinfra.host

from kubeaccept.model.findings import Finding
from kubeaccept.model.hosts import Host, as_root
from kubeaccept.model.registry import REGISTRY
from kubeaccept.remote.transport import CommandTimeout, Unreachable
from kubeaccept.suite.state import FINDINGS, STATE, site_host
from kubeaccept.suite.verdict import Unjudged

RAN = pytest.StashKey[list]()  # the commands a site test ran, in order


class SuiteBackend(testinfra.backend.base.BaseBackend):
    """testinfra's backend on the run's fact store: its connection to the host (one login for
    the run, shared with the facts command and, under xdist, with every worker)."""

    NAME = "kubeaccept"

    def __init__(self, host: Host, store):
        super().__init__(host.address)
        self.inventory_host = host
        self.store = store
        self.ran: list[str] = []  # every command, for the test that ran it

    def get_pytest_id(self) -> str:
        return self.inventory_host.name

    def run(self, command: str, *args: str, **kwargs) -> testinfra.backend.base.CommandResult:
        host = self.inventory_host
        line = self.quote(command, *args)
        self.ran.append(line)
        # the whole line as root (a pipe too), as testinfra's own sudo does
        remote, stdin = as_root(host, "/bin/sh -c " + shlex.quote(line))
        if not remote.startswith("sudo "):  # no become, or root already
            remote = line
        try:
            conn = self.store.connection(host)
            result = conn.run(remote, self.store.settings.command_timeout, stdin, raw=True)
        except Unreachable as exc:
            raise Unjudged(f"{host.name}: unreachable: {exc}", pytrace=False) from None
        except CommandTimeout as exc:
            pytest.fail(f"{host.name}: {line!r}: {exc}", pytrace=False)
        return self.result(result.exit_status, self.encode(line), result.stdout, result.stderr)


def is_site(item: pytest.Item) -> bool:
    """A test of the user's own, not one of the registry's checks."""
    return getattr(item, "originalname", item.name) not in REGISTRY


HOSTS = pytest.StashKey[dict]()  # inventory host name -> its testinfra Host, per process


@pytest.fixture(scope="module")
def host(request: pytest.FixtureRequest) -> testinfra.host.Host:
    """testinfra's Host for the inventory host under test, on the suite's connection."""
    target = request.param
    if target is None:
        pytest.skip("the inventory has no host in the roles this test is marked with")
    hosts = request.config.stash.setdefault(HOSTS, {})
    if target.name not in hosts:
        hosts[target.name] = testinfra.host.Host(
            SuiteBackend(target, request.config.stash[STATE].store))
    return hosts[target.name]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "host" not in metafunc.fixturenames:
        return
    inventory = metafunc.config.stash[STATE].inventory
    marker = metafunc.definition.get_closest_marker("roles")
    hosts = (inventory.by_role(*marker.args) if marker and marker.args
             else [h for h in inventory.hosts if h.roles])
    if not hosts:
        metafunc.parametrize("host", [None], ids=["no-host"], indirect=True, scope="module")
        return
    metafunc.parametrize("host", hosts, ids=[h.name for h in hosts], indirect=True,
                         scope="module")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    if not is_site(item):
        return (yield)
    kube = getattr(item, "funcargs", {}).get("kube")
    if isinstance(kube, str):
        pytest.fail(f"cannot use the Kubernetes API: {kube}", pytrace=False)
    target = site_host(item)
    known = item.config.stash.get(HOSTS, {})
    backend = known[target.name].backend if target and target.name in known else None
    start = len(backend.ran) if backend else 0
    try:
        return (yield)
    finally:
        if backend is not None:
            item.stash[RAN] = backend.ran[start:]


# inside verdict's wrapper (trylast: called after it), so that its record carries these
@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if call.when == "call" and is_site(item) and not report.skipped:
        found = site_finding(item, report)
        item.stash[FINDINGS] = [found]
        target = site_host(item)
        report.user_properties += [("check_id", found.check_id),
                                   *([("host", target.name)] if target else []),
                                   ("ran", "\n".join(item.stash.get(RAN, [])))]
    return report


def site_finding(item: pytest.Item, report: pytest.TestReport) -> Finding:
    """A site test's outcome as a finding, so that it reads like a built-in check's in the
    matrix, JUnit and findings.json; its evidence the commands it ran."""
    target = site_host(item)
    subject = target.name if target else "cluster"
    ran = item.stash.get(RAN, [])
    evidence = tuple(f"ran on {subject}: {c}" for c in ran)
    doc = (item.function.__doc__ or "").strip().splitlines() if hasattr(item, "function") \
        else []
    expected = doc[0] if doc else "the site test passes"
    if report.passed:
        return Finding(subject, True, "passed", expected, evidence=evidence,
                       check_id=item.originalname)
    text = report.longreprtext.strip().splitlines()
    observed = next((ln.removeprefix("E").strip() for ln in text if ln.startswith("E ")),
                    text[-1] if text else "failed")
    return Finding(subject, False, observed, expected, evidence=evidence,
                   check_id=item.originalname)
