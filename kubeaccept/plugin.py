"""The pytest plugin: `--hosts=INVENTORY`, host parametrization by role, facts, verdicts."""

from __future__ import annotations

import gc
import json
import os
import shutil
import tempfile
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import pytest

from . import apiprobe, kubeapi
from .apistate import ApiState
from .checks import ClusterContext, NodeContext, controlplane
from .checks.all import load
from .checks.certs import CA
from .facts import NodeFacts
from .factstore import GATHER_AT_ONCE, FactStore
from .findings import Finding
from .inventory import Inventory, InventoryError, load_hosts, unassigned, unchecked_host_keys
from .ports import probe_sources
from .redact import redact
from .registry import REGISTRY
from .report.results import finding_json
from .roles import ALL_ROLES, CONTROL_PLANE, GROUP_ROLES, NODE
from .settings import Settings, choose_cluster_dns, choose_vxlan_port, parse_version

STATE = pytest.StashKey["KubeAccept"]()
FINDINGS = pytest.StashKey[list]()  # what verdict() judged, for the reports
SNAPSHOT = pytest.StashKey[dict]()  # what a baseline check recorded (kubeaccept.report)


@dataclass
class KubeAccept:
    inventory: Inventory
    settings: Settings
    store: FactStore
    # (the API or why not, its state or why not), opened in the background as the run starts
    api: Future | None = None


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kubeaccept", "kubeaccept (with --hosts=INVENTORY)")
    group.addoption("--kubeaccept-list", action="store_true",
                    help="print every check (id, area, where it runs, title, what it reads) "
                    "and exit, connecting to nothing")
    group.addoption("--connect-timeout", type=float, default=10.0,
                    help="SSH connect/login timeout per host, seconds (default 10)")
    group.addoption("--command-timeout", type=float, default=60.0,
                    help="timeout of each remote command, seconds (default 60)")
    group.addoption("--probe-timeout", type=float, default=3.0,
                    help="timeout of each node-to-node port probe, seconds (default 3)")
    group.addoption("--probe-sources", default="auto", metavar="all|auto|N",
                    help="probe each node port from at most N of the hosts that use it "
                    "(picked by a stable hash, spread over them); all: from every one; "
                    "auto (default): all below 100 hosts, else 1")
    group.addoption("--pod-subnet", default=None,
                    help="pod network CIDR (default: the inventory's kube_pods_subnet, "
                    "else 10.244.0.0/16)")
    group.addoption("--service-subnet", default=None,
                    help="Service CIDR (default: the inventory's kube_service_addresses, "
                    "else 10.96.0.0/12)")
    group.addoption("--kube-version", default=None,
                    help="Kubernetes version (default: read from each node)")
    group.addoption("--vxlan-port", type=int, default=None,
                    help="overlay VXLAN UDP port (default: from kubespray's "
                    "kube_network_plugin: flannel/Canal/Cilium 8472, Calico 4789; else 8472)")
    group.addoption("--cert-expiry-days", type=float, default=30.0,
                    help="fail certificates expiring within this many days (default 30)")
    group.addoption("--kubeconfig", default=None,
                    help="kubeconfig for the API checks (default: read "
                    "/etc/kubernetes/admin.conf on a control plane over SSH)")
    group.addoption("--restart-threshold", type=int, default=10,
                    help="fail containers restarted more often than this (default 10)")
    group.addoption("--flap-window", type=float, default=60.0,
                    help="minutes of NodeReady/NodeNotReady events to count (default 60)")
    group.addoption("--flap-threshold", type=int, default=4,
                    help="that many Ready transitions in the window = flapping (default 4)")
    group.addoption("--dnsutils-image", default=Settings.dnsutils_image,
                    help="image of the dnsutils pod created for the DNS check if absent "
                    f"(default {Settings.dnsutils_image})")
    group.addoption("--cluster-dns", default=None,
                    help="cluster DNS Service address (default: kubespray's "
                    "skydns_server, the service subnet's 3rd address, with a kubespray "
                    "inventory; else the 10th address, e.g. 10.96.0.10)")


