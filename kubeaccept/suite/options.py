"""The suite's command-line options, --kubeaccept-list, and pytest-timeout's defaults."""

from __future__ import annotations

import os

import pytest

from kubeaccept.model.settings import Settings


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kubeaccept", "kubeaccept (with --hosts=INVENTORY)")
    group.addoption("--kubeaccept-list", action="store_true",
                    help="print every check (id, area, where it runs, title, what it reads) "
                    "and exit, connecting to nothing")
    group.addoption("--role-groups", default=None, metavar="ROLE=GROUP[,GROUP] ...",
                    help="map your inventory's groups to roles, e.g. \"control_plane=k8smaster "
                    "worker=k8snodes\" (roles: control_plane, worker, etcd, lb); hosts may also "
                    "say kubernetes_role (control_plane/master/node) or kubeaccept_roles")
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


LISTING = pytest.StashKey[list]()  # --kubeaccept-list: the lines to print after collection


def pytest_cmdline_main(config: pytest.Config) -> int | None:
    """--kubeaccept-list: collect only (nothing is connected to), then list the registry's
    checks, the site checks collected and the --waivers entries instead of the items."""
    if config.getoption("kubeaccept_list", False):
        config.option.collectonly = True
        config.stash[LISTING] = []
    return None


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list) -> None:
    if LISTING not in config.stash:
        return
    from kubeaccept.suite.catalog import listing, site_listing, waiver_listing

    config.stash[LISTING] = [listing(), *site_listing(items), *waiver_listing(config)]
    items.clear()


def pytest_report_collectionfinish(config: pytest.Config) -> list[str] | None:
    return config.stash.get(LISTING, None)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    if LISTING in session.config.stash and session.exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        session.exitstatus = pytest.ExitCode.OK


# The last line of defence against a hang that the connect/command timeouts missed: a test
# (its fixtures included) that runs longer fails with pytest-timeout's Timeout.
DEFAULT_TEST_TIMEOUT = 300.0


def default_timeout(config: pytest.Config) -> None:
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
