"""Every check module of this package, imported so that each registers its checks; then the
registry. A new module is found by being here: nothing lists it."""

import importlib
import pkgutil

import kubeaccept.checks
from kubeaccept.model.registry import Check, ordered

_imported: list[str] = []  # the check modules, once imported (load() is asked often)


def load() -> dict[str, Check]:
    """Every check (the failover gate's declaration too), in the order of the reports."""
    if not _imported:
        for info in pkgutil.iter_modules(kubeaccept.checks.__path__):
            if info.name != "all":
                importlib.import_module(f"kubeaccept.checks.{info.name}")
                _imported.append(info.name)
    return ordered()
