"""The reports operators read and CI consumes, from real runs on the lab: JUnit valid against
Jenkins' schema, findings.json round-trips, the HTML matrix rendered by a real browser shows
exactly the fault's cells, the terminal summary names host, area and fix."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.parse
import xml.etree.ElementTree as ET

import pytest
import xmlschema

from kubeaccept.report.results import Run
from lab.faults import FAULTS
from selftests.browser import Dom, dump_dom, screenshot

from .suite import ROOT, run_suite
from .test_matrix import all_tests, expected_failures

SCHEMA = ROOT / "selftests/unit/fixtures/junit/junit-10.xsd"
FAULT = "forward-reject"  # report 03's FORWARD REJECT: the README's screenshot


def test_reports_land_in_reports_without_flags(lab):
    """A plain `pytest --hosts=…` writes the three reports; JUnit validates against
    junit-10.xsd (Jenkins xUnit's schema), one testcase per check × host, host in classname."""
    paths = {n: ROOT / "reports" / n for n in ("junit.xml", "findings.json", "report.html")}
    for p in paths.values():
        p.unlink(missing_ok=True)
    proc = subprocess.run([sys.executable, "-m", "pytest", f"--hosts={lab.inventory}", "-q"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert all(p.exists() for p in paths.values()), proc.stdout[-1000:]
    xmlschema.XMLSchema(SCHEMA).validate(paths["junit.xml"])
    cases = list(ET.parse(paths["junit.xml"]).getroot().iter("testcase"))
    names = [c.get("name") for c in cases]
    assert sorted(names) == sorted(all_tests(lab)) and len(set(names)) == len(names)
    swap = next(c for c in cases if c.get("name") == "node_swap[w1]")
    assert swap.get("classname") == "w1.node"
    out = swap.find("system-out").text
    assert "role: worker" in out and "check_id: node_swap" in out and "evidence: " in out
    etcd = next(c for c in cases if c.get("name") == "cluster_etcd")
    assert etcd.get("classname") == "cluster.etcd" and "leader" in etcd.find("system-out").text
    suite_props = {p.get("name"): p.get("value")
                   for p in ET.parse(paths["junit.xml"]).getroot().iter("property")}
    assert suite_props["phase"] == "non-destructive" and suite_props["hosts"] == "6"
    # -q: the summary is the counts line only
    assert f"kubeaccept: {len(names)} passed (6 hosts)" in proc.stdout
    assert "host  " not in proc.stdout


@pytest.fixture(scope="module")
def faulty_run(_session_lab, tmp_path_factory):
    """One run with the fault injected (-n 2: the findings cross from the workers)."""
    lab = _session_lab
    lab.reload()
    lab.up(2, control_plane=True)
    tmp = tmp_path_factory.mktemp("reports")
    try:
        _, host = lab.inject(FAULT)
        run = run_suite(str(lab.inventory), tmp / "junit.xml", "-n", "2", "-o",
                        "console_output_style=classic", "-v")
    finally:
        lab.heal()
    return lab, host, tmp, run


def test_junit_of_a_failing_run_validates_and_carries_the_fix(faulty_run):
    lab, host, tmp, run = faulty_run
    xmlschema.XMLSchema(SCHEMA).validate(tmp / "junit.xml")
    case = next(c for c in ET.parse(tmp / "junit.xml").getroot().iter("testcase")
                if c.get("name") == f"node_firewall_forward[{host.name}]")
    assert case.get("classname") == f"{host.name}.network"
    message = case.find("failure").get("message")
    assert "| fix: delete FORWARD-path rule 3 of chain FORWARD" in message
    out = case.find("system-out").text
    assert "observed: " in out and "REJECT by FORWARD rule 3" in out and "expected: ACCEPT" in out


def test_findings_json_round_trips(faulty_run):
    lab, host, tmp, run = faulty_run
    raw = json.loads((tmp / "junit.findings.json").read_text())
    loaded = Run.read(tmp / "junit.findings.json")
    assert loaded.to_json() == raw
    assert raw["counts"]["failed"] == len(run.failing())
    bad = next(r for r in loaded.results if r.test == f"node_firewall_forward[{host.name}]")
    assert bad.outcome == "failed" and bad.area == "network" and bad.host == host.name
    assert any("REJECT by FORWARD rule 3" in f.observed and f.evidence for f in bad.findings)
    assert {r.test for r in loaded.results} == all_tests(lab)


def test_html_matrix_in_a_real_browser_shows_exactly_the_faults_cells(faulty_run):
    lab, host, tmp, run = faulty_run
    page = tmp / "junit.html"
    expected = set(expected_failures(lab, FAULTS[FAULT], host))
    test = f"node_firewall_forward[{host.name}]"
    url = f"{page.as_uri()}?click={urllib.parse.quote(test)}"
    dom = Dom(dump_dom(url))
    assert dom.find("body")[0].get("data-ready") == "1"  # the page's script ran to the end
    cells = [e for e in dom.find("td") if "c" in e.get("class", "").split()]
    red = {t for e in cells if {"failed", "error"} & set(e["class"].split())
           for t in e["data-tests"].split()}
    assert red == expected
    # every test of the run has a cell; a host row's per-host cells are its own tests
    assert {t for e in cells for t in e["data-tests"].split()} == all_tests(lab)
    cell = next(e for e in cells if e["data-tests"] == test)
    assert cell["data-host"] == host.name and "REJECT by FORWARD rule 3" in cell["title"]
    # the click opened the details: observed, why, fix
    panel = dom.by_id("detail")
    assert "open" in panel["class"] and panel["data-showing"] == test
    assert "REJECT by FORWARD rule 3" in panel["text"] and "fix: delete FORWARD-path" in \
        panel["text"] and "why it matters" in panel["text"]
    failures = dom.by_id("failures")["text"]
    assert all(t in failures for t in expected)
    shot = screenshot(url, ROOT / "reports" / "matrix.png")
    shutil.copy(shot, tmp / "matrix.png")


def test_terminal_summary_names_host_area_and_fix(faulty_run):
    lab, host, tmp, run = faulty_run
    out = run.output
    section = out[out.index("kubeaccept summary"):]
    row = next(ln for ln in section.splitlines() if ln.startswith(host.name + " "))
    # control plane "ok": cluster_api_endpoint judged the worker's kubelet.conf (a finding
    # about w2); etcd and HA judge nothing of a worker
    assert row.split()[1:] == ["worker", "ok", "FAIL", "1", "ok", "·", "ok", "·"], row
    assert "kubeaccept: " in section and " failed, " in section
    assert (f"  node_firewall_forward[{host.name}]: delete FORWARD-path rule 3 of chain "
            "FORWARD") in section
