"""Bring the lab up and down, and keep its state (hosts, pids, faults) in one JSON file."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import shlex
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from ..roles import CONTROL_PLANE, ETCD, LB, WORKER
from . import cluster, controlplane, nodefiles, pki, podnet, power
from .build import DEFAULT_CACHE_DIR
from .faults import FAULTS
from .hosts import HostRuntime, listeners, sshd_config
from .nodefiles import host_files, write_tree
from .plan import (
    BRIDGE,
    GATEWAY,
    NETNS_PREFIX,
    NODE_NETWORK,
    POD_SUBNET,
    SERVICE_SUBNET,
    SYSTEM_PATH,
    VIP,
    LabHost,
    from_json,
    plan,
    to_json,
)
from .system import LabError, alive, check_machine, run

COREDNS_PODS = cluster.COREDNS_PODS
# Commands `kubectl exec` can run in a lab pod (see podexec.py).
POD_COMMANDS = ("nslookup", "dig", "host", "cat", "sh", "ip", "getent", "ping")
GROUPS = {CONTROL_PLANE: "kube_control_plane", WORKER: "kube_node", ETCD: "etcd", LB: "lb"}


class Lab:
    def __init__(self, state_dir: Path):
        self.dir = state_dir
        self.state_file = state_dir / "lab.json"
        self.state = json.loads(self.state_file.read_text()) if self.state_file.exists() else {}

    def reload(self) -> None:
        """Re-read lab.json: another process (the lab CLI, e.g. a power command run by the
        failover gate) may have changed it."""
        self.state = json.loads(self.state_file.read_text()) if self.state_file.exists() else {}

    @property
    def hosts(self) -> list[LabHost]:
        return from_json(self.state.get("hosts", []))

    @property
    def inventory(self) -> Path:
        return self.dir / "inventory" / "hosts.yaml"

    def save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=1))
        tmp.replace(self.state_file)

    def runtime(self, host: LabHost) -> HostRuntime:
        bins = {k: Path(v) for k, v in self.state.get("binaries", {}).items()}
        components = {}
        if bins and CONTROL_PLANE in host.roles:
            cps = [h for h in self.hosts if CONTROL_PLANE in h.roles]
            components = controlplane.argvs(bins, host, cps,
                                            self.state.get("etcd_state", "new"))
        if "kwok" in bins and host.is_node:
            # kwok is this node's kubelet; its PATH starts with the pod-exec shims
            components["kubelet"] = ["env", f"PATH={self.dir / 'podexec'}:{SYSTEM_PATH}",
                                     *cluster.kwok_argv(str(self.dir / "bin" / "kubelet"),
                                                        host)]
        return HostRuntime(host, self.dir, self.state.setdefault("pids", {}), components)

    def host(self, name: str) -> LabHost:
        for h in self.hosts:
            if h.name == name:
                return h
        raise LabError(f"no lab host {name!r}; hosts: {', '.join(h.name for h in self.hosts)}")

    # --- up -------------------------------------------------------------------------------
    def up(self, workers: int, control_plane: bool = False,
           cache_dir: Path = DEFAULT_CACHE_DIR) -> float:
        check_machine()
        wanted = plan(workers)
        # Build (or find in the cache) before touching anything: no half-started lab.
        bins = ({k: str(v) for k, v in controlplane.binaries(cache_dir).items()}
                if control_plane else {})
        if (self.state.get("hosts") == to_json(wanted) and not self.problems()
                and self.state.get("binaries", {}) == bins
                and (self.state.get("cluster") or "kwok" not in bins)):
            return 0.0
        start = time.monotonic()
        self.down()
        _check_addresses()
        self.state = {"hosts": to_json(wanted), "pids": {}, "faults": [], "binaries": bins,
                      "sysctl_restore": _size_neighbour_table(len(wanted))}
        self.save()
        self._prepare_files(wanted)
        run("ip", "link", "add", BRIDGE, "type", "bridge")
        # Lab traffic between namespaces must not meet the machine's own iptables.
        run("ip", "link", "set", BRIDGE, "type", "bridge", "nf_call_iptables", "0")
        run("ip", "addr", "add", f"{GATEWAY}/{NODE_NETWORK.prefixlen}", "dev", BRIDGE)
        run("ip", "link", "set", BRIDGE, "up")
        try:
            for h in wanted:
                self.runtime(h).create()
                self.save()
            with ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(lambda h: self.runtime(h).configure(), wanted))
            self.save()
            with ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(lambda h: self.runtime(h).wait_ready(), wanted))
            self.wait_control_plane()
            # from now on an etcd member started with an empty data dir joins the cluster
            self.state["etcd_state"] = "existing"
            self.cluster_up()
        finally:
            self.save()
        return time.monotonic() - start

    def wait_control_plane(self) -> None:
        if not self.state.get("binaries"):
            return
        ca = (self.dir / "hosts" / "cp1" / "files" / "etc/kubernetes/pki/ca.crt").read_bytes()
        for h in self.hosts:
            if CONTROL_PLANE in h.roles:
                controlplane.wait_ready(ca, h.ip)
        controlplane.wait_ready(ca, VIP, timeout=30)

    def _prepare_files(self, hosts: list[LabHost]) -> None:
        ssh = self.dir / "ssh"
        ssh.mkdir(parents=True, exist_ok=True)
        key = ssh / "id_ed25519"
        if not key.exists():
            run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "kubeaccept-lab", "-f",
                str(key))
        (ssh / "authorized_keys").write_text((ssh / "id_ed25519.pub").read_text())
        known = []
        for h in hosts:
            d = self.dir / "hosts" / h.name
            d.mkdir(parents=True, exist_ok=True)
            hk = d / "ssh_host_ed25519_key"
            if not hk.exists():
                run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", h.name, "-f", str(hk))
            known.append(f"{h.ip} {' '.join(hk.with_suffix('.pub').read_text().split()[:2])}")
            (d / "sshd_config").write_text(sshd_config(h, d, ssh / "authorized_keys"))
            if LB in h.roles:
                cps = [c for c in hosts if CONTROL_PLANE in c.roles]
                write_tree(d / "files", {"/etc/haproxy/haproxy.cfg":
                                         nodefiles.haproxy_cfg(cps).encode()})
        (ssh / "known_hosts").write_text("\n".join(known) + "\n")
        cas = pki.ClusterCAs.new()
        for h in hosts:
            if h.is_node:
                write_tree(self.dir / "hosts" / h.name / "files", host_files(h, cas))
        admin = self.dir / "hosts" / "cp1" / "files" / "etc/kubernetes/admin.conf"
        if admin.exists():
            shutil.copy(admin, self.dir / "admin.conf")
        if "kwok" in self.state.get("binaries", {}):
            self._kubelet_files(hosts, cas)
        host_bin = self.dir / "hostbin"
        host_bin.mkdir(exist_ok=True)
        if "etcdctl" in self.state.get("binaries", {}):
            (host_bin / "etcdctl").symlink_to(self.state["binaries"]["etcdctl"])
        bin_dir = self.dir / "bin"
        bin_dir.mkdir(exist_ok=True)
        socat = shutil.which("socat")
        # Listeners run socat under the component's name, so `ss -p` names the component.
        for name in {n for h in hosts for n, _, _ in listeners(h)}:
            link = bin_dir / name
            if not link.exists():
                link.symlink_to(socat)
        self.inventory.parent.mkdir(parents=True, exist_ok=True)
        self.inventory.write_text(self._inventory_yaml(hosts))

    def _kubelet_files(self, hosts: list[LabHost], cas: pki.ClusterCAs) -> None:
        """kwok's credentials, serving certificate and Exec rules on every node; the
        shims that route `kubectl exec` into a pod's sandbox; CoreDNS's kubeconfig."""
        exec_dir = self.dir / "podexec"
        exec_dir.mkdir(exist_ok=True)
        for cmd in POD_COMMANDS:
            shim = exec_dir / cmd
            shim.write_text(
                "#!/bin/sh\n# `kubectl exec POD -- CMD` on a lab node: CMD in the pod's sandbox\n"
                'if [ -n "$KUBEACCEPT_POD" ]; then\n'
                f'  exec {sys.executable} -m kubeaccept.lab.podexec exec "$KUBEACCEPT_POD" '
                f'{cmd} "$@"\nfi\n'
                f'PATH={SYSTEM_PATH} exec {cmd} "$@"\n')
            shim.chmod(0o755)
        kubelet = self.dir / "bin" / "kubelet"
        kubelet.parent.mkdir(exist_ok=True)
        if not kubelet.exists():
            kubelet.symlink_to(self.state["binaries"]["kwok"])  # `ss -p` shows "kubelet"
        user = pki.issue("kubeaccept-lab-kwok", cas.ca, orgs=["system:masters"],
                         usages=[pki.CLIENT])
        conf = pki.kubeconfig(f"https://{VIP}:6443", cas.ca, user, "kwok")
        (self.dir / "coredns").mkdir(exist_ok=True)
        (self.dir / "coredns" / "kubeconfig").write_bytes(
            pki.kubeconfig("https://10.96.0.1:443", cas.ca, user, "coredns"))
        for h in hosts:
            if not h.is_node:
                continue
            cert, key = pki.issue(f"{h.name}", cas.ca, usages=[pki.SERVER], dns=[h.name],
                                  ips=[h.ip]).pem()
            write_tree(self.dir / "hosts" / h.name / "files", {
                cluster.KWOK_CONF: conf,
                "/var/lib/kubelet/pki/kubelet.crt": cert,
                "/var/lib/kubelet/pki/kubelet.key": key,
                "/etc/kwok/kwok.yaml": cluster.kwok_config().encode()})

    # --- the cluster inside: objects, nodes, pod network, CoreDNS --------------------------
    def kube(self) -> cluster.Kube:
        return cluster.Kube(self.dir / "admin.conf")

    def cluster_up(self) -> None:
        if "kwok" not in self.state.get("binaries", {}):
            return
        kube = self.kube()
        for obj in cluster.objects():
            kube.create(obj)
        nodes = [h for h in self.hosts if h.is_node]
        for h in nodes:
            kube.create(cluster.node_object(h))
            if CONTROL_PLANE in h.roles:
                for pod in cluster.static_pods(h):
                    kube.create(pod)
        self.wait_cluster(kube)
        cidrs = {n["metadata"]["name"]: n["spec"]["podCIDR"]
                 for n in kube.items("/api/v1/nodes")}
        self.state["pod_cidrs"] = cidrs
        for h in nodes:
            peers = [(p, cidrs[p.name]) for p in nodes if p.name != h.name]
            self.runtime(h).sh(podnet.node_script(h, cidrs[h.name], peers))
        self.sync_coredns(kube)
        self.state["cluster"] = "up"

    def wait_cluster(self, kube: cluster.Kube, timeout: float = 120) -> None:
        """Every Node Ready with a podCIDR, every DaemonSet and CoreDNS ready."""
        names = {h.name for h in self.hosts if h.is_node}

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
            pods.append(kube.get(cluster.DNSUTILS))
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
        conf = self.dir / "coredns" / "kubeconfig"
        text = text.replace("kubernetes cluster.local in-addr.arpa ip6.arpa {",
                            "kubernetes cluster.local in-addr.arpa ip6.arpa {\n"
                            f"       kubeconfig {conf} coredns@kubernetes", 1)
        path = self.dir / "coredns" / "Corefile"
        changed = not path.exists() or path.read_text() != text
        path.write_text(text)
        wanted = {(p["spec"]["nodeName"], f"pod:{p['metadata']['name']}") for p in pods}
        off = self.state.get("powered_off", {})
        for h in self.hosts:  # CoreDNS processes of pods that are gone or moved
            rt = self.runtime(h)
            for key in [k for k in rt.state if k.startswith("pod:coredns")]:
                if (h.name, key) not in wanted or changed:
                    rt.stop(key)
        _drop_sandboxes(self.dir, "kube-system_coredns-", {p["metadata"]["name"] for p in pods})
        endpoints, serving = [], []
        for pod in pods:
            name, node = pod["metadata"]["name"], pod["spec"]["nodeName"]
            endpoints.append(pod["status"]["podIP"])
            if node in off:
                continue  # powered off: its pods run again at power-on
            rt = self.runtime(self.host(node))
            pid = int(rt.sh(f"{sys.executable} -m kubeaccept.lab.podexec sandbox "
                            f"kube-system/{name}").strip())
            rt.start(f"pod:{name}", ["nsenter", f"--net=/proc/{pid}/ns/net", "--",
                                     self.state["binaries"]["coredns"], "-conf", str(path)],
                     restart=True)
            serving.append(pod["status"]["podIP"])
        cps = [h.ip for h in self.hosts if CONTROL_PLANE in h.roles]
        rules = podnet.nat_rules({
            (cluster.DNS_IP, 53, "UDP"): [f"{ip}:53" for ip in endpoints],
            (cluster.DNS_IP, 53, "TCP"): [f"{ip}:53" for ip in endpoints],
            ("10.96.0.1", 443, "TCP"): [f"{ip}:6443" for ip in cps]})
        for h in self.hosts:
            if h.is_node:
                (self.dir / "hosts" / h.name / "nat.rules").write_text(rules)
                self.runtime(h).sh(f"iptables-restore <<'EOF'\n{rules}EOF")
        self.save()
        # CoreDNS serves once its kubernetes plugin has synced: wait for each pod to answer
        rt = self.runtime(self.host(next(h.name for h in self.hosts if h.is_node
                                         and h.name not in off)))
        for ip in serving:
            query = f"dig +short +time=1 +tries=1 @{ip} kubernetes.default.svc.cluster.local"
            cluster.wait_for(f"CoreDNS on {ip} to answer", lambda q=query: re.fullmatch(
                r"[0-9.]+", rt.sh(q + " || true").strip()), 30)

    def cluster_heal(self) -> None:
        """Undo what faults did through the API; restart what they stopped."""
        if "kwok" not in self.state.get("binaries", {}):
            return
        kube = self.kube()
        for obj in cluster.objects():
            if obj["kind"] == "ConfigMap":
                kube.patch(f"{kube.path(obj)}/{obj['metadata']['name']}", {"data": obj["data"]})
        kube.create(cluster.DNSUTILS)
        for ds in kube.items("/apis/apps/v1/daemonsets"):
            if ds["metadata"]["name"] == "calico-node":
                kube.call("DELETE", f"/apis/apps/v1/namespaces/{ds['metadata']['namespace']}"
                          f"/daemonsets/calico-node", missing_ok=True)
        for n in kube.items("/api/v1/nodes"):
            if cluster.LAB_STATUS in n["metadata"].get("annotations", {}):
                kube.patch(f"/api/v1/nodes/{n['metadata']['name']}",
                           {"metadata": {"annotations": {cluster.LAB_STATUS: None}}})
        for pod in kube.items("/api/v1/pods"):
            if cluster.LAB_STATUS in pod["metadata"].get("annotations", {}):
                m = pod["metadata"]
                kube.call("DELETE", f"/api/v1/namespaces/{m['namespace']}/pods/{m['name']}"
                          "?gracePeriodSeconds=0", missing_ok=True)
        for ev in kube.items("/api/v1/events?labelSelector=kubeaccept.lab%2Ffault"):
            m = ev["metadata"]
            kube.call("DELETE", f"/api/v1/namespaces/{m['namespace']}/events/{m['name']}",
                      missing_ok=True)
        self.wait_cluster(kube)
        self.sync_coredns(kube)

    def _inventory_yaml(self, hosts: list[LabHost]) -> str:
        ssh = self.dir / "ssh"
        lab_cli = (f"{sys.executable} -m kubeaccept.lab --state-dir "
                   f"{shlex.quote(str(self.dir))}")
        groups: dict[str, dict] = {g: {"hosts": {}} for g in GROUPS.values()}
        for h in hosts:
            for role in h.roles:
                groups[GROUPS[role]]["hosts"][h.name] = {"ansible_host": h.ip, "ip": h.ip}
        doc = {"all": {
            "vars": {
                "ansible_user": "root",
                "ansible_ssh_private_key_file": str(ssh / "id_ed25519"),
                "ansible_ssh_common_args":
                    f"-o UserKnownHostsFile={ssh / 'known_hosts'} -o StrictHostKeyChecking=yes",
                "kube_pods_subnet": POD_SUBNET,
                "kube_service_addresses": SERVICE_SUBNET,
                "loadbalancer_apiserver": {"address": VIP, "port": 6443},
                # the failover gate's power control: the lab's own "BMC"
                "kubeaccept_power_off": f"{lab_cli} power-off {{host}}",
                "kubeaccept_power_on": f"{lab_cli} power-on {{host}}",
            },
            "children": {**groups, "k8s_cluster": {"children": {
                "kube_control_plane": None, "kube_node": None}}},
        }}
        return ("# Written by `python -m kubeaccept.lab up`: the lab's hosts, not a real cluster.\n"
                + yaml.safe_dump(doc, sort_keys=False))

    # --- faults ---------------------------------------------------------------------------
    def inject(self, name: str, host_name: str | None = None):
        self.reload()
        fault = FAULTS.get(name)
        if fault is None:
            raise LabError(f"no fault {name!r}; faults: {', '.join(sorted(FAULTS))}")
        host = self.host(host_name or fault.host)
        if fault.runtime and host.runtime != fault.runtime:
            raise LabError(f"{fault.name} needs a {fault.runtime} host; {host.name} uses "
                           f"{host.runtime or 'none'}")
        fault.action(self.runtime(host))
        if fault.flag:
            self.state[fault.flag] = True
        self.state.setdefault("faults", []).append({"fault": fault.name, "host": host.name})
        if fault.sync_dns:
            self.sync_coredns(self.kube())
        self.save()
        return fault, host

    def heal(self) -> None:
        """Every host back to its healthy configuration, whatever was injected."""
        self.reload()
        swapfile = self.dir / "swapfile"
        if swapfile.exists():
            run("swapoff", str(swapfile), check=False)
            swapfile.unlink()
        for f in self.state.get("faults", []):
            self.state.pop(FAULTS[f["fault"]].flag, None)
        for name in list(self.state.get("powered_off", {})):
            power.power_on(self, name, sync=False)  # cluster_heal syncs below
        for f in self.state.get("faults", []):
            if FAULTS[f["fault"]].undo:
                FAULTS[f["fault"]].undo(self.runtime(self.host(f["host"])))
            rt = self.runtime(self.host(f["host"]))
            for name in FAULTS[f["fault"]].restart:  # running with what the fault changed
                rt.stop(name)
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda h: self.runtime(h).configure(), self.hosts))
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda h: self.runtime(h).wait_ready(), self.hosts))
        self.wait_control_plane()
        self.cluster_heal()
        self.state["faults"] = []
        self.save()

    # --- status / down --------------------------------------------------------------------
    def problems(self) -> list[str]:
        out = []
        pids = self.state.get("pids", {})
        for h in self.hosts:
            if h.name in self.state.get("powered_off", {}):
                out.append(f"{h.name}: powered off (python -m kubeaccept.lab power-on "
                           f"{h.name})")
                continue
            for key, pid in sorted(pids.get(h.name, {}).items()):
                if not alive(pid):
                    out.append(f"{h.name}: {key} (pid {pid}) is not running")
            if not pids.get(h.name):
                out.append(f"{h.name}: not started")
        return out

    def down(self) -> list[str]:
        """Remove everything the lab made; returns what it removed."""
        removed = []
        names = set(run("ip", "netns", "list", check=False).split())
        for ns in sorted(n for n in names if n.startswith(NETNS_PREFIX)):
            pids = run("ip", "netns", "pids", ns, check=False).split()
            for pid in pids:
                run("kill", "-9", pid, check=False)  # restart loops included
            run("ip", "netns", "del", ns, check=False)
            removed.append(f"netns {ns} ({len(pids)} processes)")
        for pid in _all_pids(self.state) + _pause_pids(self.dir):
            # each leads its own process group (spawn uses setsid), which outlives a leader
            # killed above: CoreDNS under its restart loop lives in a pod's namespace, out of
            # reach of `ip netns pids`
            run("kill", "-9", "--", f"-{pid}", check=False)
            if alive(pid):
                run("kill", "-9", str(pid), check=False)
        # The kernel frees a namespace's veth asynchronously: delete what is left, and wait.
        deadline = time.monotonic() + 15
        while links := _lab_links():
            for link in links:
                run("ip", "link", "del", link, check=False)
            if time.monotonic() > deadline:
                raise LabError(f"could not remove links {', '.join(links[:5])}")
            time.sleep(0.1)
        for key, value in self.state.get("sysctl_restore", {}).items():
            _write_sysctl(key, value)
            removed.append(f"{key} restored to {value}")
        if Path(f"/sys/class/net/{BRIDGE}").exists():
            run("ip", "link", "del", BRIDGE)
            removed.append(f"bridge {BRIDGE}")
        swapfile = self.dir / "swapfile"
        if swapfile.exists():
            run("swapoff", str(swapfile), check=False)
            removed.append("swap file")
        if self.dir.exists():
            shutil.rmtree(self.dir)
            removed.append(f"state {self.dir}")
        self.state = {}
        return removed

    def logins(self) -> dict[str, int]:
        """SSH logins each host's sshd accepted since the lab came up."""
        return self._sshd_count("Accepted publickey")

    def commands(self) -> dict[str, int]:
        """Remote commands each host's sshd ran (LogLevel VERBOSE logs each session)."""
        return self._sshd_count("Starting session: command")

    def _sshd_count(self, words: str) -> dict[str, int]:
        out = {}
        for h in self.hosts:
            log = self.dir / "hosts" / h.name / "sshd.log"
            text = log.read_text(errors="replace") if log.exists() else ""
            out[h.name] = text.count(words)
        return out


