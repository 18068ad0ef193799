"""The lab's cluster objects, as kubeadm + flannel leave them: the kubeadm-config and
kube-flannel-cfg ConfigMaps, the flannel and kube-proxy DaemonSets, CoreDNS and kube-dns, the
static control-plane pods, and a Node per host (kept alive by a kwok per host, which serves
the kubelet API on 10250). Written through the real apiserver with the admin credentials."""

from __future__ import annotations

import json
import time
from pathlib import Path

import urllib3
import yaml
from kubernetes import client, config

from kubeaccept.api.kubeapi import HttpError, raw_call
from kubeaccept.model.roles import CONTROL_PLANE

from .plan import KUBE_VERSION, POD_SUBNET, SERVICE_SUBNET, VIP, LabHost
from .system import LabError

DNS_IP = "10.96.0.10"
# Pods and Nodes with this annotation get their status from the lab, not from kwok: a fault
# (a PLEG-unhealthy node, a crash-looping pod) sets a status kwok would otherwise overwrite.
LAB_STATUS = "lab/status"
# The conditions kwok's NodeConditions template gives a Node (kwok v0.8.0
# pkg/utils/gotpl/funcs.go); heal drops any other a fault added.
KWOK_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure",
                   "NetworkUnavailable")
# Both replicas on a worker: the cluster survives the loss of any control plane (the
# failover gate); the coredns-one-master fault puts them on cp1, as field report 03 had them.
COREDNS_NODE = "w2"
KWOK_CONF = "/etc/kubernetes/kwok.conf"
COREDNS_PODS = "/api/v1/namespaces/kube-system/pods?labelSelector=k8s-app%3Dkube-dns"

PATHS = {  # kind -> (collection path with {ns}, namespaced)
    "Namespace": "/api/v1/namespaces", "Node": "/api/v1/nodes",
    "ConfigMap": "/api/v1/namespaces/{ns}/configmaps",
    "Service": "/api/v1/namespaces/{ns}/services", "Pod": "/api/v1/namespaces/{ns}/pods",
    "Event": "/api/v1/namespaces/{ns}/events",
    "DaemonSet": "/apis/apps/v1/namespaces/{ns}/daemonsets",
    "Deployment": "/apis/apps/v1/namespaces/{ns}/deployments",
}


class Kube:
    """A few REST verbs on the lab's apiserver (through the VIP), JSON in and out."""

    def __init__(self, kubeconfig: Path, server: str | None = None):
        cfg = client.Configuration()
        config.load_kube_config(str(kubeconfig), client_configuration=cfg)
        cfg.retries = False
        if server:
            cfg.host = server
        self.api = client.ApiClient(cfg)

    def call(self, method: str, path: str, body=None, missing_ok=False, ctype=None):
        for attempt in range(5):
            try:
                data = raw_call(self.api, method, path, (3, 20), body, ctype)
                return json.loads(data) if data else None
            except HttpError as exc:
                if exc.status == 404 and missing_ok:
                    return None
                if exc.status < 500 and exc.status != 429:
                    raise LabError(f"{method} {path}: {exc.status} {exc.body[:300]!r}") from None
                last = f"{exc.status} {exc.reason}"
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                last = str(exc)
            time.sleep(0.5 * (attempt + 1))
        raise LabError(f"{method} {path}: {last}")

    def path(self, obj: dict) -> str:
        ns = obj["metadata"].get("namespace", "default")
        return PATHS[obj["kind"]].format(ns=ns)

    def create(self, obj: dict) -> dict:
        deadline = time.monotonic() + 60
        while True:
            try:
                return self.call("POST", self.path(obj), obj)
            except LabError as exc:
                if " 409 " in str(exc):  # already there: `up` and `heal` are idempotent
                    return self.get(obj)
                # a new namespace gets its default ServiceAccount a moment later
                if "serviceaccount" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def get(self, obj: dict):
        return self.call("GET", f"{self.path(obj)}/{obj['metadata']['name']}", missing_ok=True)

    def patch(self, path: str, patch: dict, missing_ok=False):
        return self.call("PATCH", path, patch, missing_ok,
                         ctype="application/merge-patch+json")

    def items(self, path: str) -> list[dict]:
        return (self.call("GET", path) or {}).get("items", [])


