"""Checks: pure functions from facts to Findings. Each module holds a few related checks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from kubeaccept.facts import NodeFacts
from kubeaccept.model.hosts import Host, Inventory, node_ip  # noqa: F401 - checks use it from here
from kubeaccept.model.settings import Settings


@dataclass(frozen=True)
class ClusterContext:
    inventory: Inventory
    settings: Settings
    facts: Mapping[str, NodeFacts | str]  # every host's facts, or why there are none


@dataclass(frozen=True)
class NodeContext:
    host: Host
    facts: NodeFacts
    inventory: Inventory
    settings: Settings = field(default_factory=Settings)
    # Other hosts' facts, or the one-line reason they could not be gathered.
    peers: Mapping[str, NodeFacts | str] = field(default_factory=dict)

    @property
    def ip(self) -> str:
        return node_ip(self.host)

    @property
    def version(self) -> tuple[int, int] | None:
        return self.settings.kube_version or self.facts.kube_version
