"""The lab self-tests: build the lab once per session, tear it down at the end."""

from __future__ import annotations

import os

import pytest

from lab.lab import Lab
from lab.plan import DEFAULT_STATE_DIR

WORKERS = 2
MATRIX: list[tuple[str, str, str, str]] = []  # (mode, fault, host, failing tests)


def pytest_collection_modifyitems(items):
    for item in items:
        if "selftests/lab/" in item.nodeid:
            item.add_marker(pytest.mark.lab)


@pytest.fixture(scope="session")
def _session_lab():
    if os.geteuid() != 0:
        pytest.fail("the lab tests build network namespaces and need root "
                    "(or deselect them: -m 'not lab')", pytrace=False)
    lab = Lab(DEFAULT_STATE_DIR)
    yield lab
    lab.down()


@pytest.fixture
def lab(_session_lab):
    """The healthy lab with its real control plane; `up` is a no-op when it is already up."""
    _session_lab.reload()  # the suite's power commands change lab.json from other processes
    _session_lab.up(WORKERS, control_plane=True)
    return _session_lab


@pytest.fixture(scope="session")
def matrix():
    return MATRIX


def pytest_terminal_summary(terminalreporter):
    if not MATRIX:
        return
    tr = terminalreporter
    tr.section("detection matrix (fault x failing tests)")
    width = max(len(f) for _, f, _, _ in MATRIX)
    for mode, fault, host, failing in MATRIX:
        tr.write_line(f"{mode:7} {fault:{width}}  on {host:4} -> {failing}")
