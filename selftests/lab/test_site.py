"""Site checks and waivers on the lab: the user's own testinfra tests (a host check, a check
failing on purpose, a cluster check with the suite's `kube`) beside the built-in suite, with a
waiver file holding one active, one expired and one stale entry; serial and with -n 2, one SSH
login per host (counted in each host's sshd log)."""

from __future__ import annotations

import datetime as dt
import json
import textwrap

import pytest

from .suite import ROOT, run_suite

SITE = '''\
import pytest


def test_hostname_is_the_inventory_name(host):
    """the host's hostname is its inventory name"""
    assert host.check_output("hostname") == host.backend.get_pytest_id()


@pytest.mark.roles("worker")
def test_site_marker(host):
    """/etc/kubeaccept-site exists on every worker"""
    assert host.file("/etc/kubeaccept-site").exists, "no /etc/kubeaccept-site"


def test_kube_system_namespace(kube):
    """the cluster has a kube-system namespace"""
    names = [n["metadata"]["name"] for n in kube.items("/api/v1/namespaces")]
    assert "kube-system" in names
'''


def waivers(tmp_path) -> str:
    path = tmp_path / "waivers.yaml"
    later = dt.date.today() + dt.timedelta(days=30)
    path.write_text(textwrap.dedent(f"""\
        waivers:
          - check: test_site_marker
            host: w1
            reason: w1's site file comes with the next image
            owner: platform
            expires: {later}
          - check: test_site_marker
            host: w2
            reason: w2 was to get it last year
            owner: platform
            expires: 2025-12-31
          - check: node_swap
            reason: swap was on once
            owner: platform
            expires: {later}
        """))
    return str(path)


@pytest.mark.parametrize("extra", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_site_checks_and_waivers(lab, tmp_path, extra):
    site = tmp_path / "site"
    site.mkdir()
    (site / "test_site.py").write_text(SITE)
    before = lab.logins()
    run = run_suite(str(lab.inventory), tmp_path / "junit.xml", "-c", str(ROOT / "pytest.ini"),
                    "--rootdir", str(ROOT), f"--waivers={waivers(tmp_path)}", "-rA",
                    "tests", str(site), *extra)
    after = lab.logins()
    assert {h: after[h] - before[h] for h in after} == dict.fromkeys(after, 1), after
    assert run.returncode == 1, run.output[-3000:]
    assert "Traceback" not in run.output
    names = [h.name for h in lab.hosts]
    # ids are the inventory's names; the built-in suite is all green beside them
    for name in names:
        assert run.outcomes[f"test_hostname_is_the_inventory_name[{name}]"] == "passed"
    assert run.outcomes["test_kube_system_namespace"] == "passed"
    assert run.outcomes["test_site_marker[w1]"] == "skipped"  # waived: JUnit's xfail
    assert "w1's site file comes with the next image" in run.messages["test_site_marker[w1]"]
    assert run.outcomes["test_site_marker[w2]"] == "failed"
    assert "no /etc/kubeaccept-site" in run.messages["test_site_marker[w2]"]
    assert not any(f"test_site_marker[{n}]" in run.outcomes for n in names if n[0] != "w")
    builtin = {t: o for t, o in run.outcomes.items() if not t.startswith("test_")}
    assert builtin and set(builtin.values()) <= {"passed", "skipped"}, builtin
    assert "expired on 2025-12-31: it no longer waives this failure" in run.output
    assert "waiver STALE, matched no failure: " in run.output and ": node_swap on *" in run.output
    doc = json.loads((tmp_path / "junit.findings.json").read_text())
    by = {r["test"]: r for r in doc["results"]}
    assert by["test_site_marker[w1]"]["outcome"] == "waived"
    assert by["test_site_marker[w2]"]["findings"][0]["observed"].startswith(
        "AssertionError: no /etc/kubeaccept-site")
    assert [w["state"] for w in doc["waivers"]] == ["active", "expired", "stale"]
    assert "hostname" in doc["site_commands"]["cp1"]
    page = (tmp_path / "junit.html").read_text()
    assert 'id="site-commands"' in page and "test_site_marker" in page