def pytest_cmdline_main(config: pytest.Config) -> int | None:
    if config.getoption("kubeaccept_list", False):
        from .catalog import listing

        print(listing())
        return 0
    return None


def _settings(config: pytest.Config, inventory: Inventory) -> Settings:
    cv = inventory.cluster_vars
    opt = config.option
    service_subnet = opt.service_subnet or cv.get("kube_service_addresses") or "10.96.0.0/12"
    vxlan_port, vxlan_source = choose_vxlan_port(cv, opt.vxlan_port)
    dns = choose_cluster_dns(cv, service_subnet, opt.cluster_dns)
    return Settings(
        connect_timeout=opt.connect_timeout,
        command_timeout=opt.command_timeout,
        probe_timeout=opt.probe_timeout,
        probe_sources=probe_sources(opt.probe_sources, len(inventory.hosts)),
        pod_subnet=opt.pod_subnet or cv.get("kube_pods_subnet") or "10.244.0.0/16",
        service_subnet=service_subnet,
        vxlan_port=vxlan_port,
        vxlan_source=vxlan_source,
        kube_version=parse_version(opt.kube_version or cv.get("kube_version")),
        cert_expiry_days=opt.cert_expiry_days,
        restart_threshold=opt.restart_threshold,
        flap_window_minutes=opt.flap_window,
        flap_threshold=opt.flap_threshold,
        dnsutils_image=opt.dnsutils_image,
        cluster_dns_ip=dns.ip,
        dns_source=dns.source,
        node_local_dns_ip=dns.node_local_ip,
        dns_service=dns.service,
    )


def _testinfra_spec(host) -> str:
    """The same host as a testinfra spec, so that testinfra's `host` fixture works too."""
    if host.connection == "local":
        return "local://"
    query = [f"timeout={10}"]
    if host.key_file:
        query.append(f"ssh_identity_file={host.key_file}")
    if host.become:
        query.append("sudo=true")
    return f"paramiko://{host.user}@{host.address}:{host.port}?{'&'.join(query)}"


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "roles(*roles): node roles a check applies to "
                            f"({', '.join(ALL_ROLES)})")
    is_worker = hasattr(config, "workerinput")
    spec = getattr(config.option, "hosts", None)
    if not spec:
        return
    _default_timeout(config)
    try:
        if is_worker and "kubeaccept_inventory" in config.workerinput:
            inventory = Inventory.from_json(config.workerinput["kubeaccept_inventory"])
        else:
            inventory = config.stash.get(LOADED, None) or load_hosts(spec, Path.cwd())
        settings = _settings(config, inventory)
    except (InventoryError, ValueError) as exc:
        raise pytest.UsageError(str(exc)) from None
    shared = None
    if is_worker:
        shared = Path(config.workerinput["kubeaccept_facts_dir"])
    elif config.pluginmanager.hasplugin("xdist") and _xdist_workers(config):
        shared = Path(tempfile.mkdtemp(prefix="kubeaccept-facts-"))
        config.pluginmanager.register(_XdistHooks(shared, inventory), "kubeaccept-xdist")
    worker = (0, 1)
    if is_worker:
        wi = config.workerinput
        worker = (int(str(wi.get("workerid", "gw0")).removeprefix("gw") or 0),
                  int(wi.get("workercount", 1)))
    store = FactStore(inventory, settings, shared, worker)
    config.stash[STATE] = KubeAccept(inventory, settings, store)
    config.option.hosts = ",".join(_testinfra_spec(h) for h in inventory.hosts)
    if not is_worker and not config.option.xmlpath:
        # one file per phase: the failover gate runs apart from the non-destructive suite
        name = "junit-failover.xml" if getattr(config.option, "failover", None) else "junit.xml"
        config.option.xmlpath = str(Path(config.rootpath) / "reports" / name)


