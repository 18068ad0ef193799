"""The lab's state in one small object, kept in one JSON file (hosts, pids, faults)."""

from __future__ import annotations

import json
from pathlib import Path

from kubeaccept.model.roles import CONTROL_PLANE

from . import cluster, controlplane
from .hosts import HostRuntime
from .plan import SYSTEM_PATH, LabHost, from_json
from .system import LabError


class LabState:
    """The lab's state: its directory, lab.json (hosts, pids, faults, binaries) and what
    follows from them (each host's runtime, the admin kubeconfig, the inventory). What the
    parts of the lab (inside, provision, power, faults) take instead of the whole Lab."""

    def __init__(self, state_dir: Path):
        self.dir = state_dir
        self.state_file = state_dir / "lab.json"
        self.state = json.loads(self.state_file.read_text()) if self.state_file.exists() else {}

    def kube(self) -> cluster.Kube:
        return cluster.Kube(self.dir / "admin.conf")

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
