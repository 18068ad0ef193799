"""Bring the lab up and down, and keep its state (hosts, pids, faults) in one JSON file."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from kubeaccept.model.roles import CONTROL_PLANE

from . import controlplane, power, provision
from .build import DEFAULT_CACHE_DIR
from .faults import FAULTS
from .inside import Inside
from .plan import (
    BRIDGE,
    GATEWAY,
    NETNS_PREFIX,
    NODE_NETWORK,
    POD_SUBNET,
    VIP,
    plan,
    to_json,
)
from .state import LabState
from .system import LabError, alive, check_machine, run


class Lab(LabState):
    """The lab's life: up, inject, heal, power, down (its state: LabState)."""

    @property
    def inside(self) -> Inside:
        """The Kubernetes cluster inside the lab (objects, Nodes, pod network, CoreDNS)."""
        return Inside(self)

    # --- up -------------------------------------------------------------------------------
    def up(self, workers: int, control_plane: bool = False,
           cache_dir: Path = DEFAULT_CACHE_DIR) -> float:
        check_machine()
        nodes, ranges = workers + 3, 2 ** (24 - ipaddress.ip_network(POD_SUBNET).prefixlen)
        if control_plane and nodes > ranges:
            # kube-controller-manager's node IPAM: one /24 of the pod subnet per Node; the
            # rest get "CIDRNotAvailable" and never a podCIDR (a real kubeadm cluster too)
            raise LabError(f"{nodes} nodes do not fit the lab's pod subnet {POD_SUBNET}: it "
                           f"holds {ranges} node /24 ranges (--node-cidr-mask-size=24), so at "
                           f"most {ranges - 3} workers with --control-plane")
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
        provision.prepare_files(self, wanted)
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
            self.inside.cluster_up()
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
            self.inside.sync_coredns(self.kube())
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
        self.inside.cluster_heal()
        self.state["faults"] = []
        self.save()

    # --- status / down --------------------------------------------------------------------
    def problems(self) -> list[str]:
        out = []
        pids = self.state.get("pids", {})
        for h in self.hosts:
            if h.name in self.state.get("powered_off", {}):
                out.append(f"{h.name}: powered off (python -m lab power-on "
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