# The last line of defence against a hang that the connect/command timeouts missed: a test
# (its fixtures included) that runs longer fails with pytest-timeout's Timeout.
DEFAULT_TEST_TIMEOUT = 300.0


def _default_timeout(config: pytest.Config) -> None:
    """pytest-timeout on by default, with the signal method: SIGALRM fails the one test and
    the run goes on. The thread method would dump stacks and os._exit() the process, i.e.
    kill a whole xdist worker and every test queued on it. --timeout / timeout_method (ini,
    PYTEST_TIMEOUT) given by the user win; --timeout=0 turns it off."""
    if not config.pluginmanager.hasplugin("timeout"):
        return
    if config.getvalue("timeout") is None and not os.environ.get("PYTEST_TIMEOUT") \
            and not config.getini("timeout"):
        config.option.timeout = DEFAULT_TEST_TIMEOUT
    if config.getvalue("timeout_method") is None and not config.getini("timeout_method"):
        config.option.timeout_method = "signal"


# `-n auto`: one xdist worker per this many hosts, up to the CPU count; fewer than two
# workers' worth runs serial. A worker costs its start-up, its collection and its own parse
# of every host's facts (runner CPU at 200 hosts: 7.1 s serial, 10.2-13.2 s with -n 2), and
# the facts are gathered by threads in every process anyway: at 200 hosts serial measured
# 13.2-13.5 s against 13.5-17.1 s with -n 2 (README "Performance").
HOSTS_PER_WORKER = 150
AUTO = pytest.StashKey[str]()
LOADED = pytest.StashKey[Inventory]()  # -n auto read it already: pytest_configure reuses it


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
        config.stash[LOADED] = load_hosts(spec, Path.cwd())
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


def _xdist_workers(config: pytest.Config) -> bool:
    return bool(getattr(config.option, "numprocesses", None) or getattr(config.option, "tx", None))


class _XdistHooks:
    def __init__(self, shared: Path, inventory: Inventory):
        self.shared = shared
        self.inventory = inventory.to_json()

    def pytest_configure_node(self, node) -> None:
        node.workerinput["kubeaccept_facts_dir"] = str(self.shared)
        node.workerinput["kubeaccept_inventory"] = self.inventory

    def pytest_unconfigure(self) -> None:
        shutil.rmtree(self.shared, ignore_errors=True)


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
        state.store.close()
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
        if any({"node", "cluster"} & set(getattr(item, "fixturenames", ())) for item in items):
            raise pytest.UsageError("kubeaccept's tests need --hosts=INVENTORY (an inventory "
                                    "file or directory, e.g. --hosts=inventory, or "
                                    "ssh://user@host specs)")
        return
    names = {host.name for item in items if (host := _node_param(item))}
    state.selected = [h for h in state.inventory.hosts if h.name in names]
    items[:] = run_order(items, state.selected, state.inventory, state.settings)


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> None:
    # Gathering starts with the run, not with the first host's test; so does reading the
    # API (its credentials come from a control plane being gathered at the same time: 3 s
    # at 200 hosts that the first test needing it waited for).
    state = session.config.stash.get(STATE, None)
    if state is None or session.config.option.collectonly:
        return
    if getattr(state, "selected", None):
        state.store.prefetch(state.selected, wait=False)
    if any("kube" in getattr(item, "fixturenames", ()) for item in session.items):
        kubeapi.load_client()
        state.api = Future()
        # a daemon: Ctrl-C does not wait for an API that is slow to answer
        threading.Thread(target=_opening, args=(session.config, state.api), daemon=True,
                         name="kubeaccept-api").start()


def _opening(config: pytest.Config, future: Future) -> None:
    try:
        future.set_result(_open_api(config))
    except BaseException as exc:  # noqa: BLE001 - handed to the tests that use the API
        future.set_exception(exc)


def _node_param(item):
    return getattr(item, "callspec", None) and item.callspec.params.get("node")


