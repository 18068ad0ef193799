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
# Below the checks in the data flow: gathering, parsing, Kubernetes access, the model.
LOWER = ["allowlist", "apiprobe", "apistate", "dnsutils", "factstore", "facts", "findings",
         "firewall", "inventory", "kubeapi", "nftables", "ports", "redact", "registry",
         "roles", "settings", "sshargs", "transport"]
ABOVE_CHECKS = ("checks", "report", "plugin", "suite", "catalog", "failover", "lab")


def imports_of(path: Path) -> set[str]:
    """Absolute module names a file imports (relative imports resolved)."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    package = parts[:-1] if path.name != "__init__.py" else parts[:-1]
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


def files(name: str) -> list[Path]:
    p = PKG / name
    return sorted(p.rglob("*.py")) if p.is_dir() else [p.with_suffix(".py")]


def test_nothing_below_the_checks_imports_them_or_what_is_above():
    for name in LOWER:
        for f in files(name):
            bad = {m for m in imports_of(f) for up in ABOVE_CHECKS
                   if m == f"kubeaccept.{up}" or m.startswith(f"kubeaccept.{up}.")}
            assert not bad, f"{f.relative_to(ROOT)} imports {sorted(bad)}"


def test_checks_import_neither_pytest_nor_the_reports_nor_the_lab():
    for f in files("checks"):
        mods = imports_of(f)
        assert "pytest" not in mods, f
        assert not {m for m in mods if m.startswith(("kubeaccept.report", "kubeaccept.plugin",
                                                     "kubeaccept.suite", "kubeaccept.lab"))}, f


def test_the_product_never_imports_the_lab():
    for f in PKG.rglob("*.py"):
        if "lab" in f.relative_to(PKG).parts[:1]:
            continue
        assert not {m for m in imports_of(f) if m.startswith("kubeaccept.lab")}, f


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
    assert not [n for n in names if n.startswith("kubeaccept/lab/")]
    assert "kubeaccept/facts/gather.sh" in names and "kubeaccept/report/html.py" in names
    entry = wheel.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    for plugin in ("kubeaccept.plugin", "kubeaccept.report.plugin",
                   "kubeaccept.failover.plugin"):
        assert f"{plugin} = {plugin}" in entry
