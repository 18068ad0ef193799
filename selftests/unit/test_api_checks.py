"""Cluster checks over API objects as the Kubernetes API returns them (field reports 01-03)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kubeaccept.checks import dns, nodes, pods, sysctl
from kubeaccept.model.apistate import ApiState
from kubeaccept.model.settings import Settings

from .factory import CP, cni_cluster, context, dns_node, facts, host, judge, on_cluster

NOW = datetime(2026, 11, 23, 22, 0, 0, tzinfo=UTC)
SETTINGS = Settings()
NODES = [("cp1", "192.0.2.11"), ("cp2", "192.0.2.12"), ("cp3", "192.0.2.13"),
         ("w1", "192.0.2.21"), ("w2", "192.0.2.22")]
PLEG = ("PLEG is not healthy: pleg was last seen active 3m11.707539232s ago; "
        "threshold is 3m0s")
OCI = ('OCI runtime create failed: container_linux.go:348: starting container process caused '
       '"process_linux.go:402: container init caused \\"\\"": unknown')
DEADLINE = ("error determining status: rpc error: code = DeadlineExceeded desc = context "
            "deadline exceeded")
CLUSTER_CONFIGURATION = """\
apiServer: {}
apiVersion: kubeadm.k8s.io/v1beta3
clusterName: kubernetes
controlPlaneEndpoint: 192.0.2.100:6443
kind: ClusterConfiguration
kubernetesVersion: v1.30.4
networking:
  dnsDomain: cluster.local
  podSubnet: 10.244.0.0/16
  serviceSubnet: 10.96.0.0/12
