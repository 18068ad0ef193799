"""What a fault is: what it does to a host, what `heal` undoes, and what the suite must say."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..hosts import HostRuntime


@dataclass(frozen=True)
class Fault:
    name: str
    what: str
    host: str              # default target
    runtime: str = ""      # the target must use this container runtime
    kernel_wide: bool = False  # the kernel has one of these for all namespaces: every node sees it
    # test id template ({host} = the target) -> words its failure message must contain
    expect: tuple[tuple[str, tuple[str, ...]], ...] = ()
    action: Callable[[HostRuntime], None] | None = None
    restart: tuple[str, ...] = ()  # processes `heal` restarts on the target (they hold state)
    control_plane: bool = False  # needs the real control plane (`up --control-plane`)
    sync_dns: bool = False  # the lab re-reads the coredns ConfigMap and restarts CoreDNS
    notes: tuple[tuple[str, tuple[str, ...]], ...] = ()  # passing tests' notes must say
    # While a control-plane component is broken, API reads and exec through the load balancer
    # can fail for a few seconds wherever it still routes: these tests may fail too.
    may_also_fail: tuple[str, ...] = ()
    undo: Callable[[HostRuntime], None] | None = None  # what `heal` does before re-configuring
    flag: str = ""  # a lab state flag the fault sets (heal clears it)
