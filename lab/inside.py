"""The Kubernetes cluster inside the lab: its objects, kwok's Nodes, the pod network and
CoreDNS, brought up, kept in step and healed through the API."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from kubeaccept.model.roles import CONTROL_PLANE

from . import cluster, podnet
from .system import alive, python_m

if TYPE_CHECKING:
    from .state import LabState

COREDNS_PODS = cluster.COREDNS_PODS


class Inside:
    def __init__(self, lab: LabState):
        self.lab = lab

    def cluster_up(self) -> None:
        if "kwok" not in self.lab.state.get("binaries", {}):
            return
        kube = self.lab.kube()
        for obj in cluster.objects():
            kube.create(obj)
        nodes = [h for h in self.lab.hosts if h.is_node]
        for h in nodes:
            kube.create(cluster.node_object(h))
            if CONTROL_PLANE in h.roles:
                for pod in cluster.static_pods(h):
                    kube.create(pod)
        self.wait_cluster(kube)
        cidrs = {n["metadata"]["name"]: n["spec"]["podCIDR"]
                 for n in kube.items("/api/v1/nodes")}
        self.lab.state["pod_cidrs"] = cidrs
        for h in nodes:
            peers = [(p, cidrs[p.name]) for p in nodes if p.name != h.name]
            self.lab.runtime(h).sh(podnet.node_script(h, cidrs[h.name], peers))
        self.sync_coredns(kube)
        self.lab.state["cluster"] = "up"

    def wait_cluster(self, kube: cluster.Kube, timeout: float = 120) -> None:
        """Every Node Ready with a podCIDR, every DaemonSet and CoreDNS ready."""
        names = {h.name for h in self.lab.hosts if h.is_node}

        def settled():
            _reready(kube)
            nodes = kube.items("/api/v1/nodes")
            if {n["metadata"]["name"] for n in nodes if cluster.ready(n)
                    and n["spec"].get("podCIDR")} != names:
                return False
            for ds in kube.items("/apis/apps/v1/daemonsets"):
                st = ds.get("status", {})
                if not st.get("desiredNumberScheduled") or \
                        st.get("numberReady") != st.get("desiredNumberScheduled"):
                    return False
            pods = kube.items(COREDNS_PODS)
            pods.append(kube.create(cluster.DNSUTILS))  # again, if replaced below
            cidrs = {n["metadata"]["name"]: n["spec"].get("podCIDR") for n in nodes}
            for pod in pods:
                if _outside_pod_cidr(pod, cidrs):
                    # kwok gave it an IP before its node had a podCIDR (kwok's own default
                    # range, which no sandbox can route): a new one gets the node's
                    m = pod["metadata"]
                    kube.call("DELETE", f"/api/v1/namespaces/{m['namespace']}/pods/"
                              f"{m['name']}?gracePeriodSeconds=0", missing_ok=True)
                    return False
            return len(pods) >= 3 and all(cluster.ready(p) and p["status"].get("podIP")
                                          for p in pods)
        cluster.wait_for("the lab's Nodes, DaemonSets and CoreDNS to be ready", settled,
                         timeout)

    def sync_coredns(self, kube: cluster.Kube) -> None:
        """A sandbox and a CoreDNS process per CoreDNS pod, on the pod's node; kube-proxy's
        NAT on every node."""
        pods = [p for p in kube.items(COREDNS_PODS)
                if p["spec"].get("nodeName") and p["status"].get("podIP")
                and not p["metadata"].get("deletionTimestamp")]
        corefile = kube.call("GET", "/api/v1/namespaces/kube-system/configmaps/coredns")
        text = corefile["data"]["Corefile"]
        # The pod's in-cluster credentials, as a kubeconfig (same server: 10.96.0.1:443).
        conf = self.lab.dir / "coredns" / "kubeconfig"
        text = text.replace("kubernetes cluster.local in-addr.arpa ip6.arpa {",
                            "kubernetes cluster.local in-addr.arpa ip6.arpa {\n"
                            f"       kubeconfig {conf} coredns@kubernetes", 1)
        path = self.lab.dir / "coredns" / "Corefile"
        changed = not path.exists() or path.read_text() != text
        path.write_text(text)
        wanted = {(p["spec"]["nodeName"], f"pod:{p['metadata']['name']}") for p in pods}
        off = self.lab.state.get("powered_off", {})
        for h in self.lab.hosts:  # CoreDNS processes of pods that are gone or moved
            rt = self.lab.runtime(h)
            for key in [k for k in rt.state if k.startswith("pod:coredns")]:
                if (h.name, key) not in wanted or changed:
                    rt.stop(key)
        _drop_sandboxes(self.lab.dir, "kube-system_coredns-", {p["metadata"]["name"] for p in pods})
        endpoints, serving = [], []
        for pod in pods:
            name, node = pod["metadata"]["name"], pod["spec"]["nodeName"]
            endpoints.append(pod["status"]["podIP"])
            if node in off:
                continue  # powered off: its pods run again at power-on
            rt = self.lab.runtime(self.lab.host(node))
            pid = int(rt.sh(f"{python_m('lab.podexec')} sandbox kube-system/{name}").strip())
            rt.start(f"pod:{name}", ["nsenter", f"--net=/proc/{pid}/ns/net", "--",
                                     self.lab.state["binaries"]["coredns"], "-conf", str(path)],
                     restart=True)
            serving.append(pod["status"]["podIP"])
        cps = [h.ip for h in self.lab.hosts if CONTROL_PLANE in h.roles]
        rules = podnet.nat_rules({
            (cluster.DNS_IP, 53, "UDP"): [f"{ip}:53" for ip in endpoints],
            (cluster.DNS_IP, 53, "TCP"): [f"{ip}:53" for ip in endpoints],
            ("10.96.0.1", 443, "TCP"): [f"{ip}:6443" for ip in cps]})
        for h in self.lab.hosts:
            if h.is_node:
                (self.lab.dir / "hosts" / h.name / "nat.rules").write_text(rules)
                self.lab.runtime(h).sh(f"iptables-restore <<'EOF'\n{rules}EOF")
        self.lab.save()
        # CoreDNS serves once its kubernetes plugin has synced: wait for each pod to answer
        rt = self.lab.runtime(self.lab.host(next(h.name for h in self.lab.hosts if h.is_node
                                         and h.name not in off)))
        for ip in serving:
            query = f"dig +short +time=1 +tries=1 @{ip} kubernetes.default.svc.cluster.local"
            cluster.wait_for(f"CoreDNS on {ip} to answer", lambda q=query: re.fullmatch(
                r"[0-9.]+", rt.sh(q + " || true").strip()), 30)

    def cluster_heal(self) -> None:
        """Undo what faults did through the API; restart what they stopped."""
        if "kwok" not in self.lab.state.get("binaries", {}):
            return
        kube = self.lab.kube()
        for obj in cluster.objects():
            if obj["kind"] == "ConfigMap":
                kube.patch(f"{kube.path(obj)}/{obj['metadata']['name']}", {"data": obj["data"]})
        kube.create(cluster.DNSUTILS)
        for ds in kube.items("/apis/apps/v1/daemonsets"):
            if ds["metadata"]["name"] == "calico-node":
                kube.call("DELETE", f"/apis/apps/v1/namespaces/{ds['metadata']['namespace']}"
                          f"/daemonsets/calico-node", missing_ok=True)
        for n in kube.items("/api/v1/nodes"):
            if n.get("spec", {}).get("unschedulable"):  # kubectl uncordon
                kube.patch(f"/api/v1/nodes/{n['metadata']['name']}",
                           {"spec": {"unschedulable": None}})
            extra = [c for c in n.get("status", {}).get("conditions") or []
                     if c["type"] not in cluster.KWOK_CONDITIONS]
            if extra or any(c.get("status") == "True" for c in n["status"].get("conditions", [])
                            if c["type"] in cluster.KWOK_CONDITIONS and c["type"] != "Ready"):
                # a merge patch replaces the list: only what kwok reports, all healthy
                kube.patch(f"/api/v1/nodes/{n['metadata']['name']}/status", {"status": {
                    "conditions": [dict(c, status="False") if c["type"] != "Ready" else c
                                   for c in n["status"]["conditions"]
                                   if c["type"] in cluster.KWOK_CONDITIONS]}})
            if cluster.LAB_STATUS in n["metadata"].get("annotations", {}):
                kube.patch(f"/api/v1/nodes/{n['metadata']['name']}",
                           {"metadata": {"annotations": {cluster.LAB_STATUS: None}}})
        for pod in kube.items("/api/v1/pods"):
            if cluster.LAB_STATUS in pod["metadata"].get("annotations", {}):
                m = pod["metadata"]
                kube.call("DELETE", f"/api/v1/namespaces/{m['namespace']}/pods/{m['name']}"
                          "?gracePeriodSeconds=0", missing_ok=True)
        for ev in kube.items("/api/v1/events?labelSelector=lab%2Ffault"):
            m = ev["metadata"]
            kube.call("DELETE", f"/api/v1/namespaces/{m['namespace']}/events/{m['name']}",
                      missing_ok=True)
        self.wait_cluster(kube)
        self.sync_coredns(kube)


def _reready(kube: cluster.Kube) -> None:
    """Report Ready again for Running pods left NotReady while their node missed heartbeats
    during a fault (a kubelet would; kwok reacts only to the changes it watches)."""
    for pod in kube.items("/api/v1/pods"):
        m, st = pod["metadata"], pod.get("status", {})
        if (st.get("phase") != "Running" or m.get("deletionTimestamp") or cluster.ready(pod)
                or cluster.LAB_STATUS in (m.get("annotations") or {})):
            continue
        conds = [dict(c, status="True", reason=None) if c["type"] in ("Ready", "ContainersReady")
                 else c for c in st.get("conditions", [])]
        kube.patch(f"/api/v1/namespaces/{m['namespace']}/pods/{m['name']}/status",
                   {"status": {"conditions": conds}}, missing_ok=True)


def _outside_pod_cidr(pod: dict, cidrs: dict[str, str]) -> bool:
    ip, node = pod.get("status", {}).get("podIP"), pod.get("spec", {}).get("nodeName")
    if not ip or not cidrs.get(node):
        return False
    return ipaddress.ip_address(ip) not in ipaddress.ip_network(cidrs[node])


def _drop_sandboxes(state_dir: Path, prefix: str, keep: set[str]) -> None:
    """Kill the pause process of each sandbox whose pod is gone (a rollout replaced it)."""
    for f in (state_dir / "pods").glob(f"{prefix}*.json"):
        if f.stem.split("_", 1)[1] in keep:
            continue
        with contextlib.suppress(ValueError, KeyError, OSError):
            pid = int(json.loads(f.read_text())["pid"])
            if alive(pid):
                os.kill(pid, 9)
        f.unlink(missing_ok=True)
