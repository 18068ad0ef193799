"""What the lab is made of: hosts, addresses, names. Pure data, computed from the size."""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass
from pathlib import Path

from kubeaccept.model.roles import CONTROL_PLANE, ETCD, LB, WORKER

# RFC 2544's benchmarking range: never routed on the internet, rarely used on real networks.
NODE_NETWORK = ipaddress.ip_network("198.18.0.0/16")
GATEWAY = "198.18.0.1"  # the lab bridge's address in the root namespace (where pytest runs)
VIP = "198.18.0.100"    # controlPlaneEndpoint, served by HAProxy on the LB host
FIRST_CONTROL_PLANE = "cp1"  # where `kubeadm init` ran; the others joined
POD_SUBNET = "10.244.0.0/16"
SERVICE_SUBNET = "10.96.0.0/12"
KUBE_VERSION = "v1.37.2"  # what lab.build builds
BRIDGE = "kalab0"
NETNS_PREFIX = "kalab-"
# The PATH of the lab's own commands inside hosts and pods (kwok's gets the exec shims first).
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_STATE_DIR = Path("/var/tmp/kubeaccept-lab")
# Inside a lab host: the machine's /proc (the host's own /proc shows its PID namespace only).
HOST_PROC = "/run/kubeaccept-lab/proc"


@dataclass(frozen=True)
class LabHost:
    name: str
    index: int
    ip: str
    roles: tuple[str, ...]
    runtime: str  # "containerd" or "docker" (cri-dockerd); "" on the LB

    @property
    def netns(self) -> str:
        return NETNS_PREFIX + self.name

    @property
    def veth(self) -> str:
        return f"kl-{self.index}"

    @property
    def is_node(self) -> bool:
        return CONTROL_PLANE in self.roles or WORKER in self.roles


def plan(workers: int, control_planes: int = 3) -> list[LabHost]:
    if not 1 <= workers <= 4000:
        raise ValueError(f"--workers must be between 1 and 4000, not {workers}")
    hosts = [LabHost("lb1", 0, "198.18.0.10", (LB,), "")]
    for i in range(1, control_planes + 1):
        hosts.append(LabHost(f"cp{i}", i, f"198.18.0.{10 + i}", (CONTROL_PLANE, ETCD),
                             "containerd"))
    base = int(ipaddress.ip_address("198.18.1.0"))
    for i in range(1, workers + 1):
        # Alternate runtimes so that both Docker's and containerd's settings are exercised.
        hosts.append(LabHost(f"w{i}", control_planes + i, str(ipaddress.ip_address(base + i)),
                             (WORKER,), "docker" if i % 2 else "containerd"))
    return hosts


def to_json(hosts: list[LabHost]) -> list[dict]:
    return [{**asdict(h), "roles": list(h.roles)} for h in hosts]  # as lab.json holds them


def from_json(data: list[dict]) -> list[LabHost]:
    return [LabHost(**{**d, "roles": tuple(d["roles"])}) for d in data]
