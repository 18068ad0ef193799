"""What ships and how the packages depend on each other."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "kubeaccept"
# Each folder of the package is a layer; it may import its own modules and those of the
# layers named here, nothing else of the project (docs/architecture.md draws it).
LAYERS = {
    "model": set(),
    "facts": {"model"},
    "inventory": {"model"},
    "remote": {"model", "facts", "inventory"},
    "api": {"model", "facts", "inventory", "remote"},
    "checks": {"model", "facts"},
    "session": {"model", "facts", "inventory", "remote", "api", "checks"},
    "suite": {"model", "facts", "inventory", "remote", "api", "checks", "session"},
    "report": {"model", "facts", "checks", "suite"},
    "failover": {"model", "facts", "inventory", "remote", "api", "checks", "session", "suite"},
}
PYTEST_LAYERS = {"suite", "report", "failover"}  # the only ones that import pytest


def imports_of(path: Path) -> set[str]:
    """Absolute module names a file imports (relative imports resolved)."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    package = parts[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = list(package[:len(package) - node.level + 1]) if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            out.add(mod)
            out |= {f"{mod}.{a.name}" for a in node.names}
    return out


def layer_of(module: str) -> str | None:
    """The layer a kubeaccept module belongs to: its folder (session.py is its own)."""
    parts = module.split(".")
    if parts[0] != "kubeaccept" or len(parts) < 2:
        return None
    return parts[1]


def project_modules() -> set[str]:
    return {".".join(f.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            for f in PKG.rglob("*.py")}


def test_every_module_is_in_a_layer():
    for f in PKG.rglob("*.py"):
        rel = f.relative_to(PKG)
        if rel.parts == ("__init__.py",):
            continue
        assert layer_of("kubeaccept." + rel.with_suffix("").parts[0]) in LAYERS, (
            f"{rel}: not in a layer folder (one of {sorted(LAYERS)})")


def upward(own: str, imported: set[str], known: set[str]) -> list[str]:
    """The imports of a module of layer `own` that its layer may not make."""
    bad = []
    for mod in sorted(imported):
        other = layer_of(mod)
        if other is None or other == own or mod == "kubeaccept":
            continue
        if mod not in known and (mod.rpartition(".")[0] not in known
                                 or mod.rpartition(".")[0] == "kubeaccept"):
            continue  # a name, not a module (a name inside a module is checked with it)
        if other not in LAYERS[own]:
            bad.append(f"{mod} ({other}): {own} may import only "
                       f"{sorted(LAYERS[own]) or 'nothing of the project'}")
    return bad


def test_each_layer_imports_only_the_layers_below_it():
    known = project_modules()
    for f in PKG.rglob("*.py"):
        own = layer_of(".".join(f.relative_to(ROOT).with_suffix("").parts))
        if own is not None:
            assert not upward(own, imports_of(f), known), (f.relative_to(ROOT), own)


def test_the_layer_rule_itself_has_no_cycle():
    def reach(layer, seen=()):
        for below in LAYERS[layer]:
            assert below not in (*seen, layer), f"{layer} -> {below} closes a cycle"
            reach(below, (*seen, layer))
    for layer in LAYERS:
        reach(layer)


def test_the_checker_catches_an_upward_import():
    """The rule can fail: a model module importing a check, or a check importing the API
    layer, is named; a check importing facts is not."""
    known = project_modules()
    assert "kubeaccept.checks (checks): model may import only nothing of the project" in upward(
        "model", {"kubeaccept.checks", "kubeaccept.checks.NodeContext"}, known)
    assert upward("checks", {"kubeaccept.api.kubeapi"}, known)
    assert not upward("checks", {"kubeaccept.facts.iptables", "kubeaccept.model.hosts"}, known)


def test_only_the_pytest_layers_import_pytest():
    for f in PKG.rglob("*.py"):
        layer = layer_of(".".join(f.relative_to(ROOT).with_suffix("").parts))
        if layer in PYTEST_LAYERS:
            continue
        mods = imports_of(f)
        assert not {m for m in mods if m == "pytest" or m.startswith(("pytest.", "_pytest"))}, f


def test_the_product_never_imports_the_lab():
    for f in PKG.rglob("*.py"):
        assert not {m for m in imports_of(f) if m == "lab" or m.startswith("lab.")}, f


def module_name(f: Path) -> str:
    return ".".join(f.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def top_level_imports(f: Path) -> set[str]:
    """The modules a file imports when it is imported (not inside functions), resolved."""
    package = module_name(f) if f.name == "__init__.py" else module_name(f).rpartition(".")[0]
    out = set()
    for node in ast.parse(f.read_text()).body:
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] \
                if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            out |= {mod, *(f"{mod}.{a.name}" for a in node.names)}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
    return out


def cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of the graph (module -> modules it imports), or []."""
    state: dict[str, int] = {}

    def visit(n, path):
        if state.get(n) == 2:
            return []
        if state.get(n) == 1:
            return [*path[path.index(n):], n]
        state[n] = 1
        for d in sorted(graph.get(n, ())):
            # a package's own __init__ runs first anyway
            if not n.startswith(d + ".") and (found := visit(d, [*path, n])):
                return found
        state[n] = 2
        return []
    for n in sorted(graph):
        if found := visit(n, []):
            return found
    return []


def test_no_import_cycle_in_the_package_or_the_lab():
    files = [*PKG.rglob("*.py"), *(ROOT / "lab").rglob("*.py")]
    mods = {module_name(f) for f in files}
    graph = {module_name(f): {m for m in top_level_imports(f) if m in mods} - {module_name(f)}
             for f in files}
    assert cycle(graph) == [], " -> ".join(cycle(graph))
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_the_wheel_ships_the_plugins_and_the_facts_script_not_the_lab(tmp_path):
    had_build = (ROOT / "build").exists()
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                           str(tmp_path), str(ROOT)], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    if not had_build:  # pip builds a local tree in place
        shutil.rmtree(ROOT / "build", ignore_errors=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    wheel = zipfile.ZipFile(next(tmp_path.glob("kubeaccept-*.whl")))
    names = wheel.namelist()
    assert not [n for n in names if n.startswith(("lab/", "kubeaccept/lab/"))]
    assert "kubeaccept/session.py" in names and "kubeaccept/suite/plugin.py" in names
    assert "kubeaccept/facts/gather.sh" in names and "kubeaccept/report/html.py" in names
    entry = wheel.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    for plugin in ("kubeaccept.suite.plugin", "kubeaccept.report.plugin",
                   "kubeaccept.failover.plugin"):
        assert f"{plugin} = {plugin}" in entry
