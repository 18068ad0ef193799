"""API access without a cluster: credentials over SSH, state assembly, the dnsutils pod."""

from __future__ import annotations

import pytest

from kubeaccept.api import dnsutils, kubeapi
from kubeaccept.model.hosts import Host
from kubeaccept.model.settings import Settings
from kubeaccept.remote.transport import Result, Unreachable


class FakeConn:
    def __init__(self, result):
        self.result = result

    def run(self, line, timeout, stdin=b""):
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


class FakeStore:
    settings = Settings()

    def __init__(self, results):
        self.results = results

    def connection(self, host):
        return FakeConn(self.results[host.name])


def cp(name, user="root"):
    return Host(name=name, address=f"192.0.2.{len(name)}", user=user, roles=("control_plane",))


def test_admin_conf_from_the_first_control_plane_that_has_it():
    store = FakeStore({"cp1": Unreachable("connection refused"),
                       "cp2": Result(0, "apiVersion: v1\nkind: Config\n", "")})
    conf, source = kubeapi.admin_conf_over_ssh(store, [cp("cp1"), cp("cp2")])
    assert conf["kind"] == "Config" and source == "cp2:/etc/kubernetes/admin.conf"


def test_no_admin_conf_anywhere_says_each_host_and_what_to_do():
    store = FakeStore({"cp1": Result(1, "", "cat: /etc/kubernetes/admin.conf: No such file")})
    with pytest.raises(kubeapi.ApiUnavailable) as exc:
        kubeapi.admin_conf_over_ssh(store, [cp("cp1")])
    assert "--kubeconfig" in str(exc.value) and "cp1: cat:" in str(exc.value)


def test_a_broken_kubeconfig_is_one_line():
    with pytest.raises(kubeapi.ApiUnavailable, match="not a usable kubeconfig"):
        kubeapi.connect({"apiVersion": "v1"}, "x.conf", [], 1, 1)


def test_unanswered_servers_are_all_listed():
    conf = {"apiVersion": "v1", "kind": "Config", "current-context": "c",
            "clusters": [{"name": "k", "cluster": {"server": "https://127.0.0.1:9"}}],
            "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
            "users": [{"name": "u", "user": {"token": "t"}}]}
    with pytest.raises(kubeapi.ApiUnavailable) as exc:
        kubeapi.connect(conf, "x.conf", [cp("cp1")], 0.5, 0.5)
    assert "https://127.0.0.1:9" in str(exc.value) and "192.0.2.3:6443" in str(exc.value)


class FakeApi:
    endpoint = "https://vip:6443"

    def __init__(self, objects):
        self.objects = objects
        self.accepts = {}

    def items(self, path):
        return self.objects.get(path, {}).get("items", [])

    def get(self, path, missing_ok=False, accept="application/json"):
        self.accepts[path] = accept
        return self.objects.get(path)


def test_read_state_collects_lists_configmaps_and_only_the_secret_name():
    api = FakeApi({"/api/v1/nodes": {"items": [{"metadata": {"name": "w1"}}]},
                   "/api/v1/namespaces/kube-system/configmaps/kubeadm-config": {"data": {}},
                   "/api/v1/namespaces/kube-system/secrets/kubeadm-certs": {"data": {"k": "v"}}})
    state = kubeapi.read_state(api)
    assert [n["metadata"]["name"] for n in state.nodes] == ["w1"]
    assert set(state.configmaps) == {"kube-system/kubeadm-config"}
    assert state.kube_system_secrets == frozenset({"kubeadm-certs"})
    assert state.felix_configurations == [] and state.endpoint == "https://vip:6443"
    # the Secret is asked for as metadata only: its data never leaves the apiserver
    assert api.accepts["/api/v1/namespaces/kube-system/secrets/kubeadm-certs"].startswith(
        "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1")


def test_dnsutils_pod_is_the_documented_one_with_the_chosen_image():
    pod = dnsutils.pod_manifest("example/dnsutils:1")
    assert pod["metadata"]["name"] == "dnsutils" and pod["metadata"]["namespace"] == "default"
    assert pod["spec"]["containers"][0]["image"] == "example/dnsutils:1"
    assert pod["spec"]["containers"][0]["command"] == ["sleep", "infinity"]


def test_admin_conf_from_the_control_plane_this_worker_gathers_first():
    """The API opens as the run starts, before any login: each xdist worker reads admin.conf
    from the control plane it logs into first anyway (worker 2 of 2 starts at the middle)."""
    from kubeaccept.model.hosts import Inventory
    from kubeaccept.model.settings import Settings
    from kubeaccept.remote.factstore import FactStore

    hosts = (cp("cp1"), cp("cp2"), cp("cp3"),
             Host(name="w1", address="192.0.2.21", roles=("worker",)),
             Host(name="w2", address="192.0.2.22", roles=("worker",)))
    asked = []
    for worker, first in (((0, 2), "cp1"), ((1, 2), "cp3")):
        store = FactStore(Inventory("t", (*hosts, Host(name="lb1", address="192.0.2.30",
                                                      roles=("lb",)))), Settings(), worker=worker)
        store._shared = lambda h: {"error": "not gathered here"}
        store.prefetch(hosts)  # the run's hosts (the inventory's lb has no test selected)
        store.connection = lambda h: asked.append(h.name) or FakeConn(
            Result(0, "kind: Config\n", ""))
        conf, source = kubeapi.admin_conf_over_ssh(store, list(hosts[:3]))
        assert source == f"{first}:/etc/kubernetes/admin.conf"
        assert store.order[0] == first
    assert asked == ["cp1", "cp3"]
