"""The pre-upgrade baseline on the lab: save on the healthy cluster, inject a fault, compare:
the diff names exactly the change (and nothing else changes)."""

from __future__ import annotations

import json
import re

import pytest

from kubeaccept.report.results import Run

from .suite import run_suite

# fault -> the changes the comparison must list, exactly ("where: what: before → now")
CHANGES = {
    "containerd-cgroupfs": {"cp3: runtime containerd cgroup driver: systemd → cgroupfs"},
    "kubelet-down": {"w2: listen tcp/10250: kubelet → absent"},
    "etcd-two-members": {"cp1: etcd members: cp1, cp2, cp3 → cp1, cp2",
                         "cp2: etcd members: cp1, cp2, cp3 → cp1, cp2",
                         "cp3: etcd members: cp1, cp2, cp3 → absent",
                         "cp3: listen tcp/2379: etcd → absent",
                         "cp3: listen tcp/2380: etcd → absent",
                         "cp3: listen tcp/2381: etcd → absent"},
    "daemonset-crashloop": {"cluster: restarts kube-system/fluentd-*:fluentd: 0 → 2981"},
}


@pytest.fixture(scope="module")
def saved(_session_lab, tmp_path_factory):
    lab = _session_lab
    lab.reload()
    lab.up(2, control_plane=True)
    path = tmp_path_factory.mktemp("baseline") / "baseline.json"
    run = run_suite(str(lab.inventory), path.with_name("save.xml"), "-n", "2",
                    f"--save-baseline={path}")
    assert run.returncode == 0, run.output[-2000:]
    return path


def test_save_records_every_host_and_the_cluster(saved, lab):
    doc = json.loads(saved.read_text())
    assert doc["format"] == "kubeaccept-baseline/1"
    assert set(doc["nodes"]) == {h.name for h in lab.hosts}
    cp1 = doc["nodes"]["cp1"]
    assert cp1["listen tcp/6443"] == "kube-apiserver" and cp1["etcd members"] == "cp1, cp2, cp3"
    assert cp1["runtime containerd cgroup driver"] == "systemd"
    assert cp1["sysctl net.ipv4.ip_forward"] == "1"
    assert cp1["cert /etc/kubernetes/pki/apiserver.crt"].startswith("20")
    assert cp1["image kube-apiserver"].startswith("registry.k8s.io/kube-apiserver:v1.")
    assert doc["nodes"]["lb1"]["listen tcp/6443"] == "haproxy"
    cluster = doc["cluster"]["cluster"]
    assert cluster["node w1 Ready"] == "True"
    assert any(k.startswith("restarts kube-system/coredns-") for k in cluster)


def test_healthy_lab_compares_clean(saved, lab, tmp_path):
    run = run_suite(str(lab.inventory), tmp_path / "j.xml", f"--compare-baseline={saved}",
                    "-k", "unchanged")
    assert run.returncode == 0, run.output[-3000:]
    assert set(run.outcomes.values()) == {"passed"}
    assert Run.read(tmp_path / "j.findings.json").changes == []


@pytest.mark.parametrize("fault", CHANGES)
def test_compare_names_exactly_the_change(saved, lab, tmp_path, fault):
    try:
        lab.inject(fault)
        run = run_suite(str(lab.inventory), tmp_path / "j.xml", "-n", "2", "-v",
                        f"--compare-baseline={saved}")
    finally:
        lab.heal()
    report = Run.read(tmp_path / "j.findings.json")
    seen = {re.sub(r"fluentd-[a-z0-9]+:", "fluentd-*:", f"{c['where']}: {c['what']}: "
                   f"{c['before']} → {c['now']}") for c in report.changes}
    assert seen == CHANGES[fault], run.output[-3000:]
    where = {c.split(":")[0] for c in CHANGES[fault]}
    failing = {t for t in run.failing() if "unchanged" in t}
    assert failing == {"cluster_unchanged" if w == "cluster" else f"node_unchanged[{w}]"
                       for w in where}
    for test in failing:
        assert "restore it, or save a new baseline" in run.messages[test]
    # the terminal and the HTML report list the changes too
    assert "changed since the baseline (! = fails):" in run.output
    html = (tmp_path / "j.html").read_text()
    assert 'id="changes"' in html and all(c["what"] in html for c in report.changes)


def test_a_bad_baseline_file_is_one_line(lab, tmp_path):
    bad = tmp_path / "b.json"
    bad.write_text('{"format": "something else"}')
    run = run_suite(str(lab.inventory), tmp_path / "j.xml", f"--compare-baseline={bad}")
    assert run.returncode == 4 and "Traceback" not in run.output
    assert f"--compare-baseline {bad}: not a kubeaccept-baseline/1 file (write one with " \
           "--save-baseline)" in run.output
    run = run_suite(str(lab.inventory), tmp_path / "j.xml",
                    f"--compare-baseline={tmp_path / 'missing.json'}")
    assert run.returncode == 4 and "No such file or directory" in run.output
