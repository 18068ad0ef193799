"""Reports of a run: reports/findings.json, reports/report.html, the JUnit file rewritten for
Jenkins and GitLab, and the end-of-run summary table. Written by the controller (under xdist
the workers' reports carry every finding to it)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from kubeaccept import __version__
from kubeaccept.checks import baseline
from kubeaccept.checks.all import load
from kubeaccept.model.findings import finding_from_json
from kubeaccept.model.roles import ALL_ROLES
from kubeaccept.report import html, junit, summary
from kubeaccept.report.results import Result, Run
from kubeaccept.suite.fixtures import PREVIOUS
from kubeaccept.suite.options import LISTING
from kubeaccept.suite.state import STATE
from kubeaccept.suite.waive import TODAY, WAIVERS

RUN = pytest.StashKey[Run]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kubeaccept")
    group.addoption("--findings", default=None, metavar="PATH",
                    help="every finding with its evidence as JSON (default "
                    "reports/findings.json; reports/findings-failover.json with --failover)")
    group.addoption("--report-html", default=None, metavar="PATH",
                    help="self-contained HTML report, hosts × checks matrix first (default "
                    "reports/report.html; reports/report-failover.html with --failover)")
    group.addoption("--save-baseline", default=None, metavar="FILE",
                    help="record what matters for an upgrade (versions, kubelet and runtime "
                    "config, sysctls, ports, Node conditions, restarts, certificate dates, "
                    "etcd members) to FILE, e.g. reports/baseline.json")
    group.addoption("--compare-baseline", default=None, metavar="FILE",
                    help="compare with a --save-baseline FILE: what changed fails "
                    "node_unchanged/cluster_unchanged and is listed in the reports")


def pytest_collection_modifyitems(session, config: pytest.Config, items) -> None:
    """Checks declared only_with an option run only when it is given."""
    checks = load()
    dropped = []
    for item in items:
        c = checks.get(getattr(item, "originalname", ""))
        if c and c.only_with and not any(getattr(config.option, o, None) for o in c.only_with):
            dropped.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        gone = set(map(id, dropped))
        items[:] = [i for i in items if id(i) not in gone]


def _phase(config: pytest.Config) -> str:
    return "failover" if getattr(config.option, "failover", None) else "non-destructive"


def _default(config: pytest.Config, given: str | None, name: str, ext: str) -> Path:
    if given:
        return Path(given)
    suffix = "-failover" if _phase(config) == "failover" else ""
    return Path(config.rootpath) / "reports" / f"{name}{suffix}.{ext}"


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is None:
        return
    if config.option.compare_baseline:
        try:
            config.stash[PREVIOUS] = baseline.read(config.option.compare_baseline)
        except ValueError as exc:
            raise pytest.UsageError(str(exc)) from None
    if hasattr(config, "workerinput") or LISTING in config.stash:
        return
    inv = state.inventory
    run = Run(
        inventory=str(inv.source), phase=_phase(config),
        started=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        hosts=[{"name": h.name, "roles": sorted(h.roles, key=_role_rank),
                "address": h.address} for h in inv.hosts])
    config.stash[RUN] = run
    config.pluginmanager.register(Collector(config, run), "kubeaccept-report")


def _role_rank(role: str) -> int:
    return ALL_ROLES.index(role) if role in ALL_ROLES else len(ALL_ROLES)


class Collector:
    """The controller's side: one Result per test, whatever process ran it."""

    def __init__(self, config: pytest.Config, run: Run):
        self.config = config
        self.run = run
        self.by_nodeid: dict[str, Result] = {}
        self.snapshots: dict[str, dict] = {}
        self.waived: dict[str, list[str]] = {}  # waiver's FILE:LINE -> the tests it waived
        self.site: dict[str, str] = {}  # site check -> its title

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        rec = getattr(report, "kubeaccept", None)
        outcome = _outcome(report)
        if not rec or outcome is None:
            return
        rec = json.loads(rec)
        message = _message(report, outcome)
        props = {k: str(v) for k, v in report.user_properties}
        result = self.by_nodeid.get(report.nodeid)
        if result is None:
            result = Result(rec["test"], report.nodeid, rec["check"], rec["host"], rec["area"],
                            outcome, message, report.duration, [], props)
            self.run.results.append(result)
            self.by_nodeid[report.nodeid] = result
        else:
            result.duration += report.duration
            result.properties.update(props)
            if _rank(outcome) < _rank(result.outcome):  # a teardown error beats a pass
                result.outcome, result.message = outcome, message
        if snap := rec.get("snapshot"):
            self.snapshots.setdefault(snap["part"], {})[snap["where"]] = snap["snapshot"]
            self.run.changes += snap["changes"]
        if rec.get("findings"):
            result.findings = [finding_from_json(f) for f in rec["findings"]]
        if "unreachable" in props:
            host, _, cause = props["unreachable"].partition("\t")
            self.run.unreachable.setdefault(host, cause)
        if props.get("waived"):
            self.waived.setdefault(props["waived"], []).append(rec["test"])
        if rec["area"] == "site":
            self.site.setdefault(rec["check"], (rec["findings"] or [{}])[0].get("expected", ""))
            if props.get("ran"):
                ran = self.run.site_commands.setdefault(rec["host"] or "cluster", [])
                ran += [c for c in props["ran"].split("\n") if c not in ran]

    def waivers(self) -> list[dict]:
        """Each --waivers entry with what it did: active (and the tests it waived), expired
        (it waives nothing any more), stale (active, but no failure matched it)."""
        day = self.config.stash.get(TODAY, None)
        out = []
        for w in self.config.stash.get(WAIVERS, []):
            waived = self.waived.get(w.where, [])
            state = "expired" if w.expired(day) else "active" if waived else "stale"
            out.append({**w.to_json(), "state": state, "waived": waived})
        return out

    @pytest.hookimpl(trylast=True)  # after LogXML has written its file
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus) -> None:
        config, run = self.config, self.run
        run.finished = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        run.exit_status = int(exitstatus)
        seen = {r.check for r in run.results}
        run.checks = [{"id": c.id, "title": c.title, "area": c.area, "roles": list(c.roles)}
                      for c in load().values() if c.id in seen]
        run.checks += [{"id": name, "title": title, "area": "site", "roles": []}
                       for name, title in self.site.items()]
        run.waivers = self.waivers()
        findings = _default(config, config.option.findings, "findings", "json")
        run.write(findings)
        page = _default(config, config.option.report_html, "report", "html")
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(html.render(run))
        self.written = [findings, page]
        if config.option.save_baseline:
            path = Path(config.option.save_baseline)
            path.parent.mkdir(parents=True, exist_ok=True)
            doc = baseline.document(run.inventory, self.snapshots.get("nodes", {}),
                                    self.snapshots.get("cluster", {}))
            path.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
            self.written.append(path)
        xml = Path(config.option.xmlpath or "")
        if config.option.xmlpath and xml.exists():
            junit.rewrite(xml, run, __version__)
            self.written.append(xml)

    def pytest_terminal_summary(self, terminalreporter, exitstatus, config) -> None:
        if not self.run.results:
            return
        terminalreporter.section("kubeaccept summary")
        for line in summary.lines(self.run, quiet=config.get_verbosity() < 0):
            terminalreporter.line(line)
        for path in getattr(self, "written", []):
            terminalreporter.line(f"report: {path}")


def _rank(outcome: str) -> int:
    return ("error", "failed", "waived", "skipped", "passed").index(outcome)


def _outcome(report: pytest.TestReport) -> str | None:
    if report.when == "call":
        if any(k == "waived" for k, _ in report.user_properties):
            return "waived"
        return "passed" if report.passed else "skipped" if report.skipped else "failed"
    if report.failed:
        return "error"
    if report.skipped and report.when == "setup":
        return "skipped"
    return None


def _message(report: pytest.TestReport, outcome: str) -> str:
    if outcome == "skipped" and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    if outcome == "waived":
        return report.wasxfail
    if outcome in ("failed", "error"):
        return report.longreprtext
    return ""