def _lab_links() -> list[str]:
    return [name for name in os.listdir("/sys/class/net") if name.startswith("kl-")]


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


def _pause_pids(state_dir: Path) -> list[int]:
    """The pause processes holding pod sandboxes (see podexec.py)."""
    out = []
    for f in (state_dir / "pods").glob("*.json"):
        with contextlib.suppress(ValueError, KeyError, OSError):
            out.append(int(json.loads(f.read_text())["pid"]))
    return out


def _all_pids(state: dict) -> list[int]:
    return [p for host in state.get("pids", {}).values() for p in host.values() if p]


NEIGH = "/proc/sys/net/ipv4/neigh/default/gc_thresh{}"


def _write_sysctl(path: str, value: int) -> None:
    Path(path).write_text(f"{value}\n")


def _size_neighbour_table(hosts: int) -> dict[str, int]:
    """The ARP table is one for all namespaces (default limit 1024 entries); a lab of hundreds
    of hosts needs more, or connections fail with "neighbor table overflow!". Returns the
    original values of what it raised, for `down` to restore."""
    original = {}
    for level, per_host in ((1, 4), (2, 8), (3, 16)):
        path = NEIGH.format(level)
        current = int(Path(path).read_text())
        if current < per_host * hosts:
            original[path] = current
            _write_sysctl(path, per_host * hosts)
    return original


def _check_addresses() -> None:
    """Refuse to shadow a network this machine already routes."""
    for line in run("ip", "-4", "route", "show").splitlines():
        dest = line.split()[0]
        if dest == "default":
            continue
        net = ipaddress.ip_network(dest, strict=False)
        if net.overlaps(NODE_NETWORK):
            raise LabError(f"this machine already routes {net} ({line.strip()}), which overlaps "
                           f"the lab's {NODE_NETWORK}: remove that route or run `down` first")