def cluster_configuration(pod_subnet: str = POD_SUBNET) -> str:
    return yaml.safe_dump({
        "apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "ClusterConfiguration",
        "kubernetesVersion": KUBE_VERSION, "clusterName": "kubernetes",
        "controlPlaneEndpoint": f"{VIP}:6443", "certificatesDir": "/etc/kubernetes/pki",
        "imageRepository": "registry.k8s.io",
        "etcd": {"local": {"dataDir": "/var/lib/etcd"}},
        "networking": {"dnsDomain": "cluster.local", "podSubnet": pod_subnet,
                       "serviceSubnet": SERVICE_SUBNET},
        "apiServer": {}, "controllerManager": {}, "scheduler": {}, "dns": {}, "proxy": {},
    }, sort_keys=False)


def net_conf(network: str = POD_SUBNET) -> str:
    return json.dumps({"Network": network, "EnableNFTables": False,
                       "Backend": {"Type": "vxlan"}}, indent=2) + "\n"


def _meta(name: str, ns: str | None = None, labels: dict | None = None, **extra) -> dict:
    meta = {"name": name, **extra}
    if ns:
        meta["namespace"] = ns
    if labels:
        meta["labels"] = labels
    return meta


def _daemonset(name: str, ns: str, image: str, labels: dict, host_network: bool = True,
               env: list[dict] | None = None) -> dict:
    container = {"name": name.removeprefix("kube-").split("-")[0], "image": image}
    if env:
        container["env"] = env
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": _meta(name, ns, labels),
            "spec": {"selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {
                         "hostNetwork": host_network,
                         "priorityClassName": "system-node-critical",
                         "tolerations": [{"operator": "Exists"}],
                         "containers": [container]}}}}


def calico_node(image: str = "docker.io/calico/node:v3.29.1", ignore_loose_rpf: bool = True
                ) -> dict:
    """calico-node, told to accept loose reverse-path filtering (report 01's alternative) or
    not; its image's version decides whether Felix reads conf/all (up to v3.11)."""
    return _daemonset("calico-node", "kube-system", image, {"k8s-app": "calico-node"},
                      env=[{"name": "FELIX_IGNORELOOSERPF", "value": "true"}]
                      if ignore_loose_rpf else None)


# k8s.io/examples/admin/dns/dnsutils.yaml, the pod field report 03 checks DNS from; on a
# worker, so that its queries cross the VXLAN to CoreDNS on w2.
DNSUTILS = {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "dnsutils", "namespace": "default"},
            "spec": {"nodeSelector": {"kubernetes.io/hostname": "w1"},
                     "containers": [{"name": "dnsutils",
                                     "image": "registry.k8s.io/e2e-test-images/"
                                              "jessie-dnsutils:1.3",
                                     "command": ["sleep", "infinity"],
                                     "imagePullPolicy": "IfNotPresent"}],
                     "restartPolicy": "Always"}}


# kubeadm's Corefile without `forward . /etc/resolv.conf` and `loop`: nothing upstream here.
COREFILE = """\
.:53 {
    errors
    health
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    cache 30
    reload
    loadbalance
}
"""


def objects() -> list[dict]:
    """What kubeadm init/join and `kubectl apply -f kube-flannel.yml` leave in the API."""
    dns_labels = {"k8s-app": "kube-dns"}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta("kube-flannel")},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta("kubeadm-config",
                                                                      "kube-system"),
         "data": {"ClusterConfiguration": cluster_configuration()}},
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": _meta("kube-flannel-cfg", "kube-flannel", {"app": "flannel"}),
         "data": {"net-conf.json": net_conf(), "cni-conf.json": json.dumps({
             "name": "cbr0", "cniVersion": "0.3.1", "plugins": [
                 {"type": "flannel", "delegate": {"hairpinMode": True,
                                                  "isDefaultGateway": True}},
                 {"type": "portmap", "capabilities": {"portMappings": True}}]})}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta("coredns", "kube-system"),
         "data": {"Corefile": COREFILE}},
        _daemonset("kube-flannel-ds", "kube-flannel", "ghcr.io/flannel-io/flannel:v0.27.4",
                   {"app": "flannel", "k8s-app": "flannel"}),
        _daemonset("kube-proxy", "kube-system", f"registry.k8s.io/kube-proxy:{KUBE_VERSION}",
                   {"k8s-app": "kube-proxy"}),
        _daemonset("fluentd", "kube-system", "fluent/fluentd-kubernetes-daemonset:v1.17",
                   {"k8s-app": "fluentd"}, host_network=False),
        DNSUTILS,
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": _meta("coredns", "kube-system", dns_labels),
         "spec": {"replicas": 2, "selector": {"matchLabels": dns_labels},
                  "template": {"metadata": {"labels": dns_labels}, "spec": {
                      "priorityClassName": "system-cluster-critical",
                      "nodeSelector": {"kubernetes.io/hostname": COREDNS_NODE},
                      "tolerations": [{"key": "node-role.kubernetes.io/control-plane",
                                       "effect": "NoSchedule"}],
                      "containers": [{"name": "coredns",
                                      "image": "registry.k8s.io/coredns/coredns:v1.14.7",
                                      "args": ["-conf", "/etc/coredns/Corefile"]}]}}}},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": _meta("kube-dns", "kube-system", {**dns_labels,
                                                        "kubernetes.io/name": "CoreDNS"}),
         "spec": {"clusterIP": DNS_IP, "selector": dns_labels, "ports": [
             {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
             {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
             {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153}]}},
    ]


