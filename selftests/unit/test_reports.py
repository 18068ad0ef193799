"""Reports from a Run, without a cluster: findings.json, summary, HTML, JUnit, baseline diff."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import xmlschema

from kubeaccept.checks import baseline
from kubeaccept.model.apistate import ApiState
from kubeaccept.model.findings import Finding, passed
from kubeaccept.report import html, junit, summary
from kubeaccept.report.results import Result, Run

from .factory import context, facts, host

SCHEMA = Path(__file__).parent / "fixtures/junit/junit-10.xsd"
BAD = Finding("w1:/proc/swaps", False, "swap on: /swapfile <script>x</script>",
              "no active swap", "kubelet exits", "swapoff -a", ("cat /proc/swaps: /swapfile",), check_id="node_swap")


def sample_run() -> Run:
    run = Run(inventory="inv/hosts.yaml", started="s", finished="f", exit_status=1,
              hosts=[{"name": "cp1", "roles": ["control_plane", "etcd"], "address": "a"},
                     {"name": "w1", "roles": ["worker"], "address": "b"},
                     {"name": "w2", "roles": ["worker"], "address": "c"}],
              checks=[{"id": "node_swap", "title": "no swap", "area": "node",
                       "roles": ["worker"]},
                      {"id": "cluster_nodes_ready", "title": "Ready", "area": "node",
                       "roles": []}],
              unreachable={"w2": "unreachable: timed out after 10s"})
    run.results = [
        Result("node_swap[cp1]", "tests/test_node.py::node_swap[cp1]", "node_swap", "cp1",
               "node", "passed", findings=[passed("cp1", "none", "none", check_id="node_swap")]),
        Result("node_swap[w1]", "tests/test_node.py::node_swap[w1]", "node_swap", "w1", "node",
               "failed", "node_swap: 1 of 1 finding(s) failed", 0.01, [BAD],
               {"check_id": "node_swap", "host": "w1"}),
        Result("node_swap[w2]", "tests/test_node.py::node_swap[w2]", "node_swap", "w2", "node",
               "error", "unreachable: timed out after 10s"),
        Result("cluster_nodes_ready", "tests/test_node.py::cluster_nodes_ready",
               "cluster_nodes_ready", None, "node", "failed", "x", 0.0,
               [passed("cp1", "Ready", "Ready", check_id="cluster_nodes_ready"),
                Finding("w1", False, "NotReady: PLEG is not healthy",
                        "Ready", fix="look at the runtime", check_id="cluster_nodes_ready")]),
    ]
    return run


def test_findings_json_round_trips(tmp_path):
    run = sample_run()
    run.write(tmp_path / "f.json")
    back = Run.read(tmp_path / "f.json")
    assert back == run and back.results[1].findings[0] == BAD
    assert back.to_json()["counts"] == {"failed": 2, "error": 1, "waived": 0, "passed": 1,
                                       "skipped": 0}


def test_a_cluster_checks_cell_in_a_host_row_is_its_findings_about_that_host():
    run = sample_run()
    assert run.cell("w1", "cluster_nodes_ready")[0] == "failed"
    assert run.cell("cp1", "cluster_nodes_ready")[0] == "passed"
    assert run.cell("w2", "cluster_nodes_ready") == ("", [])
    assert run.cell(None, "cluster_nodes_ready")[0] == "failed"


def test_summary_table_unreachable_apart_and_one_fix_per_failing_test():
    lines = summary.lines(sample_run())
    assert lines[0].split() == ["host", "roles", "node"]
    assert lines[1].split() == ["cp1", "control_plane,etcd", "ok"]
    assert lines[2].split() == ["w1", "worker", "FAIL", "2"]  # its own test + the cluster's
    assert lines[3].split() == ["w2", "worker", "unreachable"]
    assert "unreachable (their tests ERROR): w2: unreachable: timed out after 10s" in lines
    assert "  node_swap[w1]: swapoff -a" in lines
    assert "  cluster_nodes_ready: look at the runtime" in lines
    assert not any(ln.startswith("  node_swap[w2]") for ln in lines)  # listed as unreachable
    assert summary.lines(sample_run(), quiet=True) == [
        "kubeaccept: 2 failed, 1 error, 1 passed (3 hosts); failing on cluster, w1, w2"]


def test_html_escapes_what_nodes_say():
    page = html.render(sample_run())
    assert "<script>x</script>" not in page and "&lt;script&gt;x&lt;/script&gt;" in page
    # the JSON for the click details cannot close its script element
    data = page[page.index('id="data">'):page.index("</script>", page.index('id="data">'))]
    assert "<\\/script>" in data
    # w1: node_swap and the cluster check's finding about w1; the cluster row
    assert page.count('class="c failed"') == 3 and 'class="c error"' in page
    assert "w2 (unreachable)" in page and 'id="unreachable"' in page


def test_junit_rewrite_validates_and_moves_properties(tmp_path):
    xml = tmp_path / "j.xml"
    xml.write_text(
        '<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests">'
        '<testsuite name="kubeaccept" errors="1" failures="2" skipped="0" tests="4" '
        'time="0.1" timestamp="t" hostname="h">'
        '<testcase classname="tests.test_node" name="node_swap[w1]" file="kubeaccept/suite.py" '
        'line="10" time="0.010"><properties><property name="check_id" value="node_swap"/>'
        '<property name="host" value="w1"/></properties><failure message="Failed: node_swap: '
        '1 of 1 finding(s) failed&#10;more">text</failure></testcase>'
        '<testcase classname="tests.test_node" name="cluster_nodes_ready" time="0.001"/>'
        '<testcase classname="tests.test_mine" name="test_own" time="0.001"/>'
        '</testsuite></testsuites>')
    junit.rewrite(xml, sample_run(), "0.1.0")
    xmlschema.XMLSchema(SCHEMA).validate(xml)
    cases = {c.get("name"): c for c in ET.parse(xml).getroot().iter("testcase")}
    swap = cases["node_swap[w1]"]
    assert swap.get("classname") == "w1.node" and swap.get("file") is None
    assert swap.find("failure").get("message") == ("Failed: node_swap: 1 of 1 finding(s) "
                                                   "failed | fix: swapoff -a")
    out = swap.find("system-out").text
    assert out.startswith("role: worker\ncheck_id: node_swap\nhost: w1\nobserved: w1:/proc")
    assert cases["cluster_nodes_ready"].get("classname") == "cluster.node"
    assert cases["test_own"].get("classname") == "tests.test_mine"  # not ours: left alone
    props = {p.get("name"): p.get("value") for p in
             ET.parse(xml).getroot().find("testsuite").find("properties")}
    assert props["unreachable.w2"] == "unreachable: timed out after 10s"
    assert props["inventory"] == "inv/hosts.yaml" and props["kubeaccept_version"] == "0.1.0"


# --- the baseline diff ---------------------------------------------------------------------

def changes(before, now):
    findings, listed = baseline.diff("w1", before, now)
    return findings, {(c["what"], c["failed"]) for c in listed}


def test_a_changed_setting_or_a_port_gone_fails_naming_the_change():
    findings, listed = changes({"listen tcp/10250": "kubelet", "sysctl net.ipv4.ip_forward": "1"},
                               {"sysctl net.ipv4.ip_forward": "0"})
    assert listed == {("listen tcp/10250", True), ("sysctl net.ipv4.ip_forward", True)}
    bad = [f for f in findings if not f.ok]
    assert [f.observed for f in bad] == ["listen tcp/10250: kubelet → absent",
                                         "sysctl net.ipv4.ip_forward: 1 → 0"]
    assert "restore it, or save a new baseline" in bad[0].fix


def test_upgrade_changes_are_shown_not_failed():
    findings, listed = changes(
        {"version kubelet": "Kubernetes v1.36.1", "cert /a.crt": "2027-01-01",
         "image etcd": "etcd:3.5"},
        {"version kubelet": "Kubernetes v1.37.2", "cert /a.crt": "2028-01-01",
         "image etcd": "etcd:3.6", "listen tcp/9099": "calico-node"})
    assert all(f.ok for f in findings) and len(listed) == 4
    assert any(f.note == "w1:version kubelet: Kubernetes v1.36.1 → Kubernetes v1.37.2"
               for f in findings)


def test_restarts_count_only_when_they_grow_and_pods_come_and_go():
    _, listed = baseline.diff("cluster",
                              {"restarts ns/a:c": "3", "restarts ns/gone:c": "1"},
                              {"restarts ns/a:c": "3", "restarts ns/new:c": "0",
                               "restarts ns/new2:c": "5"})
    assert [c["what"] for c in listed] == ["restarts ns/new2:c"]
    _, listed = baseline.diff("cluster", {"restarts ns/a:c": "3"},
                              {"restarts ns/a:c": "1"})  # recreated
    assert listed == []


def test_interfaces_that_come_and_go_are_not_changes_but_their_values_are():
    _, listed = changes({"sysctl net.ipv4.conf.veth1.rp_filter": "1",
                         "sysctl net.ipv4.conf.all.rp_filter": "1"},
                        {"sysctl net.ipv4.conf.veth2.rp_filter": "1"})
    assert listed == {("sysctl net.ipv4.conf.all.rp_filter", True)}


def test_a_host_missing_from_the_baseline_fails():
    findings, _ = baseline.diff("w9", None, {"x": "1"})
    assert [f.observed for f in findings] == ["not in the baseline"] and not findings[0].ok


def test_node_snapshot_reads_the_facts_the_checks_read():
    f = facts(sysctl="net.ipv4.ip_forward 1\n",
              listen_tcp="LISTEN 0 4096 *:10250 *:* users:((\"kubelet\",pid=9,fd=3))")
    snap = baseline.node_snapshot(context(f, host("w1")))
    assert snap["sysctl net.ipv4.ip_forward"] == "1"
    assert snap["listen tcp/10250"] == "kubelet"
    assert snap["kubelet cgroup driver"] == "systemd"
    assert snap["runtime containerd cgroup driver"] == "systemd"


def test_cluster_snapshot_conditions_and_restarts():
    api = ApiState("https://x", nodes=[{"metadata": {"name": "w1"}, "status": {
        "conditions": [{"type": "Ready", "status": "True"}],
        "nodeInfo": {"kubeletVersion": "v1.37.2"}}}],
        pods=[{"metadata": {"namespace": "kube-system", "name": "p"}, "status": {
            "containerStatuses": [{"name": "c", "restartCount": 4}]}}])
    assert baseline.cluster_snapshot(api) == {
        "node w1 Ready": "True", "version node w1 kubeletVersion": "v1.37.2",
        "restarts kube-system/p:c": "4"}


def test_baseline_snapshots_are_masked_before_they_leave_the_worker():
    from kubeaccept.suite.verdict import _redacted

    snap = {"part": "nodes", "snapshot": {"kubelet x": "password=hunter2"},
            "changes": [{"now": "token: abc"}]}
    assert _redacted(snap) == {"part": "nodes", "snapshot": {"kubelet x": "password=***"},
                               "changes": [{"now": "token: ***"}]}
