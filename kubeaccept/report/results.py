"""A run's results as one document: reports/findings.json, and the source of the HTML report,
the terminal summary and the JUnit rewrite. Every test's findings travel on its report
(`report.kubeaccept`, JSON only, so it crosses from xdist workers unchanged)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from kubeaccept.model.findings import Finding, finding_from_json, finding_json
from kubeaccept.model.registry import AREAS

FORMAT = "kubeaccept-findings/1"
OUTCOMES = ("failed", "error", "waived", "passed", "skipped")  # worst first
# the report's areas: the registry's, then the user's own tests (kubeaccept.suite.site)
SHOWN_AREAS = (*AREAS, "site")


@dataclass
class Result:
    test: str  # the test's name: <check id>[<host>]
    nodeid: str
    check: str
    host: str | None  # None for a check of the whole cluster
    area: str  # one of registry.AREAS, or "site" for the user's own test (suite.site)
    outcome: str  # passed, failed, error, waived (a failure a --waivers entry covers), skipped
    message: str = ""  # what pytest said (failure text, skip reason)
    duration: float = 0.0
    findings: list[Finding] = field(default_factory=list)
    properties: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict:
        # by hand: dataclasses.asdict deep-copies, 1 s for 2,000 results
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["findings"] = [finding_json(f) for f in self.findings]
        d["properties"] = dict(self.properties)
        return d

    @classmethod
    def from_json(cls, d: dict) -> Result:
        return cls(**{**d, "findings": [finding_from_json(f) for f in d.get("findings", [])]})

    def fixes(self) -> list[str]:
        return list(dict.fromkeys(f.fix for f in self.findings if not f.ok and f.fix))


@dataclass
class Run:
    inventory: str = ""
    phase: str = "non-destructive"  # or "failover"
    started: str = ""
    finished: str = ""
    exit_status: int | None = None
    hosts: list[dict] = field(default_factory=list)  # name, roles, address
    checks: list[dict] = field(default_factory=list)  # id, title, area, roles
    results: list[Result] = field(default_factory=list)
    unreachable: dict[str, str] = field(default_factory=dict)
    changes: list[dict] = field(default_factory=list)  # --compare-baseline: what changed
    # --waivers: each entry with its state (active, expired, stale) and the tests it waived
    waivers: list[dict] = field(default_factory=list)
    # host (or "cluster") -> the commands the site checks ran there: the user's, not audited
    site_commands: dict[str, list[str]] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(OUTCOMES, 0)
        for r in self.results:
            out[r.outcome] = out.get(r.outcome, 0) + 1
        return out

    def to_json(self) -> dict:
        d = {"format": FORMAT, **{f.name: getattr(self, f.name)
                                  for f in dataclasses.fields(self)}}
        d["results"] = [r.to_json() for r in self.results]
        d["counts"] = self.counts()
        d["areas"] = list(SHOWN_AREAS)
        return d

    @classmethod
    def from_json(cls, d: dict) -> Run:
        if d.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} document (format: {d.get('format')!r})")
        names = {f.name for f in dataclasses.fields(cls)}
        run = cls(**{k: v for k, v in d.items() if k in names and k != "results"})
        run.results = [Result.from_json(r) for r in d.get("results", [])]
        return run

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=1, ensure_ascii=False) + "\n")
        tmp.replace(path)

    @classmethod
    def read(cls, path: Path) -> Run:
        return cls.from_json(json.loads(path.read_text()))

    def role_of(self, host: str) -> str:
        roles = next((h["roles"] for h in self.hosts if h["name"] == host), [])
        return roles[0] if roles else ""

    def _index(self) -> dict[tuple[str, str | None], list[Result]]:
        """(check, host) -> results; rebuilt when results were added (a 200-host matrix asks
        for thousands of cells)."""
        cached = self.__dict__.get("_by_cell")
        if cached is None or cached[0] != (id(self.results), len(self.results)):
            index: dict[tuple[str, str | None], list[Result]] = {}
            for r in self.results:
                index.setdefault((r.check, r.host), []).append(r)
            cached = self.__dict__["_by_cell"] = ((id(self.results), len(self.results)), index)
        return cached[1]

    def cell(self, host: str | None, check: str) -> tuple[str, list[Result]]:
        """The matrix cell of `host` × `check`: a per-host check's own test, or for a cluster
        check the findings whose subject is that host (`w1`, `w1:detail`)."""
        index = self._index()
        own = index.get((check, host), [])
        if own or host is None:
            return worst(own), own
        cluster = index.get((check, None), [])
        about = [r for r in cluster if any(subject_host(f.subject) == host for f in r.findings)]
        if not about:
            return "", []
        bad = any(not f.ok for r in about for f in r.findings if subject_host(f.subject) == host)
        return ("failed" if bad else "passed"), about


def first_line(text: str, limit: int = 0) -> str:
    """The first non-blank line, cut to `limit` characters (0: whole)."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return line if not limit or len(line) <= limit else line[:limit - 3] + "..."


def subject_host(subject: str) -> str:
    return subject.split(":", 1)[0]


def worst(results: list[Result]) -> str:
    seen = {r.outcome for r in results}
    return next((o for o in OUTCOMES if o in seen), "")