def static_pods(host: LabHost) -> list[dict]:
    """The mirror pods of kubeadm's static control-plane pods on one control plane."""
    out = []
    for comp in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        labels = {"component": comp, "tier": "control-plane"}
        image = ("registry.k8s.io/etcd:3.7.3-0" if comp == "etcd"
                 else f"registry.k8s.io/{comp}:{KUBE_VERSION}")
        out.append({"apiVersion": "v1", "kind": "Pod",
                    "metadata": _meta(f"{comp}-{host.name}", "kube-system", labels),
                    "spec": {"nodeName": host.name, "hostNetwork": True,
                             "priorityClassName": "system-node-critical",
                             "tolerations": [{"operator": "Exists"}],
                             "containers": [{"name": comp, "image": image}]}})
    return out


def node_object(host: LabHost) -> dict:
    labels = {"kubernetes.io/hostname": host.name, "kubernetes.io/os": "linux",
              "kubernetes.io/arch": "amd64"}
    spec: dict = {}
    if CONTROL_PLANE in host.roles:
        labels["node-role.kubernetes.io/control-plane"] = ""
        spec["taints"] = [{"key": "node-role.kubernetes.io/control-plane",
                           "effect": "NoSchedule"}]
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": _meta(host.name, labels=labels, annotations={
                "kubeadm.alpha.kubernetes.io/cri-socket":
                    "unix:///var/run/cri-dockerd.sock" if host.runtime == "docker"
                    else "unix:///var/run/containerd/containerd.sock"}),
            "spec": spec}


def kwok_argv(binary: str, host: LabHost) -> list[str]:
    """kwok as this host's kubelet: manages this Node only, serves the kubelet API (exec)
    on 10250 with the node's serving certificate."""
    return [binary, f"--kubeconfig={KWOK_CONF}", f"--manage-single-node={host.name}",
            f"--node-name={host.name}", f"--node-ip={host.ip}", "--node-port=10250",
            "--server-address=0.0.0.0:10250",
            "--tls-cert-file=/var/lib/kubelet/pki/kubelet.crt",
            "--tls-private-key-file=/var/lib/kubelet/pki/kubelet.key",
            "--config=/etc/kwok/kwok.yaml", "--node-lease-duration-seconds=40",
            f"--disregard-status-with-annotation-selector={LAB_STATUS}=lab"]