def run_order(items: list, hosts: list, inventory: Inventory, settings: Settings) -> list:
    """Tests in an order that keeps the runner busy while facts are being gathered: those
    that need no facts first (the API's), then the hosts' tests one wave of GATHER_AT_ONCE
    hosts at a time, in the order they are gathered (a test that reads other hosts' facts, in
    the wave of the last of them), checks in file order within a wave; the tests that need
    every host's facts (`cluster`) last. Check-major order made the runner wait for each host
    in turn on the first check and run all the others after the last gathering (3 s of 12 s
    at 200 hosts)."""
    # Control planes are gathered first but done last (etcdctl, and a TCP probe of each
    # node's kubelet: 5-6 s at 200 hosts where a worker takes 1-2 s): their tests, and those
    # that read their probes, go in the last wave.
    last = len(hosts) // GATHER_AT_ONCE + 1
    wave = {h.name: last - 1 if CONTROL_PLANE in h.roles else i // GATHER_AT_ONCE
            for i, h in enumerate(hosts)}
    checks = load()

    def key(pair):
        i, item = pair
        if host := _node_param(item):
            check = checks.get(getattr(item, "originalname", ""))
            names = [host.name, *(check.peers(host, inventory, settings)
                                  if check and check.peers else ())]
            return 1 + max(wave.get(n, last) for n in names), i
        return (last + 1 if "cluster" in getattr(item, "fixturenames", ()) else 0), i
    return [item for _, item in sorted(enumerate(items), key=key)]


@pytest.fixture
def node(request: pytest.FixtureRequest) -> NodeContext:
    """The host under test with its facts; errors out (no traceback) if it is unreachable."""
    state: KubeAccept = request.config.stash[STATE]
    host = request.param
    if host is None:
        roles = "/".join(request.node.get_closest_marker("roles").args)
        groups = ", ".join(g for g, r in GROUP_ROLES.items() if r in roles.split("/"))
        pytest.fail(f"{state.inventory.source} has no host in role {roles}: put the cluster's "
                    f"hosts in one of the groups {groups}", pytrace=False)
    # in the background: this host's tests run as soon as its own facts are in
    state.store.prefetch(getattr(state, "selected", [host]), wait=False)
    found = state.store.get(host)
    if isinstance(found, str):
        request.node.user_properties.append(("unreachable", f"{host.name}\t{found}"))
        pytest.fail(found, pytrace=False)
    return NodeContext(host, found, state.inventory, state.settings, state.store.peers(host))


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> ClusterContext:
    """Every host's facts, for checks that look at the cluster as a whole."""
    state: KubeAccept = request.config.stash[STATE]
    state.store.prefetch(state.inventory.hosts)
    facts = {h.name: state.store.get(h) for h in state.inventory.hosts}
    return ClusterContext(state.inventory, state.settings, facts)


@pytest.fixture(scope="session")
def apiserver_readyz(cluster: ClusterContext) -> dict:
    """Each apiserver's and the controlPlaneEndpoint's /readyz?verbose, verified against the
    cluster CA read off a control plane."""
    ca = next((f.certificates.get(CA) for f in cluster.facts.values()
               if isinstance(f, NodeFacts) and f.certificates.get(CA)), None)
    timeout = cluster.settings.connect_timeout
    return apiprobe.readyz_all(controlplane.readyz_urls(cluster), ca, timeout)


def _open_api(config: pytest.Config) -> tuple:
    """(the Kubernetes API or the one-line reason it cannot be used, its state or why not)."""
    state: KubeAccept = config.stash[STATE]
    cps = list(state.inventory.by_role(CONTROL_PLANE))
    try:
        if config.option.kubeconfig:
            conf, source = kubeapi.kubeconfig_file(Path(config.option.kubeconfig))
        else:
            conf, source = kubeapi.admin_conf_over_ssh(state.store, cps)
        api = kubeapi.connect(conf, source, cps, state.settings.connect_timeout,
                              state.settings.command_timeout)
    except kubeapi.ApiUnavailable as exc:
        return str(exc), str(exc)
    try:
        return api, kubeapi.read_state(api)
    except kubeapi.ApiUnavailable as exc:
        return api, str(exc)


