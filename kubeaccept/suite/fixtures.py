"""The fixtures behind the registry's needs (kubeaccept.model.registry.NEEDS): each one thin,
over the run's session."""

from __future__ import annotations

import pytest

from kubeaccept.api import dnsutils, kubeapi
from kubeaccept.checks import ClusterContext, NodeContext
from kubeaccept.checks.cni import ClusterCni, cluster_view
from kubeaccept.checks.dns import DnsLookup
from kubeaccept.checks.sysctl import calico_ignores_loose_rpf
from kubeaccept.model.apistate import ApiState
from kubeaccept.model.roles import GROUP_ROLES
from kubeaccept.session import Session
from kubeaccept.suite.state import SELECTED, SNAPSHOT, STATE

PREVIOUS = pytest.StashKey[dict]()  # the --compare-baseline file's content


@pytest.fixture
def node(request: pytest.FixtureRequest) -> NodeContext:
    """The host under test with its facts; errors out (no traceback) if it is unreachable."""
    state: Session = request.config.stash[STATE]
    host = request.param
    if host is None:
        roles = "/".join(request.node.get_closest_marker("roles").args)
        groups = ", ".join(g for g, r in GROUP_ROLES.items() if r in roles.split("/"))
        pytest.fail(f"{state.inventory.source} has no host in role {roles}: put the cluster's "
                    f"hosts in one of the groups {groups}, or map yours: --role-groups "
                    f"{roles.split('/')[0]}=YOUR_GROUP (or kubernetes_role / kubeaccept_roles "
                    "in the host variables)", pytrace=False)
    # in the background: this host's tests run as soon as its own facts are in
    state.store.prefetch(request.config.stash.get(SELECTED, None) or [host], wait=False)
    found = state.store.get(host)
    if isinstance(found, str):
        request.node.user_properties.append(("unreachable", f"{host.name}\t{found}"))
        pytest.fail(found, pytrace=False)
    return NodeContext(host, found, state.inventory, state.settings, state.store.peers(host))


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> ClusterContext:
    """Every host's facts, for checks that look at the cluster as a whole."""
    return request.config.stash[STATE].cluster()


@pytest.fixture(scope="session")
def apiserver_readyz(request: pytest.FixtureRequest, cluster: ClusterContext) -> dict:
    """Each apiserver's and the controlPlaneEndpoint's /readyz?verbose, verified against the
    cluster CA read off a control plane."""
    return request.config.stash[STATE].readyz(cluster)


@pytest.fixture(scope="session")
def kube(request: pytest.FixtureRequest):
    """The Kubernetes API, or the one-line reason it cannot be used."""
    api, _ = request.config.stash[STATE].api_result()
    yield api
    if not isinstance(api, str):
        api.close()


@pytest.fixture(scope="session")
def api_state(request: pytest.FixtureRequest, kube) -> ApiState | str:
    return request.config.stash[STATE].api_result()[1]


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
    """nslookup kubernetes.default from the dnsutils pod (see kubeaccept.api.dnsutils)."""
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
def cluster_cni(api_state) -> ClusterCni:
    """The CNI's DaemonSets, their pods' nodes and Calico's IgnoreLooseRPF, from the API (or
    why it could not be read: the checks then judge from the node alone)."""
    return cluster_view(api_state, calico_ignores_loose_rpf)


class BaselineRecorder:
    """ctx.baseline of the baseline checks: the saved baseline (or None), and where the
    check's snapshot goes (the test's report carries it to the controller)."""

    def __init__(self, previous: dict | None, item: pytest.Item):
        self.previous = previous
        self.item = item

    def record(self, part: str, where: str, snapshot: dict, changes: list[dict]) -> None:
        self.item.stash[SNAPSHOT] = {"part": part, "where": where, "snapshot": snapshot,
                                     "changes": changes}


@pytest.fixture
def kubeaccept_baseline(request: pytest.FixtureRequest) -> BaselineRecorder:
    return BaselineRecorder(request.config.stash.get(PREVIOUS, None), request.node)
