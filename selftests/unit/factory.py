"""Build NodeFacts/NodeContext by hand, as gather.sh would print them."""

from __future__ import annotations

import base64
import dataclasses

from kubeaccept.checks import ClusterContext, NodeContext
from kubeaccept.checks.all import load
from kubeaccept.checks.cni import ClusterCni, CniDaemonSet, image_version
from kubeaccept.facts import NodeFacts
from kubeaccept.model.hosts import Host, Inventory
from kubeaccept.model.registry import run as judge  # noqa: F401 - the tests' way to run a check
from kubeaccept.model.roles import CONTROL_PLANE, WORKER
from kubeaccept.model.settings import Settings

load()  # every check registered: judge(check_id, **needs) finds it

HEALTHY_SYSCTL = """\
net.ipv4.conf.all.rp_filter 1
net.ipv4.conf.default.rp_filter 1
net.ipv4.conf.eth0.rp_filter 1
net.ipv4.conf.lo.rp_filter 0
net.ipv4.ip_forward 1
net.bridge.bridge-nf-call-iptables 1"""

KUBELET = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: systemd\n"
FLAGS_CONTAINERD = 'KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///run/containerd/containerd.sock"\n'
CONTAINERD = """version = 2
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  SystemdCgroup = true
"""


def facts(name="n1", sections=None, files=None, **named) -> NodeFacts:
    s = {"sysctl": HEALTHY_SYSCTL, "swaps": "Filename Type Size Used Priority",
         "cgroupfs": "cgroup2fs", "end": ""}
    default_files = {"/var/lib/kubelet/config.yaml": KUBELET,
                     "/var/lib/kubelet/kubeadm-flags.env": FLAGS_CONTAINERD,
                     "/etc/containerd/config.toml": CONTAINERD,
                     "/etc/resolv.conf": "nameserver 192.0.2.53\n",
                     "/etc/fstab": "UUID=x / ext4 defaults 0 1\n#/swap.img none swap sw 0 0\n"}
    default_files.update(files or {})
    for path, text in default_files.items():
        s[f"file {path}"] = "!missing" if text is None else base64.b64encode(text.encode()).decode()
    s.update({k.replace("_", "-"): v for k, v in named.items()})
    s.update(sections or {})
    return NodeFacts(name, s)


def host(name="n1", ip="192.0.2.11", roles=(WORKER,)) -> Host:
    return Host(name=name, address=ip, roles=frozenset(roles), groups=frozenset())


def context(f: NodeFacts | None = None, h: Host | None = None, peers=(), **kw) -> NodeContext:
    h = h or host()
    inv = Inventory(source="test", hosts=(h, *[p for p, _ in peers]), cluster_vars={})
    return NodeContext(h, f or facts(h.name), inv, peers={p.name: pf for p, pf in peers}, **kw)


CP = (CONTROL_PLANE,)


def runtime_files(files: dict[str, str | bytes]) -> str:
    """The `runtime-files` section gather.sh prints: one "PATH BASE64" line per file."""
    return "\n".join(f"{path} {base64.b64encode(t if isinstance(t, bytes) else t.encode()).decode()}"
                     for path, t in files.items())


def runtime_versions(**outputs: str) -> str:
    """The `runtime-versions` section: "PROGRAM `PROGRAM --version` output" lines
    (cri_dockerd for cri-dockerd)."""
    return "\n".join(f"{p.replace('_', '-')} {text}" for p, text in outputs.items())


def on_cluster(settings: Settings | None = None, hosts=(), facts=None, nodes=(), ips=(),
               inventory: Inventory | None = None) -> ClusterContext:
    """A ClusterContext for a cluster check: `hosts` as given, `nodes` as (name, ip) workers,
    `ips` as workers with those addresses; every host's facts from `facts`."""
    all_hosts = [*hosts, *(host(n, ip) for n, ip in nodes),
                 *(host(f"h{i}", ip) for i, ip in enumerate(ips))]
    inv = inventory or Inventory(source="test", hosts=tuple(all_hosts), cluster_vars={})
    return ClusterContext(inv, settings or Settings(), dict(facts or {}))


def dns_node(host_name: str, answer, settings: Settings) -> NodeContext:
    """The node context of node_cluster_dns: its facts hold `answer` (a NodeDnsAnswer, or None
    when the query was not made), as NodeFacts.dns decodes gather.sh's `dns` section."""
    f = facts(host_name)
    f.__dict__["dns"] = None if answer is None else dataclasses.asdict(answer)
    return NodeContext(host(host_name), f, Inventory("test", (host(host_name),), {}), settings)


NO_API = ClusterCni(problem="no API in this test")


def cni_cluster(name="calico-node", image="docker.io/calico/node:v3.11.3", nodes=("n1",),
                exception=None, namespace="kube-system") -> ClusterCni:
    """A ClusterCni with one CNI DaemonSet whose pod runs on `nodes` (what cni.cluster_view
    reads from the API: the DaemonSet, its agent container's image, its pods' nodeName)."""
    from kubeaccept.checks.cni import daemonset_cnis
    cnis = daemonset_cnis(name)
    return ClusterCni("", (CniDaemonSet(f"{namespace}/{name}", cnis, image, image_version(image)),),
                      {n: frozenset(cnis) for n in nodes}, {n: () for n in nodes}, exception)
