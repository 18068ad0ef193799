"""The acceptance suite's test functions, made from the check registry: one per check, named
after its id, with the fixtures its `needs` name. tests/test_<area>.py hold them."""

from __future__ import annotations

import inspect

import pytest

from kubeaccept.checks.all import load
from kubeaccept.model.registry import NEEDS, CannotCheck, Check, Context


def make_test(check: Check):
    fixtures = [NEEDS[n] for n in check.needs]

    def test(verdict, **values):
        ctx = Context(check.id, **{n: values[NEEDS[n]] for n in check.needs})
        try:
            findings = check.fn(ctx)
        except CannotCheck as exc:
            pytest.fail(str(exc), pytrace=False)
        verdict(findings)

    params = [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD)
              for n in ["verdict", *fixtures]]
    test.__signature__ = inspect.Signature(params)
    test.__name__ = test.__qualname__ = check.id
    test.__doc__ = check.title
    if check.roles:
        test = pytest.mark.roles(*check.roles)(test)
    return test


def tests_of(area: str) -> dict:
    """{check id: test function} for an area's checks (the destructive gate has its own)."""
    return {c.id: make_test(c) for c in load().values()
            if c.area == area and not c.destructive}
