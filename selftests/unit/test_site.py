"""Site checks (kubeaccept.suite.site), waivers (kubeaccept.model.waivers, suite.waive) and the
xdist SSH broker (kubeaccept.remote.broker), without SSH: a host with ansible_connection=local
runs its commands here, as Ansible's local connection does."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import testinfra.host

from kubeaccept.inventory import load_hosts
from kubeaccept.model import waivers
from kubeaccept.model.settings import Settings
from kubeaccept.remote.factstore import FactStore
from kubeaccept.remote.transport import CommandTimeout, Unreachable
from kubeaccept.suite.site import SuiteBackend

ROOT = Path(__file__).resolve().parents[2]
DAY = dt.date(2026, 12, 7)


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def local_inventory(tmp_path: Path) -> Path:
    return write(tmp_path / "hosts.ini", """\
        [kube_control_plane]
        cp1 ansible_connection=local
        [kube_node]
        w1 ansible_connection=local
        w2 ansible_connection=local
        """)


# --- waiver files ----------------------------------------------------------------------------


def test_a_waiver_file_reads_into_entries_with_their_lines(tmp_path):
    path = write(tmp_path / "w.yaml", """\
        waivers:
          - check: node_swap
            host: w*
            reason: swap kept until the RAM upgrade
            owner: ops@example.com
            expires: 2027-01-31
          - check: cluster_*
            reason: r
            owner: o
            expires: 2026-12-07
        """)
    first, second = waivers.load(path)
    assert first.where == f"{path}:2" and first.host == "w*"
    assert first.expires == dt.date(2027, 1, 31)
    assert second.host == "*" and second.where == f"{path}:7"
    # through its expiry day, not after
    assert not second.expired(DAY) and second.expired(DAY + dt.timedelta(days=1))
    assert first.covers("node_swap", ["w1"]) and not first.covers("node_swap", ["cp1"])
    assert not first.covers("node_swap", ["w1", "cp1"]), "a cluster failure about cp1 too"
    assert second.covers("cluster_nodes_ready", ["cluster"])


@pytest.mark.parametrize(("text", "line", "words"), [
    ("waivers:\n  - check: [x\n", 3, "not YAML"),
    ("waivers:\n  - check: x\n    owner: o\n    expires: 2027-01-01\n", 2, "has no reason"),
    ("waivers:\n  - check: x\n    reason: r\n    owner: o\n    expiry: 2027-01-01\n", 5,
     "unknown key 'expiry'"),
    ("- check: x\n  reason: r\n  owner: o\n  expires: 2027-13-01\n", 1, "is not a date"),
    ("check: x\n", 1, "under `waivers:`"),
    ("waivers: x\n", 1, "expected a list of waivers"),
    ("waivers:\n  - just a string\n", 2, "is not a mapping"),
    ("waivers:\n  - check: x\n    reason: ''\n    owner: o\n    expires: 2027-01-01\n", 3,
     "single non-empty value"),
])
def test_a_mistake_in_the_waiver_file_names_its_line(tmp_path, text, line, words):
    path = tmp_path / "w.yaml"
    path.write_text(text)
    with pytest.raises(waivers.WaiverError) as err:
        waivers.load(path)
    assert str(err.value).startswith(f"{path}:{line}: ") and words in str(err.value)
    assert "\n" not in str(err.value)


def test_an_expired_waiver_is_reported_not_used():
    live = waivers.Waiver("node_*", "w1", "r", "o", DAY, "f:1")
    old = waivers.Waiver("node_swap", "*", "r", "o", DAY - dt.timedelta(days=1), "f:7")
    assert waivers.first_covering([old, live], "node_swap", ["w1"], DAY) == (live, None)
    assert waivers.first_covering([old, live], "node_swap", ["w2"], DAY) == (None, old)
    assert waivers.first_covering([live], "cluster_etcd", ["w1"], DAY) == (None, None)


# --- the testinfra backend over the fact store -------------------------------------------


def store_for(tmp_path: Path, broker: Path | None = None) -> FactStore:
    inv = load_hosts(str(local_inventory(tmp_path)), tmp_path)
    return FactStore(inv, Settings(command_timeout=5), broker=broker)


def test_testinfra_runs_on_the_stores_connection(tmp_path):
    store = store_for(tmp_path)
    w1 = store.host_named("w1")
    host = testinfra.host.Host(SuiteBackend(w1, store))
    assert host.backend.get_pytest_id() == "w1"
    assert host.check_output("echo %s", "a b") == "a b"
    # bytes as the command wrote them (testinfra's file.content reads stdout_bytes)
    assert host.run("printf '\\000\\377'").stdout_bytes == b"\x00\xff"
    (tmp_path / "f").write_text("x=1\n")
    assert host.file(str(tmp_path / "f")).contains("x=1")
    assert host.backend.ran[:2] == ["echo 'a b'", "printf '\\000\\377'"]
    assert store.logins == 1, "one connection for every command"
    store.close()


def test_a_site_command_that_hangs_fails_within_the_command_timeout(tmp_path):
    store = store_for(tmp_path)
    store.settings = Settings(command_timeout=0.5)
    host = testinfra.host.Host(SuiteBackend(store.host_named("w1"), store))
    with pytest.raises(pytest.fail.Exception, match="did not finish within 0.5s"):
        host.run("sleep 5")
    store.close()


# --- the xdist broker --------------------------------------------------------------------


def test_workers_run_commands_on_the_controllers_logins(tmp_path):
    controller = store_for(tmp_path)
    sock = tmp_path / "ssh.sock"
    controller.serve(sock)
    worker = store_for(tmp_path, broker=sock)
    try:
        w1 = worker.host_named("w1")
        assert worker.connection(w1).run("echo $((6*7))", 5).stdout == "42\n"
        assert worker.connection(w1).run("printf '\\377'", 5, raw=True).stdout == b"\xff"
        assert worker.connection(w1).run("cat", 5, b"in").stdout == "in"
        with pytest.raises(CommandTimeout, match="within 0.3s"):
            worker.connection(w1).run("sleep 3", 0.3)
        assert worker.logins == 0 and controller.logins == 1
    finally:
        worker.close()
        controller.close()
    assert not sock.exists()
    with pytest.raises(Unreachable, match="SSH broker"):
        worker.connection(worker.host_named("w2")).run("true", 1)


# --- a run with site checks and waivers --------------------------------------------------


def run(tmp_path: Path, *args: str) -> tuple[int, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-c", str(ROOT / "pytest.ini"), "--rootdir", str(ROOT),
         "-p", "no:cacheprovider", "-rA", f"--junitxml={tmp_path / 'j.xml'}",
         f"--findings={tmp_path / 'f.json'}", f"--report-html={tmp_path / 'r.html'}", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout + proc.stderr


SITE = '''\
import pytest


def test_echo(host):
    """the shell answers"""
    assert host.check_output("echo ok") == "ok"


@pytest.mark.roles("worker")
def test_marker(host):
    """no marker file on workers"""
    assert host.backend.get_pytest_id() != "w2", "w2 fails on purpose"


def test_api(kube):
    """the API can be used"""
'''


def test_site_checks_and_waivers_in_a_run(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    write(site / "test_mine.py", SITE)
    path = write(tmp_path / "waivers.yaml", f"""\
        waivers:
          - check: test_marker
            host: w2
            reason: w2 is being rebuilt
            owner: ops
            expires: {DAY + dt.timedelta(days=3650)}
          - check: test_echo
            reason: an old one
            owner: ops
            expires: 2020-01-01
          - check: node_swap
            reason: nothing fails it here
            owner: ops
            expires: 2099-01-01
        """)
    rc, out = run(tmp_path, f"--hosts={local_inventory(tmp_path)}", f"--waivers={path}",
                  "--kubeconfig=/nonexistent", str(site))
    assert rc == 1, out
    assert "Traceback" not in out
    # ids are the inventory's names; roles pick the hosts
    assert "PASSED site/test_mine.py::test_echo[cp1]" not in out  # relative to the rootdir
    for name in ("test_echo[cp1]", "test_echo[w1]", "test_echo[w2]", "test_marker[w1]"):
        assert f"::{name}" in out and "PASSED" in out
    assert "test_marker[cp1]" not in out
    assert "XFAIL" in out and "test_marker[w2] - waived by " + f"{path}:2" in out
    assert "test_api - Failed: cannot use the Kubernetes API" in out
    assert f"waiver STALE, matched no failure: {path}:11: node_swap" in out
    assert f"waiver EXPIRED, no longer waives: {path}:7: test_echo" in out
    cases = {c.get("name"): c for c in ET.parse(tmp_path / "j.xml").getroot().iter("testcase")}
    assert cases["test_echo[w1]"].get("classname") == "w1.site"
    assert cases["test_api"].get("classname") == "cluster.site"
    skipped = cases["test_marker[w2]"].find("skipped")
    assert skipped is not None and "w2 is being rebuilt" in skipped.get("message")
    doc = json.loads((tmp_path / "f.json").read_text())
    by = {r["test"]: r for r in doc["results"]}
    assert by["test_marker[w2]"]["outcome"] == "waived"
    assert by["test_echo[w1]"]["findings"][0]["evidence"] == ["ran on w1: echo ok"]
    assert {c["id"] for c in doc["checks"] if c["area"] == "site"} == \
        {"test_echo", "test_marker", "test_api"}
    assert [w["state"] for w in doc["waivers"]] == ["active", "expired", "stale"]
    assert doc["site_commands"]["w1"] == ["echo ok"]
    assert 'id="waivers"' in (tmp_path / "r.html").read_text()


def test_an_expired_waiver_leaves_the_failure_and_says_so(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    write(site / "test_mine.py", SITE)
    path = write(tmp_path / "waivers.yaml", """\
        - check: test_marker
          host: w2
          reason: w2 was being rebuilt
          owner: ops
          expires: 2020-01-01
        """)
    rc, out = run(tmp_path, f"--hosts={local_inventory(tmp_path)}", f"--waivers={path}",
                  "-k", "marker", str(site))
    assert rc == 1 and "test_mine.py::test_marker[w2] - AssertionError: w2 fails on purpose" \
        in out, out
    assert "  test_marker[w2]: AssertionError: w2 fails on purpose" in out  # the fix lines
    assert f"the waiver at {path}:1 expired on 2020-01-01" in out


def test_a_bad_waiver_file_is_one_error_line(tmp_path):
    path = write(tmp_path / "waivers.yaml", "waivers:\n  - check: x\n")
    rc, out = run(tmp_path, f"--hosts={local_inventory(tmp_path)}", f"--waivers={path}",
                  str(tmp_path))
    assert rc == 4 and "Traceback" not in out
    assert f"ERROR: {path}:2: waiver 1 has no reason, owner, expires" in out


def test_kubeaccept_list_shows_site_checks_and_waivers(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    write(site / "test_mine.py", SITE)
    path = write(tmp_path / "waivers.yaml", "- {check: test_marker, reason: r, owner: o, "
                 "expires: 2099-01-01}\n")
    rc, out = run(tmp_path, f"--hosts={local_inventory(tmp_path)}", f"--waivers={path}",
                  "--kubeaccept-list", str(site))
    assert rc == 0, out
    assert "test_marker  [site; " in out and "on: w1, w2" in out
    assert "3 site checks" in out and f"waiver active: {path}:1: test_marker on *" in out
    assert not (tmp_path / "j.xml").exists() or "testcase" not in (tmp_path / "j.xml").read_text()


def test_the_example_site_folder_and_waivers_are_what_the_docs_say(tmp_path):
    example = ROOT / "inventory" / "examples" / "site"
    entries = waivers.load(example / "waivers.yaml")
    assert [w.check for w in entries] == ["test_max_map_count_for_search_workloads",
                                          "node_swap"]
    rc, out = run(tmp_path, f"--hosts={local_inventory(tmp_path)}",
                  f"--waivers={example / 'waivers.yaml'}", "--kubeaccept-list", str(example))
    assert rc == 0, out
    assert "test_clock_is_synchronised  [site; " in out and "on: cp1, w1, w2" in out
    assert "test_every_node_has_a_zone  [site; " in out and "on: cluster" in out
    assert "3 site checks" in out
    docs = (ROOT / "docs" / "site-checks.md").read_text()
    assert "def test_every_node_has_a_zone(kube):" in docs
    assert "waiver 2 has no owner: every waiver names its check, why, who owns it and until " \
        "when" in docs


class Recording:
    """A connection that records what it was asked to run."""

    def __init__(self):
        self.asked = []

    def run(self, command, timeout, stdin=b"", raw=False):
        from kubeaccept.remote.transport import Result

        self.asked.append((command, stdin))
        return Result(0, b"", b"")


class OneConnection:
    def __init__(self, conn):
        self.conn = conn
        self.settings = Settings(command_timeout=5)

    def connection(self, host):
        return self.conn


def test_become_runs_the_whole_line_as_root_as_ansible_become_says():
    """ansible_become: the line runs under sudo -n /bin/sh -c (a pipe included), as
    testinfra's own sudo does; with a become password, sudo -S gets it on stdin."""
    from kubeaccept.model.hosts import Host

    conn = Recording()
    plain = Host("w1", "198.18.1.1", user="ops", become=True)
    testinfra.host.Host(SuiteBackend(plain, OneConnection(conn))).run("cat /etc/x | wc -l")
    assert conn.asked[-1] == ("sudo -n -- /bin/sh -c 'cat /etc/x | wc -l'", b"")
    secret = Host("w1", "198.18.1.1", user="ops", become=True, become_password="pw")
    testinfra.host.Host(SuiteBackend(secret, OneConnection(conn))).run("id -u")
    assert conn.asked[-1] == ("sudo -S -p '' -- /bin/sh -c 'id -u'", b"pw\n")
    root = Host("w1", "198.18.1.1", user="root", become=True)
    testinfra.host.Host(SuiteBackend(root, OneConnection(conn))).run("id -u")
    assert conn.asked[-1] == ("id -u", b"")