def _api(config: pytest.Config) -> tuple:
    state: KubeAccept = config.stash[STATE]
    if state.api is None:  # a run that did not start it (the failover gate's phase)
        state.api = Future()
        state.api.set_result(_open_api(config))
    return state.api.result()


@pytest.fixture(scope="session")
def kube(request: pytest.FixtureRequest):
    """The Kubernetes API, or the one-line reason it cannot be used."""
    api, _ = _api(request.config)
    yield api
    if not isinstance(api, str):
        api.close()


@pytest.fixture(scope="session")
def api_state(request: pytest.FixtureRequest, kube) -> ApiState | str:
    return _api(request.config)[1]


@pytest.fixture
def api(request: pytest.FixtureRequest, api_state, kube) -> ApiState:
    """The API's view of the cluster; the test fails (no traceback) if there is none."""
    if isinstance(api_state, str):
        pytest.fail(f"cannot read the Kubernetes API: {api_state}", pytrace=False)
    if getattr(kube, "passed_over", ()):
        # read through a control plane's own apiserver: say that the kubeconfig's is dead
        request.node.user_properties.append((
            "note", f"Kubernetes API read through {kube.endpoint}; {kube.source}'s server "
            f"did not answer /readyz ({'; '.join(kube.passed_over)})"))
    return api_state


@pytest.fixture(scope="session")
def dns_lookup(request: pytest.FixtureRequest, kube):
    """nslookup kubernetes.default from the dnsutils pod (see kubeaccept.dnsutils)."""
    from . import dnsutils
    from .checks.dns import DnsLookup

    if isinstance(kube, str):
        yield f"cannot use the Kubernetes API: {kube}"
        return
    settings = request.config.stash[STATE].settings
    pod, created, problem = None, False, ""
    try:
        pod, created, problem = dnsutils.ensure_pod(kube, settings.dnsutils_image,
                                                    settings.command_timeout)
        if problem:
            yield problem
        else:
            output = dnsutils.exec_lookup(kube)
            yield DnsLookup(f"{dnsutils.NAMESPACE}/{dnsutils.NAME}",
                            pod["spec"].get("nodeName", ""),
                            "kubectl exec dnsutils -- " + " ".join(dnsutils.COMMAND),
                            output, created)
    except Exception as exc:  # noqa: BLE001 - exec errors come in many types; say which
        node = (pod or {}).get("spec", {}).get("nodeName") or "?"
        yield (f"exec in {dnsutils.NAMESPACE}/{dnsutils.NAME} (on node {node}) failed: "
               f"{kubeapi._short(exc)}")
    finally:
        if created:
            dnsutils.delete_pod(kube)


@pytest.fixture(scope="session")
def calico_rpf_exception(api_state) -> str | None:
    """Evidence that Calico is told to accept loose rp_filter, or None (also without API)."""
    from .checks.sysctl import calico_ignores_loose_rpf

    return None if isinstance(api_state, str) else calico_ignores_loose_rpf(api_state)