"""
NET_CONF = '{\n  "Network": "10.244.0.0/16",\n  "Backend": {\n    "Type": "vxlan"\n  }\n}\n'


def ts(ago: timedelta = timedelta(0)) -> str:
    return (NOW - ago).strftime("%Y-%m-%dT%H:%M:%SZ")


def ready(status="True", reason="KubeletReady", message="kubelet is posting ready status",
          since=timedelta(days=3)) -> dict:
    return {"type": "Ready", "status": status, "reason": reason, "message": message,
            "lastHeartbeatTime": ts(), "lastTransitionTime": ts(since)}


def node(name: str, ip: str, i: int, cond: dict | None = None) -> dict:
    return {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "spec": {"podCIDR": f"10.244.{i}.0/24", "podCIDRs": [f"10.244.{i}.0/24"]},
            "status": {"conditions": [
                {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory"},
                cond or ready()],
                "addresses": [{"type": "InternalIP", "address": ip},
                              {"type": "Hostname", "address": name}]}}


def container(name: str, restarts: int = 0, waiting: str | None = None,
              last: dict | None = None, image: str = "img:1") -> dict:
    state = {"waiting": {"reason": waiting, "message": "back-off 5m0s restarting failed"}} \
        if waiting else {"running": {"startedAt": ts(timedelta(days=2))}}
    return {"name": name, "image": image, "ready": waiting is None, "restartCount": restarts,
            "state": state, "lastState": {"terminated": last} if last else {}}


def pod(ns: str, name: str, node_name: str | None, containers: list[dict], owner=None,
        labels=None, phase="Running") -> dict:
    refs = [{"apiVersion": "apps/v1", "kind": owner[0], "name": owner[1], "controller": True}] \
        if owner else []
    is_ready = phase == "Running" and all(c["ready"] for c in containers)
    return {"metadata": {"namespace": ns, "name": name, "labels": labels or {},
                         "ownerReferences": refs},
            "spec": {"nodeName": node_name} if node_name else {},
            "status": {"phase": phase, "containerStatuses": containers,
                       "conditions": [{"type": "Ready",
                                       "status": "True" if is_ready else "False"}]}}


def daemonset(ns: str, name: str, desired: int = 5, ready_n: int | None = None,
              env: list[dict] | None = None) -> dict:
    n = desired if ready_n is None else ready_n
    return {"metadata": {"namespace": ns, "name": name},
            "spec": {"template": {"spec": {"containers": [{"name": name, "env": env or []}]}}},
            "status": {"desiredNumberScheduled": desired, "currentNumberScheduled": desired,
                       "numberReady": n, "numberMisscheduled": 0,
                       "updatedNumberScheduled": desired, "numberAvailable": n}}


def service(ns: str, name: str, ip: str) -> dict:
    return {"metadata": {"namespace": ns, "name": name}, "spec": {"clusterIP": ip}}


def event(kind: str, ns: str, name: str, reason: str, message: str, count: int,
          first: timedelta, last: timedelta, type_: str = "Normal") -> dict:
    return {"metadata": {"namespace": ns, "name": f"{name}.17a"},
            "involvedObject": {"kind": kind, "namespace": ns, "name": name},
            "reason": reason, "message": message, "type": type_, "count": count,
            "firstTimestamp": ts(first), "lastTimestamp": ts(last)}


def healthy_pods() -> list[dict]:
    out = []
    for name, _ in NODES:
        out.append(pod("kube-flannel", f"kube-flannel-ds-{name}x", name,
                       [container("kube-flannel")], ("DaemonSet", "kube-flannel-ds")))
        out.append(pod("kube-system", f"kube-proxy-{name}x", name, [container("kube-proxy")],
                       ("DaemonSet", "kube-proxy")))
        if name.startswith("cp"):
            out.append(pod("kube-system", f"etcd-{name}", name, [container("etcd", int(name == "cp2"))],
                           ("Node", name)))
    for suffix, where, restarts in (("abcde", "cp1", 2), ("fghij", "cp2", 0)):
        out.append(pod("kube-system", f"coredns-5d78c9869d-{suffix}", where,
                       [container("coredns", restarts)], ("ReplicaSet", "coredns-5d78c9869d"),
                       {"k8s-app": "kube-dns", "pod-template-hash": "5d78c9869d"}))
    out.append(pod("default", "backup-28871234-q7x", "w1", [container("backup")],
                   ("Job", "backup-28871234"), phase="Succeeded"))
    return out


def healthy(**changes) -> ApiState:
    state = dict(
        endpoint="https://192.0.2.100:6443",
        nodes=[node(n, ip, i) for i, (n, ip) in enumerate(NODES)],
        pods=healthy_pods(), events=[],
        daemonsets=[daemonset("kube-flannel", "kube-flannel-ds"),
                    daemonset("kube-system", "kube-proxy")],
        services=[service("default", "kubernetes", "10.96.0.1"),
                  service("kube-system", "kube-dns", "10.96.0.10")],
        configmaps={"kube-system/kubeadm-config": {"data": {
                        "ClusterConfiguration": CLUSTER_CONFIGURATION}},
                    "kube-flannel/kube-flannel-cfg": {"data": {"net-conf.json": NET_CONF}}},
        kube_system_secrets=frozenset(), now=NOW)
    state.update(changes)
    return ApiState(**state)


def failed(findings):
    return [f for f in findings if not f.ok]


# --- field report 02: the fluentd DaemonSet on a PLEG-unhealthy, flapping node ------------
FLUENTD = pod("kube-system", "fluentd-7x2kq", "w2", [container(
    "fluentd", 1234, "CrashLoopBackOff",
    {"reason": "ContainerCannotRun", "exitCode": 128, "message": OCI})],
    ("DaemonSet", "fluentd"), {"k8s-app": "fluentd-logging"})
REPORT02_EVENTS = [
    event("Pod", "kube-system", "fluentd-7x2kq", "FailedSync", DEADLINE, 123314,
          timedelta(days=23, minutes=1), timedelta(minutes=1), "Warning"),
    event("Pod", "kube-system", "fluentd-7x2kq", "BackOff",
          "Back-off restarting failed container", 2950, timedelta(days=28),
          timedelta(minutes=4), "Warning"),
    event("Pod", "kube-system", "fluentd-other", "FailedSync", "unrelated", 3,
          timedelta(hours=1), timedelta(minutes=1), "Warning"),
    event("Node", "default", "w2", "NodeReady", "Node w2 status is now: NodeReady", 8929,
          timedelta(days=45, minutes=2), timedelta(minutes=2)),
    event("Node", "default", "w2", "NodeNotReady", "Node w2 status is now: NodeNotReady", 8932,
          timedelta(days=24, minutes=3), timedelta(minutes=3)),
]


def report02() -> ApiState:
    state = healthy()
    state.nodes[4]["status"]["conditions"][1] = ready(
        "False", "KubeletNotReady", PLEG, timedelta(minutes=4))
    return healthy(nodes=state.nodes, pods=[*state.pods, FLUENTD], events=REPORT02_EVENTS,
                   daemonsets=[*state.daemonsets, daemonset("kube-system", "fluentd", 5, 4)])


# --- nodes ----------------------------------------------------------------------------------
def test_nodes_ready_healthy_cluster():
    out = judge("cluster_nodes_ready", api=healthy(), cluster=on_cluster(nodes=NODES))
    assert not failed(out)
    assert [f.subject for f in out] == ["cp1", "cp2", "cp3", "w1", "w2"]
    assert out[0].observed.startswith("Ready=True (KubeletReady)") and "for 3d" in out[0].observed


def test_nodes_ready_pleg_explained():
    out = failed(judge("cluster_nodes_ready", api=report02(), cluster=on_cluster(nodes=NODES)))
    assert [f.subject for f in out] == ["w2"]
    assert out[0].observed.startswith(f"Ready=False (KubeletNotReady): {PLEG}; for 4m")
    assert "containernetworking/cni#567" in out[0].why and "PLEG" in out[0].why
    assert "journalctl -u kubelet | grep -i pleg" in out[0].fix and "on w2" in out[0].fix
    assert '"reason": "KubeletNotReady"' in out[0].evidence[0]


def test_nodes_ready_unknown_and_cni_not_ready():
    state = healthy()
    state.nodes[0]["status"]["conditions"][1] = ready(
        "Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.")
    state.nodes[3]["status"]["conditions"][1] = ready(
        "False", "KubeletNotReady", "container runtime network not ready: NetworkReady=false "
        "reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not "
        "initialized")
    out = {f.subject: f for f in failed(judge("cluster_nodes_ready", api=state, cluster=on_cluster(nodes=NODES)))}
    assert set(out) == {"cp1", "w1"}
    assert "kubelet is down" in out["cp1"].why and "systemctl status kubelet" in out["cp1"].fix
    assert "/etc/cni/net.d" in out["w1"].fix and "PLEG" not in out["w1"].why


def test_nodes_ready_inventory_host_without_node():
    state = healthy()
    state.nodes[3]["metadata"]["name"] = "worker-1.example"  # matched by its InternalIP
    out = failed(judge("cluster_nodes_ready", api=state, cluster=on_cluster(nodes=[*NODES, ("w3", "198.18.1.3")])))
    assert [f.subject for f in out] == ["w3"]
    assert out[0].observed == "no Node object (name w3 or InternalIP 198.18.1.3)"
    assert "kubeadm token create --print-join-command" in out[0].fix


def test_nodes_ready_no_nodes_at_all():
    out = judge("cluster_nodes_ready", api=healthy(nodes=[]), cluster=on_cluster(nodes=NODES))
    assert len(out) == 1 and not out[0].ok and "no Node objects" in out[0].observed


def test_nodes_not_flapping_report02():
    out = judge("cluster_nodes_not_flapping", api=report02(), cluster=on_cluster(settings=SETTINGS))
    bad = failed(out)
    assert [f.subject for f in bad] == ["w2"]
    assert bad[0].observed == ("NodeReady (x8929 over 45d), NodeNotReady (x8932 over 24d), "
                               "last 2m ago")
    assert "x8929" in bad[0].why and "pleg" in bad[0].fix.lower()
    assert any(PLEG in e for e in bad[0].evidence)
    ok = {f.subject: f for f in out if f.ok}
    assert ok["w1"].observed == "no NodeReady/NodeNotReady events in the last 60 min"


def test_nodes_not_flapping_thresholds_and_window():
    events = [  # a reboot: one NotReady and one Ready, below the threshold of 4
        event("Node", "default", "w1", "NodeNotReady", "", 1, timedelta(minutes=9),
              timedelta(minutes=9)),
        event("Node", "default", "w1", "NodeReady", "", 1, timedelta(minutes=8),
              timedelta(minutes=8)),
        # many Ready events but never NotReady: not flapping
        {**event("Node", "default", "w2", "NodeReady", "", 0, timedelta(0), timedelta(0)),
         "count": None, "lastTimestamp": None, "firstTimestamp": None,
         "eventTime": ts(timedelta(minutes=5)), "series": {"count": 6,
                                                          "lastObservedTime": ts(timedelta(minutes=1))}},
        # flapping, but two hours ago: outside the window
        event("Node", "default", "cp1", "NodeNotReady", "", 50, timedelta(hours=5),
              timedelta(hours=2))]
    out = {f.subject: f for f in judge("cluster_nodes_not_flapping", api=healthy(events=events), cluster=on_cluster(settings=SETTINGS))}
    assert not failed(out.values())
    assert out["w1"].observed == "NodeReady (once), NodeNotReady (once), last 8m ago"
    assert out["w2"].observed.startswith("NodeReady (x6 over 4m)")
    assert "no NodeReady" in out["cp1"].observed
    strict = Settings(flap_threshold=2)
    assert [f.subject for f in failed(judge("cluster_nodes_not_flapping", api=healthy(events=events), cluster=on_cluster(settings=strict)))
            ] == ["w1"]


def test_human_durations():
    assert [nodes.human(s) for s in (5, 119, 120, 7199, 7200, 172799, 172800)] == \
        ["5s", "119s", "2m", "119m", "2h", "47h", "2d"]


# --- pods -----------------------------------------------------------------------------------
def test_pods_healthy_cluster_one_finding_per_namespace():
    out = judge("cluster_pods_healthy", api=healthy(), cluster=on_cluster(settings=SETTINGS))
    assert not failed(out)
    by_ns = {f.subject: f.observed for f in out}
    assert set(by_ns) == {"kube-flannel", "kube-system"}  # the Succeeded Job pod is ignored
    assert by_ns["kube-system"] == ("10 pods, none crash-looping, most restarts 2 "
                                    "(kube-system/coredns-5d78c9869d-abcde:coredns)")
    assert by_ns["kube-flannel"] == "5 pods, none crash-looping, no restarts"


def test_pods_fluentd_container_cannot_run_report02():
    out = failed(judge("cluster_pods_healthy", api=report02(), cluster=on_cluster(settings=SETTINGS)))
    assert [f.subject for f in out] == ["kube-system/fluentd-7x2kq:fluentd"]
    f = out[0]
    assert f.observed == ("CrashLoopBackOff, 1234 restarts; last terminated: ContainerCannotRun "
                          f"(exit code 128): {OCI}")
    assert "node: w2" in f.evidence and "owner: DaemonSet kube-system/fluentd" in f.evidence
    assert f"FailedSync (x123314 over 23d): {DEADLINE}" in f.evidence
    assert not any("unrelated" in e for e in f.evidence)
    assert "PLEG is not healthy" in f.why and "OCI runtime create failed" in f.why
    assert "kubectl -n kube-system logs fluentd-7x2kq -c fluentd --previous" in f.fix
    assert "crictl ps -a" in f.fix and "docker ps -a" in f.fix


def test_pods_order_restarts_init_containers_and_image_pull():
    app = pod("shop", "web-6d4cf56db6-p2x", "w1", [container("web", 11)],
              ("ReplicaSet", "web-6d4cf56db6"), {"pod-template-hash": "6d4cf56db6"})
    agent = pod("monitoring", "node-exporter-abc", "w1", [container(
        "node-exporter", 0, "ImagePullBackOff", image="quay.io/prometheus/node-exporter:v9")],
        ("DaemonSet", "node-exporter"))
    init = pod("kube-system", "calico-node-zz", "cp1", [container("calico-node")],
               ("DaemonSet", "calico-node"))
    init["status"]["initContainerStatuses"] = [container(
        "install-cni", 40, "CrashLoopBackOff",
        {"reason": "Error", "exitCode": 1, "message": "failed to write /host/etc/cni"})]
    quiet = pod("shop", "db-0", "w2", [container("db", 10)], ("StatefulSet", "db"))
    out = failed(judge("cluster_pods_healthy", api=healthy(pods=[app, agent, init, quiet]), cluster=on_cluster(settings=SETTINGS)))
    assert [f.subject for f in out] == ["kube-system/calico-node-zz:install-cni",
                                        "monitoring/node-exporter-abc:node-exporter",
                                        "shop/web-6d4cf56db6-p2x:web"]
    assert out[0].why == pods.GENERIC_WHY
    assert "crictl pull quay.io/prometheus/node-exporter:v9" in out[1].fix
    assert out[2].observed == "running, 11 restarts"
    assert "owner: Deployment shop/web" in out[2].evidence


def test_pods_none_listed_fails():
    assert failed(judge("cluster_pods_healthy", api=healthy(pods=[]), cluster=on_cluster(settings=SETTINGS)))


def test_daemonsets_ready_and_not_ready():
    assert not failed(judge("cluster_daemonsets", api=healthy()))
    state = healthy()
    flannel = state.pods[0]  # kube-flannel-ds on cp1
    flannel["status"]["containerStatuses"] = [container("kube-flannel", 7, "CrashLoopBackOff")]
    flannel["status"]["conditions"][0]["status"] = "False"
    state.daemonsets[0]["status"]["numberReady"] = 4
    out = judge("cluster_daemonsets", api=state)
    bad = failed(out)
    assert [f.subject for f in bad] == ["kube-flannel/kube-flannel-ds"]
    assert bad[0].observed == "4 of 5 ready; not ready on cp1 (kube-flannel-ds-cp1x: CrashLoopBackOff)"
    assert "rollout status ds/kube-flannel-ds" in bad[0].fix
    assert "describe pod kube-flannel-ds-cp1x" in bad[0].fix
    assert {f.subject for f in out if f.ok} == {"kube-system/kube-proxy"}


def test_daemonsets_desired_below_node_count_is_fine_but_rollout_is_not():
    gpu = daemonset("kube-system", "gpu-plugin", desired=2)
    rolling = daemonset("kube-system", "kube-proxy")
    rolling["status"]["updatedNumberScheduled"] = 3
    out = {f.subject: f for f in judge("cluster_daemonsets", api=healthy(daemonsets=[gpu, rolling]))}
    assert out["kube-system/gpu-plugin"].ok
    assert not out["kube-system/kube-proxy"].ok
    assert "3 of 5 updated" in out["kube-system/kube-proxy"].observed


# --- pod network ----------------------------------------------------------------------------
def test_pod_network_healthy():
    out = judge("cluster_pod_network", api=healthy(), cluster=on_cluster(ips=[ip for _, ip in NODES]))
    assert not failed(out)
    subjects = {f.subject for f in out}
    assert {"kubeadm podSubnet", "flannel Network", "node w1 podCIDR", "node podCIDRs",
            "podSubnet/serviceSubnet", "node addresses"} <= subjects
    flannel = next(f for f in out if f.subject == "flannel Network")
    assert "backend vxlan" in flannel.observed


def test_pod_network_flannel_mismatch():
    cms = healthy().configmaps
    cms["kube-flannel/kube-flannel-cfg"] = {"data": {"net-conf.json": NET_CONF.replace(
        "10.244.0.0", "10.245.0.0")}}
    out = failed(judge("cluster_pod_network", api=healthy(configmaps=cms), cluster=on_cluster(ips=[])))
    assert [f.subject for f in out] == ["flannel Network"]
    assert out[0].observed == "flannel Network 10.245.0.0/16 != kubeadm podSubnet 10.244.0.0/16"
    assert "--pod-network-cidr" in out[0].fix and "rollout restart" in out[0].fix
    assert "DNS" in out[0].why


def test_pod_network_node_cidrs_missing_outside_overlapping():
    state = healthy()
    del state.nodes[0]["spec"]["podCIDR"], state.nodes[0]["spec"]["podCIDRs"]
    state.nodes[1]["spec"]["podCIDRs"] = ["10.99.1.0/24"]
    state.nodes[4]["spec"]["podCIDRs"] = ["10.244.3.0/25"]  # inside w1's 10.244.3.0/24
    out = {f.subject: f for f in failed(judge("cluster_pod_network", api=state, cluster=on_cluster(ips=[])))}
    assert set(out) == {"node cp1 podCIDR", "node cp2 podCIDR", "node podCIDRs"}
    assert out["node cp1 podCIDR"].observed == "no spec.podCIDR"
    assert "--allocate-node-cidrs" in out["node cp1 podCIDR"].fix
    assert "outside podSubnet 10.244.0.0/16" in out["node cp2 podCIDR"].observed
    assert out["node podCIDRs"].observed == "w1 10.244.3.0/24 overlaps w2 10.244.3.0/25"


def test_pod_network_address_clashes_and_subnet_overlap():
    cms = {"kube-system/kubeadm-config": {"data": {"ClusterConfiguration": CLUSTER_CONFIGURATION
                                                   .replace("10.96.0.0/12", "10.0.0.0/8")}}}
    state = healthy(configmaps=cms)
    state.nodes[3]["status"]["addresses"][0]["address"] = "10.244.9.9"
    out = failed(judge("cluster_pod_network", api=state, cluster=on_cluster(ips=["192.0.2.11", "10.1.2.3"])))
    assert {f.subject for f in out} == {"podSubnet/serviceSubnet", "address 10.244.9.9",
                                        "address 10.1.2.3"}
    by = {f.subject: f.observed for f in out}
    assert by["address 10.244.9.9"] == ("node w1 InternalIP 10.244.9.9 inside podSubnet "
                                        "10.244.0.0/16 and serviceSubnet 10.0.0.0/8")
    assert by["address 10.1.2.3"] == "inventory host 10.1.2.3 inside serviceSubnet 10.0.0.0/8"
    assert "overlaps serviceSubnet 10.0.0.0/8" in by["podSubnet/serviceSubnet"]


def test_pod_network_without_flannel_or_kubeadm_config():
    state = healthy(configmaps={"kube-system/kubeadm-config": healthy().configmaps[
        "kube-system/kubeadm-config"]})
    out = judge("cluster_pod_network", api=state, cluster=on_cluster(ips=[]))
    assert not failed(out) and "flannel Network" not in {f.subject for f in out}
    assert "no flannel ConfigMap" in next(f for f in out if f.subject == "kubeadm podSubnet").observed
    missing = failed(judge("cluster_pod_network", api=healthy(configmaps={}), cluster=on_cluster(ips=[])))
    assert [f.subject for f in missing] == ["kubeadm podSubnet"]
    assert "upload-config kubeadm" in missing[0].fix
    no_subnet = healthy(configmaps={"kube-system/kubeadm-config": {"data": {
        "ClusterConfiguration": "networking:\n  serviceSubnet: 10.96.0.0/12\n"}}})
    out = failed(judge("cluster_pod_network", api=no_subnet, cluster=on_cluster(ips=[])))
    assert out[0].subject == "kubeadm podSubnet" and "--pod-network-cidr" in out[0].fix


# --- DNS ------------------------------------------------------------------------------------
BIND9 = """Server:\t\t10.96.0.10
Address:\t10.96.0.10#53

