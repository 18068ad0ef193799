"""Verdicts: a test's findings recorded on it and turned into pass, fail (with observed,
expected, why and fix) or error (nothing could be judged); every report masked of secrets and
given the record the reports read."""

from __future__ import annotations

import json

import pytest

from kubeaccept.model.findings import Finding, finding_json
from kubeaccept.model.redact import redact
from kubeaccept.model.registry import REGISTRY
from kubeaccept.suite.state import FINDINGS, SNAPSHOT, node_param
from kubeaccept.suite.waive import waive


@pytest.fixture
def verdict(request: pytest.FixtureRequest):
    """verdict(findings): record them on the test and fail with an actionable message."""

    def judge(findings: list[Finding]) -> None:
        item = request.node
        item.stash[FINDINGS] = findings
        if not findings:
            pytest.fail("the check produced no findings", pytrace=False)
        failed = [f for f in findings if not f.ok]
        item.user_properties.append(("check_id", str(findings[0].check_id)))
        if host := node_param(item):
            item.user_properties.append(("host", str(host.name)))
        fixes = sorted({f.fix for f in failed if f.fix})
        if fixes:
            item.user_properties.append(("remediation", " | ".join(fixes)))
        evidence = [e for f in (failed or findings) for e in f.evidence]
        item.user_properties.append(("evidence", "\n".join(evidence)))
        notes = [f"{f.subject}: {f.note}" for f in findings if f.note]
        if notes:
            item.user_properties.append(("note", "\n".join(notes)))
        unjudged = [f for f in failed if f.unjudged]
        for f in unjudged:
            if f.unjudged == "unreachable":
                host, _, cause = f.observed.partition(": ")
                item.user_properties.append(("unreachable", f"{host}\t{cause}"))
        if failed and len(unjudged) == len(failed):
            # Only hosts that could not be asked (or lack the command to ask with): an error,
            # as for an unreachable host's own tests.
            raise Unjudged("\n".join(f"{f.subject}: not checked: {f.observed}"
                                      for f in unjudged), pytrace=False)
        if failed:
            pytest.fail(failure_message(findings, failed), pytrace=False)

    return judge


class Unjudged(pytest.fail.Exception):
    """A check that could not judge anything it failed on: its hosts were unreachable or lack
    a command it needs."""


# shown as "Unreachable: …" in reports, as pytest shows its own outcomes ("Failed: …")
Unjudged.__name__ = Unjudged.__qualname__ = "Unreachable"
Unjudged.__module__ = "builtins"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if call.when == "call" and call.excinfo is not None and \
            call.excinfo.errisinstance(Unjudged):
        # reported like the failing `node` fixture of an unreachable host: ERROR, not FAILED
        report.when = "setup"
    elif call.when == "call" and report.failed:
        waive(item, report)  # --waivers: waived (xfail), or the expired waiver said
    _redact_report(report)
    # one JSON string: xdist's serializer walks nested objects in Python, 0.35 ms per report
    report.kubeaccept = json.dumps(_record(item, call.when))
    return report


def _redacted(value):
    """Every string inside masked (a baseline snapshot is written to a file)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value


def _record(item: pytest.Item, when: str) -> dict:
    """What the reports need of a test, JSON only (it crosses from xdist workers)."""
    check = getattr(item, "originalname", item.name)
    params = getattr(getattr(item, "callspec", None), "params", {})
    node = params.get("node") or params.get("host")  # a site test's host: suite.site
    host = node.name if node is not None else params.get("failover_target")
    found = item.stash.get(FINDINGS, []) if when == "call" else []
    return {"test": item.name, "check": check, "host": host,
            # a test not in the registry is the user's own: a site check
            "area": REGISTRY[check].area if check in REGISTRY else "site",
            "snapshot": _redacted(item.stash.get(SNAPSHOT, None)) if when == "call" else None,
            "findings": [_redacted(finding_json(f)) for f in found]}


def _redact_report(report: pytest.TestReport) -> None:
    """Every text of the report (the one object JUnit, HTML, the terminal and xdist's
    controller get) with secrets masked."""
    if report.longrepr is not None:
        text = str(report.longrepr)
        masked = redact(text)
        if masked != text:
            report.longrepr = masked
    report.sections = [(title, redact(body)) for title, body in report.sections]
    report.user_properties = [(k, redact(v) if isinstance(v, str) else v)
                              for k, v in report.user_properties]


def failure_message(findings: list[Finding], failed: list[Finding]) -> str:
    """Observed vs expected per failing subject, then each distinct why/fix once."""
    lines = [f"{findings[0].check_id}: {len(failed)} of {len(findings)} finding(s) failed"]
    groups: dict[tuple[str, str, bool], list[Finding]] = {}
    for f in failed:
        groups.setdefault((f.why, f.fix, f.unjudged), []).append(f)
    for (why, fix, _), group in groups.items():
        if group[0].unjudged:
            lines += [f"- {f.subject}: not checked: {f.observed}" for f in group]
            continue
        for f in group:
            lines.append(f"- {f.subject}: {f.observed} (expected {f.expected})")
        if why:
            lines.append(f"  why it matters: {why}")
        if fix:
            lines.append(f"  fix: {fix}")
        evidence = [e for f in group for e in f.evidence]
        lines.extend(f"  evidence: {e}" for e in dict.fromkeys(evidence))
    return "\n".join(lines)
