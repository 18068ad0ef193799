"""What the Kubernetes API says about the cluster, read once per run: plain JSON dicts as the
API returns them, so that checks are pure functions and unit tests need no cluster."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime


@dataclass(frozen=True)
class ApiState:
    endpoint: str                       # the apiserver URL that answered
    nodes: list[dict] = field(default_factory=list)
    pods: list[dict] = field(default_factory=list)         # all namespaces
    events: list[dict] = field(default_factory=list)       # core/v1 Events, all namespaces
    daemonsets: list[dict] = field(default_factory=list)
    deployments: list[dict] = field(default_factory=list)
    services: list[dict] = field(default_factory=list)
    # "namespace/name" -> ConfigMap, for the ones checks read: kube-system/kubeadm-config,
    # kube-flannel/kube-flannel-cfg or kube-system/kube-flannel-cfg, kube-system/coredns,
    # kube-system/cilium-config
    configmaps: dict[str, dict] = field(default_factory=dict)
    # Calico's FelixConfiguration objects (crd.projectcalico.org/v1), empty without Calico
    felix_configurations: list[dict] = field(default_factory=list)
    # Calico's IPPools (crd.projectcalico.org/v1, else projectcalico.org/v3 through Calico's
    # API server) and Cilium's CiliumNodes (cilium.io/v2): empty where the CRD is absent
    calico_ippools: list[dict] = field(default_factory=list)
    cilium_nodes: list[dict] = field(default_factory=list)
    kube_system_secrets: frozenset[str] = frozenset()      # names only, never the data
    now: datetime = field(default_factory=lambda: datetime.now(UTC))


def parse_time(text: str | None) -> datetime | None:
    """The API's RFC 3339 timestamps ("2026-11-23T22:17:45Z", maybe with micro-seconds)."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass(frozen=True)
class Answer:
    """An apiserver endpoint's HTTP answer (/readyz?verbose), or why there was none."""
    url: str
    status: int | None  # None: no HTTP answer
    body: str
