"""--waivers=FILE (kubeaccept.model.waivers): a failure a waiver covers is reported as waived
(pytest's xfail, with the waiver's reason); one an expired waiver would have covered stays a
failure and says the waiver expired. The controller lists stale waivers (kubeaccept.report)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubeaccept.model import waivers as model
from kubeaccept.suite.state import FINDINGS, node_param, site_host

WAIVERS = pytest.StashKey[list]()  # the --waivers file's entries
TODAY = pytest.StashKey[object]()  # the day they are judged against (one for the run)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("kubeaccept").addoption(
        "--waivers", default=None, metavar="FILE",
        help="known exceptions (YAML: check, host, reason, owner, expires per entry): a "
        "failure one covers is reported as waived; expired ones no longer waive")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    given = getattr(config.option, "waivers", None)
    if not given:
        return
    path = Path(given)
    if not path.is_absolute():
        path = Path(config.invocation_params.dir) / path
    try:
        config.stash[WAIVERS] = model.load(path)
    except model.WaiverError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[TODAY] = model.today()


def failing_hosts(item: pytest.Item) -> set[str]:
    """Whom the failure is about: the test's host, else the hosts of its failing findings
    ("cluster" when they name none)."""
    host = node_param(item) or site_host(item)
    if host:
        return {host.name}
    bad = [f for f in item.stash.get(FINDINGS, []) if not f.ok]
    return {f.subject.split(":", 1)[0] for f in bad} or {"cluster"}


def waive(item: pytest.Item, report: pytest.TestReport) -> None:
    """Called on a failed test's call report, before it is recorded."""
    entries = item.config.stash.get(WAIVERS, None)
    if not entries:
        return
    check = getattr(item, "originalname", item.name)
    active, lapsed = model.first_covering(entries, check, failing_hosts(item),
                                          item.config.stash[TODAY])
    if active is not None:
        report.outcome = "skipped"
        report.wasxfail = (f"waived by {active.where}: {active.reason} (owner {active.owner},"
                           f" until {active.expires.isoformat()})")
        report.user_properties.append(("waived", active.where))
    elif lapsed is not None:
        text = (f"the waiver at {lapsed.where} expired on {lapsed.expires.isoformat()}: it no "
                f"longer waives this failure (its reason: {lapsed.reason}; owner "
                f"{lapsed.owner}); fix the failure or renew the waiver")
        report.sections.append(("kubeaccept waiver", text))
        report.user_properties.append(("waiver_expired", text))
