"""Run the acceptance suite in a subprocess and read its JUnit report."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from kubeaccept.checks.all import load

ROOT = Path(__file__).resolve().parents[2]
# What a run without options holds, from the check registry (the suite's own source).
CHECKS = [c for c in load().values() if not (c.destructive or c.only_with)]


def checks_on(role: str) -> list:
    """The checks a run tests on each host of `role`."""
    return [c for c in CHECKS if role in c.roles]


@dataclass
class SuiteRun:
    returncode: int
    outcomes: dict[str, str]   # test name (check_id[host]) -> passed/failed/error/skipped
    messages: dict[str, str]   # test name -> failure/error text
    properties: dict[str, dict[str, str]]
    seconds: float
    output: str

    def failing(self) -> set[str]:
        return {n for n, o in self.outcomes.items() if o in ("failed", "error")}


def run_suite(hosts: str, junit: Path, *extra: str, timeout: float = 600) -> SuiteRun:
    """Run it; outcomes and messages from the JUnit file, properties (check_id, host,
    evidence, …) from findings.json beside it (JUnit keeps them as system-out text)."""
    start = time.monotonic()
    findings = junit.with_suffix(".findings.json")
    findings.unlink(missing_ok=True)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", f"--hosts={hosts}", f"--junitxml={junit}", "-q",
         f"--findings={findings}", f"--report-html={junit.with_suffix('.html')}",
         "-p", "no:randomly", *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    seconds = time.monotonic() - start
    outcomes, messages, properties = {}, {}, {}
    if junit.exists():
        for case in ET.parse(junit).getroot().iter("testcase"):
            name = case.get("name")
            outcome = "passed"
            for tag in ("failure", "error", "skipped"):
                el = case.find(tag)
                if el is not None:
                    outcome = {"failure": "failed"}.get(tag, tag)
                    messages[name] = (el.get("message") or "") + "\n" + (el.text or "")
            outcomes[name] = outcome
    if findings.exists():
        for r in json.loads(findings.read_text())["results"]:
            properties[r["test"]] = r["properties"]
    return SuiteRun(proc.returncode, outcomes, messages, properties, seconds,
                    proc.stdout + proc.stderr)