# kwok's lifecycle stages, as a kubelet goes: a Node becomes Ready (with the kubelet version
# the lab runs), a scheduled pod becomes Running and Ready with an IP from the node's podCIDR,
# a deleted pod goes away. kwok renews the Node's Lease itself (--node-lease-duration-seconds).
NODE_READY = """\
{{ $now := Now }}
conditions:
{{ range NodeConditions }}
- lastHeartbeatTime: {{ $now | Quote }}
  lastTransitionTime: {{ $now | Quote }}
  message: {{ .message | Quote }}
  reason: {{ .reason | Quote }}
  status: {{ .status | Quote }}
  type: {{ .type | Quote }}
{{ end }}
addresses:
- address: {{ NodeIP | Quote }}
  type: InternalIP
- address: {{ NodeName | Quote }}
  type: Hostname
daemonEndpoints:
  kubeletEndpoint:
    Port: {{ NodePort }}
allocatable: {cpu: "4", memory: 8Gi, pods: "110"}
capacity: {cpu: "4", memory: 8Gi, pods: "110"}
nodeInfo:
  architecture: amd64
  operatingSystem: linux
  kubeletVersion: %(version)s
  kubeProxyVersion: %(version)s
  containerRuntimeVersion: containerd://1.7.24
  kernelVersion: {{ Version | Quote }}
  osImage: kubeaccept lab
phase: Running
"""
POD_RUNNING = """\
{{ $now := Now }}
conditions:
- {type: Initialized, status: "True", lastTransitionTime: {{ $now | Quote }}}
- {type: PodScheduled, status: "True", lastTransitionTime: {{ $now | Quote }}}
- {type: ContainersReady, status: "True", lastTransitionTime: {{ $now | Quote }}}
- {type: Ready, status: "True", lastTransitionTime: {{ $now | Quote }}}
containerStatuses:
{{ range .spec.containers }}
- name: {{ .name | Quote }}
  image: {{ .image | Quote }}
  ready: true
  started: true
  restartCount: 0
  state: {running: {startedAt: {{ $now | Quote }}}}
{{ end }}
{{ with NodeIPsWith .spec.nodeName }}
hostIP: {{ index . 0 | Quote }}
{{ end }}
{{ with PodIPsWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) \
( or .metadata.name "" ) ( or .metadata.namespace "" ) }}
podIP: {{ index . 0 | Quote }}
podIPs:
{{ range . }}
- ip: {{ . | Quote }}
{{ end }}
{{ end }}
phase: Running
startTime: {{ $now | Quote }}
"""
# Ready again after the node lifecycle controller marked it NotReady (its node missed
# heartbeats): the pod keeps its IPs, as with a kubelet. Patching podIPs again would append a
# second address of the same family, which the API server rejects.
POD_READY_AGAIN = """\
{{ $now := Now }}
conditions:
- {type: ContainersReady, status: "True", lastTransitionTime: {{ $now | Quote }}}
- {type: Ready, status: "True", lastTransitionTime: {{ $now | Quote }}}
"""


def _stage(name: str, kind: str, expressions: list[dict], nxt: dict) -> dict:
    return {"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Stage",
            "metadata": {"name": name},
            "spec": {"resourceRef": {"apiGroup": "v1", "kind": kind},
                     "selector": {"matchExpressions": expressions}, "next": nxt}}


def stages() -> list[dict]:
    not_ready = {"key": '.status.conditions.[] | select( .type == "Ready" ) | .status',
                 "operator": "NotIn", "values": ["True"]}
    alive = {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"}
    no_ip = {"key": ".status.podIP", "operator": "DoesNotExist"}
    has_ip = {"key": ".status.podIP", "operator": "Exists"}
    return [
        _stage("lab-node-ready", "Node", [not_ready],
               {"statusTemplate": NODE_READY % {"version": KUBE_VERSION}}),
        # Any pod not Ready, not only Pending ones: the node lifecycle controller marks pods
        # NotReady when their node misses heartbeats, and a kubelet makes them Ready again.
        _stage("lab-pod-running", "Pod", [alive, not_ready, no_ip],
               {"statusTemplate": POD_RUNNING}),
        _stage("lab-pod-ready-again", "Pod", [alive, not_ready, has_ip],
               {"statusTemplate": POD_READY_AGAIN}),
        _stage("lab-pod-delete", "Pod",
               [{"key": ".metadata.deletionTimestamp", "operator": "Exists"}],
               {"delete": True}),
    ]


def kwok_config() -> str:
    """kwok's stages and Exec rules: `kubectl exec dnsutils -- CMD` runs CMD through the
    node's pod-exec shims, which enter the pod's sandbox (see podexec.py)."""
    docs = stages()
    for ns, name in (("default", "dnsutils"),):
        docs.append({"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Exec",
                     "metadata": {"name": name, "namespace": ns},
                     "spec": {"execs": [{"local": {"envs": [
                         {"name": "KUBEACCEPT_POD", "value": f"{ns}/{name}"}]}}]}})
    return yaml.safe_dump_all(docs, sort_keys=False)


def wait_for(what: str, probe, timeout: float = 90, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise LabError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(every)


def ready(obj: dict | None) -> bool:
    conds = (obj or {}).get("status", {}).get("conditions", [])
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)