@pytest.fixture
def verdict(request: pytest.FixtureRequest):
    """verdict(findings): record them on the test and fail with an actionable message."""

    def judge(findings: list[Finding]) -> None:
        item = request.node
        item.stash[FINDINGS] = findings
        if not findings:
            pytest.fail("the check produced no findings", pytrace=False)
        failed = [f for f in findings if not f.ok]
        item.user_properties.append(("check_id", str(findings[0].check_id)))
        if host := _node_param(item):
            item.user_properties.append(("host", str(host.name)))
        fixes = sorted({f.fix for f in failed if f.fix})
        if fixes:
            item.user_properties.append(("remediation", " | ".join(fixes)))
        evidence = [e for f in (failed or findings) for e in f.evidence]
        item.user_properties.append(("evidence", "\n".join(evidence)))
        notes = [f"{f.subject}: {f.note}" for f in findings if f.note]
        if notes:
            item.user_properties.append(("note", "\n".join(notes)))
        unjudged = [f for f in failed if f.unjudged]
        for f in unjudged:
            if f.unjudged == "unreachable":
                host, _, cause = f.observed.partition(": ")
                item.user_properties.append(("unreachable", f"{host}\t{cause}"))
        if failed and len(unjudged) == len(failed):
            # Only hosts that could not be asked (or lack the command to ask with): an error,
            # as for an unreachable host's own tests.
            raise Unjudged("\n".join(f"{f.subject}: not checked: {f.observed}"
                                      for f in unjudged), pytrace=False)
        if failed:
            pytest.fail(failure_message(findings, failed), pytrace=False)

    return judge


class Unjudged(pytest.fail.Exception):
    """A check that could not judge anything it failed on: its hosts were unreachable or lack
    a command it needs."""


# shown as "Unreachable: …" in reports, as pytest shows its own outcomes ("Failed: …")
Unjudged.__name__ = Unjudged.__qualname__ = "Unreachable"
Unjudged.__module__ = "builtins"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if call.when == "call" and call.excinfo is not None and \
            call.excinfo.errisinstance(Unjudged):
        # reported like the failing `node` fixture of an unreachable host: ERROR, not FAILED
        report.when = "setup"
    _redact_report(report)
    # one JSON string: xdist's serializer walks nested objects in Python, 0.35 ms per report
    report.kubeaccept = json.dumps(_record(item, call.when))
    return report


def _redacted(value):
    """Every string inside masked (a baseline snapshot is written to a file)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value


def _record(item: pytest.Item, when: str) -> dict:
    """What the reports need of a test, JSON only (it crosses from xdist workers)."""
    check = getattr(item, "originalname", item.name)
    params = getattr(getattr(item, "callspec", None), "params", {})
    node = params.get("node")
    host = node.name if node is not None else params.get("failover_target")
    found = item.stash.get(FINDINGS, []) if when == "call" else []
    return {"test": item.name, "check": check, "host": host,
            "area": REGISTRY[check].area if check in REGISTRY else "other",
            "snapshot": _redacted(item.stash.get(SNAPSHOT, None)) if when == "call" else None,
            "findings": [_redacted(finding_json(f)) for f in found]}


def _redact_report(report: pytest.TestReport) -> None:
    """Every text of the report (the one object JUnit, HTML, the terminal and xdist's
    controller get) with secrets masked."""
    if report.longrepr is not None:
        text = str(report.longrepr)
        masked = redact(text)
        if masked != text:
            report.longrepr = masked
    report.sections = [(title, redact(body)) for title, body in report.sections]
    report.user_properties = [(k, redact(v) if isinstance(v, str) else v)
                              for k, v in report.user_properties]


def failure_message(findings: list[Finding], failed: list[Finding]) -> str:
    """Observed vs expected per failing subject, then each distinct why/fix once."""
    lines = [f"{findings[0].check_id}: {len(failed)} of {len(findings)} finding(s) failed"]
    groups: dict[tuple[str, str, bool], list[Finding]] = {}
    for f in failed:
        groups.setdefault((f.why, f.fix, f.unjudged), []).append(f)
    for (why, fix, _), group in groups.items():
        if group[0].unjudged:
            lines += [f"- {f.subject}: not checked: {f.observed}" for f in group]
            continue
        for f in group:
            lines.append(f"- {f.subject}: {f.observed} (expected {f.expected})")
        if why:
            lines.append(f"  why it matters: {why}")
        if fix:
            lines.append(f"  fix: {fix}")
        evidence = [e for f in group for e in f.evidence]
        lines.extend(f"  evidence: {e}" for e in dict.fromkeys(evidence))
    return "\n".join(lines)


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