Name:\tkubernetes.default.svc.cluster.local
Address: 10.96.0.1
"""
BUSYBOX = """Server:\t\t10.96.0.10
Address:\t10.96.0.10:53

Name:\tkubernetes.default.svc.cluster.local
Address: 10.96.0.1
"""
BUSYBOX_OLD = """Server:    10.96.0.10
Address 1: 10.96.0.10 kube-dns.kube-system.svc.cluster.local

Name:      kubernetes.default
Address 1: 10.96.0.1 kubernetes.default.svc.cluster.local
"""
TIMEOUT = ";; connection timed out; no servers could be reached\n\ncommand terminated with exit code 1"
UNREACH = ";; communications error to 10.96.0.10#53: host unreachable\n"
NXDOMAIN = "Server:\t\t10.96.0.10\nAddress:\t10.96.0.10#53\n\n** server can't find kubernetes.default: NXDOMAIN\n"
REFUSED = "nslookup: write to '10.96.0.10': Connection refused\n;; connection timed out; no servers could be reached\n"


@pytest.mark.parametrize("text,expected", [
    (BIND9, ("10.96.0.10", ["10.96.0.1"], None)),
    (BUSYBOX, ("10.96.0.10", ["10.96.0.1"], None)),
    (BUSYBOX_OLD, ("10.96.0.10", ["10.96.0.1"], None)),
    ("10.96.0.1\n", (None, ["10.96.0.1"], None)),
    (TIMEOUT, (None, [], ";; connection timed out; no servers could be reached")),
    (UNREACH, (None, [], ";; communications error to 10.96.0.10#53: host unreachable")),
    (NXDOMAIN, ("10.96.0.10", [], "** server can't find kubernetes.default: NXDOMAIN")),
    (REFUSED, (None, [], "nslookup: write to '10.96.0.10': Connection refused")),
])
def test_parse_lookup(text, expected):
    assert dns.parse_lookup(text) == expected


def lookup(output: str) -> dns.DnsLookup:
    return dns.DnsLookup("default/dnsutils", "w1", "kubectl exec dnsutils -- nslookup "
                         "kubernetes.default", output, True)


def test_cluster_dns_healthy():
    out = judge("cluster_dns", api=healthy(), cluster=on_cluster(settings=SETTINGS), dns_lookup=lookup(BIND9))
    assert not failed(out)
    assert [f.subject for f in out] == ["coredns", "kube-system/kube-dns",
                                        "lookup from default/dnsutils"]
    assert out[0].observed == "2 of 2 Ready on cp1, cp2" and not out[0].note
    assert out[2].observed == "kubernetes.default -> 10.96.0.1 from 10.96.0.10"
    assert "pod default/dnsutils on w1, created for this check" in out[2].evidence[0]


def test_cluster_dns_timeout_is_report03():
    out = failed(judge("cluster_dns", api=healthy(), cluster=on_cluster(settings=SETTINGS), dns_lookup=lookup(TIMEOUT)))
    assert [f.subject for f in out] == ["lookup from default/dnsutils"]
    assert "ICMP host 10.244.0.2 unreachable - admin prohibited" in out[0].why
    assert "iptables -L FORWARD -n --line-numbers" in out[0].fix
    assert "cp1, cp2, w1" in out[0].fix
    assert "udp/8472 (overlay: flannel's VXLAN port, the default)" in out[0].fix
    assert ";; connection timed out; no servers could be reached" in out[0].evidence


def test_cluster_dns_wrong_answer_nxdomain_refused_and_wrong_server():
    wrong = failed(judge("cluster_dns", api=healthy(), cluster=on_cluster(settings=SETTINGS), dns_lookup=lookup(BIND9.replace(
        "Address: 10.96.0.1", "Address: 203.0.113.7"))))[0]
    assert "203.0.113.7" in wrong.observed and "hosts, rewrite or template" in wrong.fix
    nx = failed(judge("cluster_dns", api=healthy(), cluster=on_cluster(settings=SETTINGS), dns_lookup=lookup(NXDOMAIN)))[0]
    assert "NXDOMAIN" in nx.observed and "kubernetes cluster.local" in nx.fix
    refused = failed(judge("cluster_dns", api=healthy(), cluster=on_cluster(settings=SETTINGS), dns_lookup=lookup(REFUSED)))[0]
    assert "endpointslices" in refused.fix
    other = failed(judge("cluster_dns", api=healthy(), cluster=on_cluster(settings=SETTINGS), dns_lookup=lookup(BIND9.replace(
        "10.96.0.10", "8.8.8.8"))))[0]
    assert other.observed.startswith("asked 8.8.8.8, not the cluster DNS 10.96.0.10")


def test_cluster_dns_answer_follows_the_kubernetes_service():
    services = [service("default", "kubernetes", "10.96.0.2"),
                service("kube-system", "kube-dns", "10.96.0.10")]
    assert failed(judge("cluster_dns", api=healthy(services=services), cluster=on_cluster(settings=SETTINGS), dns_lookup=lookup(BIND9)))
    assert not failed(judge("cluster_dns", api=healthy(services=services), cluster=on_cluster(settings=SETTINGS), dns_lookup=lookup(BIND9.replace("10.96.0.1\n", "10.96.0.2\n"))))


def test_cluster_dns_coredns_not_ready_service_wrong_and_no_lookup():
    state = healthy(services=[service("default", "kubernetes", "10.96.0.1"),
                              service("kube-system", "kube-dns", "10.96.0.20")])
    core = state.pods[-2]  # coredns-...-fghij on cp2
    core["status"]["phase"] = "Pending"
    core["status"]["conditions"][0]["status"] = "False"
    out = {f.subject: f for f in failed(judge("cluster_dns", api=state, cluster=on_cluster(settings=SETTINGS), dns_lookup="cannot create pod "
                                                        "default/dnsutils: 403 Forbidden"))}
    assert set(out) == {"coredns", "kube-system/kube-dns", "lookup from a pod"}
    assert out["coredns"].observed == ("1 of 2 Ready on cp1, cp2; not ready: "
                                       "coredns-5d78c9869d-fghij on cp2 (Pending)")
    assert out["kube-system/kube-dns"].observed == "clusterIP 10.96.0.20"
    assert "403 Forbidden" in out["lookup from a pod"].observed
    none = failed(judge("cluster_dns", api=healthy(pods=[], services=[]), cluster=on_cluster(settings=SETTINGS), dns_lookup=None))
    assert {f.subject for f in none} == {"coredns", "kube-system/kube-dns", "lookup from a pod"}


def test_cluster_dns_note_when_all_coredns_on_one_node():
    state = healthy()
    state.pods[-2]["spec"]["nodeName"] = "cp1"
    coredns = judge("cluster_dns", api=state, cluster=on_cluster(settings=SETTINGS), dns_lookup=lookup(BIND9))[0]
    assert coredns.ok and "all CoreDNS pods run on cp1" in coredns.note


def answer_from(output: str, rc: int = 0, tool: str = "dig") -> dns.NodeDnsAnswer:
    return dns.NodeDnsAnswer(tool, f"{tool} +time=3 +tries=1 +short @10.96.0.10 "
                             "kubernetes.default.svc.cluster.local", rc, output)


def test_node_dns():
    ok = judge("node_cluster_dns", node=dns_node("w1", answer_from("10.96.0.1"), SETTINGS))
    assert not failed(ok) and ok[0].observed == "kubernetes.default -> 10.96.0.1 from 10.96.0.10"
    ns = judge("node_cluster_dns", node=dns_node("w1", answer_from(BUSYBOX, tool="nslookup"), SETTINGS))
    assert not failed(ns)
    timeout = failed(judge("node_cluster_dns", node=dns_node("w1", answer_from(TIMEOUT, 9), SETTINGS)))[0]
    assert "admin prohibited" in timeout.why and "iptables -L FORWARD" in timeout.fix
    killed = failed(judge("node_cluster_dns", node=dns_node("w1", answer_from("", 124), SETTINGS)))[0]
    assert "timed out" in killed.observed and "admin prohibited" in killed.why
    empty = failed(judge("node_cluster_dns", node=dns_node("w1", answer_from(""), SETTINGS)))[0]
    assert empty.observed == "empty answer" and "Corefile" in empty.fix
    tool = failed(judge("node_cluster_dns", node=dns_node("w1", dns.NodeDnsAnswer("", "", -1, ""), SETTINGS)))[0]
    # not judged: the test errors, saying what is missing and what it was for
    assert tool.unjudged == "missing tool" and tool.observed == (
        "w1: dig is not installed (package bind9-dnsutils); node_cluster_dns needs it (or "
        "nslookup, or bash with dd and od) to ask the cluster DNS Service from the node")
    assert tool.fix == "install bind9-dnsutils on w1"
    assert failed(judge("node_cluster_dns", node=dns_node("w1", None, SETTINGS)))[0].observed == "not gathered"


# --- kubeadm-certs (information only) -------------------------------------------------------
def test_kubeadm_certs_secret():
    absent = judge("cluster_kubeadm_certs", api=healthy())
    assert absent[0].ok and absent[0].observed == "Secret kube-system/kubeadm-certs absent"
    assert "kubeadm init phase upload-certs --upload-certs" in absent[0].note
    present = judge("cluster_kubeadm_certs", api=healthy(
        kube_system_secrets=frozenset({"kubeadm-certs"})))
    assert present[0].ok and present[0].observed.startswith("present") and not present[0].note


# --- field report 01: rp_filter and Calico's IgnoreLooseRPF ---------------------------------
def loose_all() -> str:
    lines = dict(line.split(" ") for line in facts().sections["sysctl"].splitlines())
    lines["net.ipv4.conf.all.rp_filter"] = "2"
    return "\n".join(f"{k} {v}" for k, v in lines.items())


def calico(env_value: str | None = "true", felix: bool | None = None) -> ApiState:
    env = [{"name": "DATASTORE_TYPE", "value": "kubernetes"}]
    if env_value is not None:
        env.append({"name": "FELIX_IGNORELOOSERPF", "value": env_value})
    fcs = [] if felix is None else [{"metadata": {"name": "default"},
                                     "spec": {"ignoreLooseRPF": felix}}]
    return healthy(daemonsets=[daemonset("kube-system", "calico-node", env=env)],
                   felix_configurations=fcs)


def test_calico_ignores_loose_rpf_evidence():
    assert sysctl.calico_ignores_loose_rpf(calico("True")) == \
        "DaemonSet kube-system/calico-node: FELIX_IGNORELOOSERPF=True"
    assert sysctl.calico_ignores_loose_rpf(calico(None, True)) == \
        "FelixConfiguration default: ignoreLooseRPF: true"
    assert sysctl.calico_ignores_loose_rpf(calico("false", True)) is None  # env wins
    assert sysctl.calico_ignores_loose_rpf(calico(None, False)) is None
    assert sysctl.calico_ignores_loose_rpf(healthy()) is None


def test_rp_filter_loose_allowed_by_calico_exception():
    """IgnoreLooseRPF (felix v3.11.3 config/config_params.go; FELIX_IGNORELOOSERPF in
    calico-node's env): Felix logs a warning instead of exiting."""
    evidence = "DaemonSet kube-system/calico-node: FELIX_IGNORELOOSERPF=true"
    ctx = context(facts(sysctl=loose_all()))
    assert failed(judge("node_rp_filter", node=ctx, cluster_cni=cni_cluster()))  # without the exception, loose still fails
    out = judge("node_rp_filter", node=ctx, cluster_cni=cni_cluster(exception=evidence))
    assert not failed(out)
    eth0 = next(f for f in out if f.subject == "n1:eth0")
    assert eth0.observed == f"effective rp_filter 2 = max(all=2, eth0=1) (loose), allowed: {evidence}"
    assert eth0.note and "IgnoreLooseRPF" in eth0.note


def test_rp_filter_exception_does_not_allow_other_values():
    lines = loose_all().replace("net.ipv4.conf.all.rp_filter 2", "net.ipv4.conf.all.rp_filter 3")
    out = failed(judge("node_rp_filter", node=context(facts(sysctl=lines)), cluster_cni=cni_cluster(
        exception="FelixConfiguration default: ignoreLooseRPF: true")))
    assert out and all("effective rp_filter 3" in f.observed for f in out)


# --- version skew (kubernetes.io/releases/version-skew-policy) ----------------------------
def apiserver_manifest(tag: str) -> str:
    """The kube-apiserver static pod kubeadm writes (its image line as kubeadm writes it)."""
    return ("apiVersion: v1\nkind: Pod\nmetadata:\n  name: kube-apiserver\n  namespace: "
            "kube-system\nspec:\n  containers:\n  - command:\n    - kube-apiserver\n"
            f"    image: registry.k8s.io/kube-apiserver:{tag}\n    name: kube-apiserver\n")


def skew(apiservers: dict[str, str | None], kubelets: dict[str, str]):
    """cluster_version_skew over control planes with these image tags (None: unreachable)
    and Nodes with these kubeletVersions."""
    cps = [host(n, f"192.0.2.{11 + i}", CP) for i, n in enumerate(apiservers)]
    found = {n: "unreachable: connection refused" if tag is None else
             facts(n, files={"/etc/kubernetes/manifests/kube-apiserver.yaml":
                             apiserver_manifest(tag)}) for n, tag in apiservers.items()}
    state = ApiState("https://192.0.2.100:6443", nodes=[
        {**node(n, f"192.0.2.{30 + i}", i), "status": {
            **node(n, f"192.0.2.{30 + i}", i)["status"], "nodeInfo": {"kubeletVersion": v}}}
        for i, (n, v) in enumerate(kubelets.items())])
    return judge("cluster_version_skew", api=state, cluster=on_cluster(hosts=cps, facts=found))


def test_version_skew_within_the_policy_passes():
    """The policy: apiservers within one minor; a kubelet not newer than the oldest
    apiserver and up to three minors older (kubelet 1.34 with apiserver 1.37)."""
    out = skew({"cp1": "v1.37.2", "cp2": "v1.37.2", "cp3": "v1.36.5"},
               {"cp1": "v1.36.5", "w1": "v1.34.1", "w2": "v1.33.9"})
    assert not failed(out), [f.observed for f in failed(out)]
    assert {f.check_id for f in out} == {"cluster_version_skew"}
    assert {f.subject for f in out} == {"kube-apiserver", "node cp1 kubelet",
                                        "node w1 kubelet", "node w2 kubelet"}


def test_a_kubelet_newer_than_the_oldest_apiserver_fails():
    out = failed(skew({"cp1": "v1.37.2", "cp2": "v1.36.5"}, {"w1": "v1.37.2", "w2": "v1.36.0"}))
    assert [f.subject for f in out] == ["node w1 kubelet"]
    assert "kubelet v1.37.2 newer than the oldest apiserver (1.36; cp1 1.37, cp2 1.36)" in \
        out[0].observed
    assert "upgrade the control planes first" in out[0].fix
    assert "version-skew-policy" in out[0].fix


def test_a_kubelet_too_far_behind_fails_two_minors_below_1_25():
    out = failed(skew({"cp1": "v1.37.2"}, {"w1": "v1.33.0", "w2": "v1.34.0"}))
    assert [f.subject for f in out] == ["node w1 kubelet"]
    assert "4 minors older" in out[0].observed and "at most 3 minors older" in out[0].expected
    old = failed(skew({"cp1": "v1.27.3"}, {"w1": "v1.24.9", "w2": "v1.25.0"}))
    assert [f.subject for f in old] == ["node w1 kubelet"]
    assert "at most 2 minors older" in old[0].expected


def test_apiservers_more_than_one_minor_apart_fail_and_name_the_one_behind():
    out = failed(skew({"cp1": "v1.37.2", "cp2": "v1.35.0", "cp3": "v1.37.2"},
                      {"cp1": "v1.37.2"}))
    api = next(f for f in out if f.subject == "kube-apiserver")
    assert "cp1 1.37, cp2 1.35, cp3 1.37: more than one minor apart" in api.observed
    assert "finish the upgrade on cp2" in api.fix
    # the kubelet at 1.37 is now newer than the oldest apiserver, which it must not be
    assert "node cp1 kubelet" in {f.subject for f in out}


def test_an_unreachable_control_plane_is_not_judged_the_others_are():
    out = skew({"cp1": "v1.37.2", "cp2": None}, {"w1": "v1.37.2"})
    [gone] = failed(out)
    assert gone.unjudged == "unreachable" and gone.subject == "cp2:kube-apiserver"
    assert any(f.subject == "kube-apiserver" and f.ok for f in out)


@pytest.mark.parametrize("text, want", [("v1.37.2", (1, 37)), ("1.36", (1, 36)),
                                        ("v1.35.0-rc.1", (1, 35)), ("v1.33.4+k3s1", (1, 33)),
                                        ("latest", None), ("", None), ("v1", None)])
def test_versions_are_read_as_kubernetes_writes_them(text, want):
    from kubeaccept.checks.versions import minor_of
    assert minor_of(text) == want
