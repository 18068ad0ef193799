"""What the suite keeps on pytest's config and items (stash keys), and the host of a test."""

from __future__ import annotations

import pytest

from kubeaccept.model.hosts import Host, Inventory
from kubeaccept.session import Session

STATE = pytest.StashKey[Session]()  # the run's session (kubeaccept.session)
SELECTED = pytest.StashKey[list]()  # the hosts whose tests were collected, in inventory order
FINDINGS = pytest.StashKey[list]()  # what verdict() judged, for the reports
SNAPSHOT = pytest.StashKey[dict]()  # what a baseline check recorded (kubeaccept.report)
LOADED = pytest.StashKey[Inventory]()  # -n auto read it already: pytest_configure reuses it
AUTO = pytest.StashKey[str]()  # what -n auto picked, for the header


def node_param(item) -> Host | None:
    """The host a test runs on (its `node` parameter), or None."""
    return getattr(item, "callspec", None) and item.callspec.params.get("node")


def site_host(item) -> Host | None:
    """The host a site test (kubeaccept.suite.site) runs on (its `host` parameter), or None."""
    return getattr(item, "callspec", None) and item.callspec.params.get("host")
