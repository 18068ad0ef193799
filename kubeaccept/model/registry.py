"""One place declares each check: `@check(...)` on a function `fn(ctx) -> list[Finding]`.
The function is the check: what it returns is stamped with its id here (it never writes it).

The test items, `--kubeaccept-list`, the README's and docs/checks.md's tables, the reports'
areas and the self-tests' expected check lists all come from REGISTRY. This module knows
nothing of pytest (kubeaccept.suite.tests turns entries into test functions)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

# The report's column groups, in display order.
AREAS = ("node", "network", "control plane", "etcd", "DNS", "HA", "baseline")

# What a check may ask its ctx for, and the pytest fixture that provides it.
NEEDS = {
    "node": "node",  # NodeContext: the host under test, its facts, its peers' facts
    "cluster": "cluster",  # ClusterContext: every host's facts
    "api": "api",  # ApiState: the API's objects, read once per run
    "readyz": "apiserver_readyz",  # each apiserver's and the endpoint's /readyz?verbose
    "dns_lookup": "dns_lookup",  # nslookup from the dnsutils pod, or why there is none
    "cluster_cni": "cluster_cni",  # the CNI's DaemonSets and pods (checks.cni.ClusterCni)
    "baseline": "kubeaccept_baseline",  # the --compare-baseline file, and where to record
}


class CannotCheck(Exception):  # noqa: N818 - reads as what it says
    """The check cannot run with this inventory (e.g. it has no control plane): the test
    fails with this message, no traceback."""


@dataclass(frozen=True)
class Check:
    id: str
    title: str  # one line: what passes (the test's docstring, the README's table)
    area: str
    roles: tuple[str, ...]  # per host of these roles; () = once per cluster
    needs: tuple[str, ...]  # keys of NEEDS
    reads: tuple[str, ...]  # what it reads, in words (--kubeaccept-list)
    fn: Callable[[Context], list] | None
    asserts: str = ""  # docs/checks.md: the full rule
    prevents: str = ""  # docs/checks.md: the failure it prevents
    destructive: bool = False  # only with its opt-in flag; not generated from here
    only_with: tuple[str, ...] = ()  # deselected unless one of these options is given
    # A per-host check that also reads other hosts' facts (ctx.peers): which ones, as
    # fn(host, inventory, settings) -> host names; its test runs once those are gathered.
    peers: Callable[..., Iterable[str]] | None = None
    source: Callable | None = None  # the function as written (fn stamps its findings)

    @property
    def per_host(self) -> bool:
        return bool(self.roles)


REGISTRY: dict[str, Check] = {}


def check(id: str, title: str, *, area: str, roles: Iterable[str] = (),
          needs: Iterable[str] = ("node",), reads: Iterable[str] = (), asserts: str = "",
          prevents: str = "", destructive: bool = False,
          only_with: Iterable[str] = (), peers: Callable[..., Iterable[str]] | None = None
          ) -> Callable:
    """Register `fn(ctx) -> list[Finding]` as check `id`."""
    roles, needs = tuple(roles), tuple(needs)
    if area not in AREAS:
        raise ValueError(f"{id}: area {area!r} is not one of {AREAS}")
    if unknown := set(needs) - set(NEEDS):
        raise ValueError(f"{id}: unknown needs {sorted(unknown)}")
    if roles and "node" not in needs and not destructive:
        raise ValueError(f"{id}: a per-host check needs 'node'")
    if not roles and "node" in needs:
        raise ValueError(f"{id}: 'node' needs roles to run on")

    def register(fn):
        if id in REGISTRY and REGISTRY[id].source is not fn:
            raise ValueError(f"check {id} declared twice")

        @functools.wraps(fn)
        def judged(ctx: Context) -> list:
            return [f if f.check_id == id else replace(f, check_id=id) for f in fn(ctx)]

        REGISTRY[id] = Check(id, " ".join(title.split()), area, roles, needs, tuple(reads),
                             judged, " ".join(asserts.split()), " ".join(prevents.split()),
                             destructive, tuple(only_with), peers, fn)
        return judged

    return register


class Context:
    """What a check gets: the values of the needs it declared, as attributes. Asking for one
    it did not declare is an error, so `needs` stays true (it decides the fixtures run)."""

    def __init__(self, check_id: str = "?", **values: Any):
        self.check_id = check_id  # for the words of a finding (needs_tool), never its id
        self.__dict__.update(values)

    def __getattr__(self, name: str) -> Any:
        if name in NEEDS:
            raise AttributeError(f"check {self.check_id} reads ctx.{name} without declaring "
                                 f"needs=(..., {name!r})")
        raise AttributeError(name)


def ordered() -> dict[str, Check]:
    """The registered checks in the order of the reports: by area, per-host checks first,
    by id. kubeaccept.checks.all.load() imports every check module first."""
    order = {a: i for i, a in enumerate(AREAS)}
    return dict(sorted(REGISTRY.items(),
                       key=lambda kv: (order[kv[1].area], not kv[1].per_host, kv[0])))


def run(check_id: str, **needs: Any) -> list:
    """The registered check `check_id` on the values of its needs, its findings stamped (the
    failover gate's interlock and the unit tests call checks this way)."""
    return REGISTRY[check_id].fn(Context(check_id, **needs))
