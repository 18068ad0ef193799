"""The check registry: one declaration per check, from which tests, list and tables come."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from kubeaccept.checks.all import load as load_checks
from kubeaccept.model import registry
from kubeaccept.model.registry import AREAS, Context, check
from kubeaccept.suite import catalog
from kubeaccept.suite.tests import make_test

from .factory import HEALTHY_SYSCTL, context, facts
from .test_plugin import pytest_run

ROOT = Path(__file__).resolve().parents[2]
CHECKS = load_checks()


def test_every_check_is_declared_once_with_what_reports_need():
    assert CHECKS and set(CHECKS) == set(registry.REGISTRY)
    for c in CHECKS.values():
        assert c.area in AREAS and c.title and c.reads and c.asserts and c.prevents, c.id
        assert c.id.startswith(("node_", "cluster_", "lb_")), c.id
        assert set(c.only_with) <= {"save_baseline", "compare_baseline"}, c.id
        assert c.per_host == c.id.startswith(("node_", "lb_")) or c.destructive, c.id


def test_registering_an_id_twice_or_a_bad_declaration_is_refused():
    with pytest.raises(ValueError, match="declared twice"):
        check("node_swap", "x", area="node", roles=("worker",))(lambda ctx: [])
    with pytest.raises(ValueError, match="area"):
        check("node_x", "x", area="nodes", roles=("worker",))
    with pytest.raises(ValueError, match="unknown needs"):
        check("node_x", "x", area="node", roles=("worker",), needs=("node", "kube"))
    with pytest.raises(ValueError, match="needs roles"):
        check("cluster_x", "x", area="node")
    assert "node_x" not in registry.REGISTRY and "cluster_x" not in registry.REGISTRY


def test_a_check_reading_what_it_did_not_declare_is_an_error():
    """`needs` decides which fixtures run, so an undeclared read must not pass silently."""
    ctx = Context("node_swap", node=context())
    assert ctx.node is not None
    with pytest.raises(AttributeError, match=r"node_swap reads ctx.api without declaring"):
        ctx.api  # noqa: B018


def test_each_check_reads_only_what_it_declares():
    """Static: every ctx.<need> in a check's function is among its declared needs."""
    for c in CHECKS.values():
        if c.destructive:
            continue
        tree = ast.parse(inspect.getsource(c.source))
        used = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)
                and isinstance(n.value, ast.Name) and n.value.id == "ctx"} - {"check_id"}
        assert used == set(c.needs), (c.id, used, c.needs)


def test_the_made_test_function_asks_for_the_needed_fixtures_and_is_named_after_the_check():
    fn = make_test(CHECKS["cluster_dns"])
    assert fn.__name__ == "cluster_dns"
    assert list(inspect.signature(fn).parameters) == ["verdict", "api", "dns_lookup", "cluster"]
    node_fn = make_test(CHECKS["node_rp_filter"])
    assert list(inspect.signature(node_fn).parameters) == ["verdict", "node",
                                                            "cluster_cni"]
    assert node_fn.pytestmark[0].args == ("control_plane", "worker")


def test_a_registered_check_runs_through_its_ctx():
    sysctl = HEALTHY_SYSCTL.replace("net.ipv4.ip_forward 1", "net.ipv4.ip_forward 0")
    assert sysctl != HEALTHY_SYSCTL
    ctx = Context("node_ip_forward", node=context(facts(sysctl=sysctl)))
    findings = CHECKS["node_ip_forward"].fn(ctx)
    assert [f.ok for f in findings] == [False]


def test_the_docs_table_matches_the_registry():
    assert catalog.stale() == [], "run: python -m kubeaccept.suite.catalog"
    docs = (ROOT / "docs" / "checks.md").read_text()
    for c in CHECKS.values():
        assert f"| `{c.id}` | {c.area} |" in docs


def test_the_test_modules_hold_every_check_of_their_area():
    tests = {p.stem.removeprefix("test_") for p in (ROOT / "tests").glob("test_*.py")}
    assert tests == {a.lower().replace(" ", "_") for a in AREAS}


def test_kubeaccept_list_prints_every_check_without_an_inventory(tmp_path):
    rc, out = pytest_run(tmp_path, "--kubeaccept-list")
    assert rc == 0 and "Traceback" not in out
    for c in CHECKS.values():
        assert f"{c.id}  [{c.area}; " in out and c.title in out
    per_host = sum(c.per_host for c in CHECKS.values())
    assert f"{len(CHECKS)} checks: {per_host} per host, {len(CHECKS) - per_host} per cluster" in out


def test_kubeaccept_list_connects_to_nothing(tmp_path):
    """With an inventory of unreachable hosts it still answers at once."""
    rc, out = pytest_run(tmp_path, "--hosts=ssh://root@192.0.2.1:22?roles=worker",
                         "--connect-timeout=30", "--kubeaccept-list")
    assert rc == 0 and "node_swap  [node; control plane, worker]" in out
