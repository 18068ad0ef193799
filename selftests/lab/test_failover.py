"""The failover gate on the lab: the healthy lab passes it for the etcd leader and for each
control plane, every master powered on again; each gate fault is caught with its diagnosis,
and whatever happens the host is restored. The non-destructive suite never powers anything
off (the lab's power.log says who did)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .suite import ROOT, run_suite

GATE = ("-p", "no:xdist")


def power_log(lab) -> list[str]:
    path = lab.dir / "power.log"
    return path.read_text().splitlines() if path.exists() else []


def assert_restored(lab) -> None:
    lab.reload()
    assert not lab.state.get("powered_off"), lab.state.get("powered_off")
    assert lab.problems() == []


def gate(lab, tmp_path, target: str, *extra: str):
    journal = tmp_path / "journal.json"
    run = run_suite(str(lab.inventory), tmp_path / "junit-failover.xml", f"--failover={target}",
                    f"--failover-journal={journal}", *GATE, *extra)
    return run, journal


def test_healthy_lab_passes_for_the_etcd_leader(lab, tmp_path):
    before = len(power_log(lab))
    run, journal = gate(lab, tmp_path, "etcd-leader")
    assert run.returncode == 0, run.output[-3000:]
    assert run.outcomes == {"cluster_failover[etcd-leader]": "passed"}, run.output[-2000:]
    props = run.properties["cluster_failover[etcd-leader]"]
    target = props["host"]
    for key in ("budget_s", "vip_longest_outage_s", "etcd_new_leader_s", "first_write_s",
                "dns_back_s", "rejoined_s"):
        assert props.get(key) not in (None, ""), (key, props)
    assert float(props["vip_longest_outage_s"]) <= float(props["budget_s"])
    assert "HAProxy detection (inter 2s, fall 2" in props["budget"]
    new = power_log(lab)[before:]
    assert [line.split()[1:3] for line in new] == [["power-off", target],
                                                   ["power-on", target]]
    assert not journal.exists()
    assert "kubeaccept failover" in run.output and "rejoined" in run.output
    assert_restored(lab)


def test_healthy_lab_passes_for_each_control_plane(lab, tmp_path):
    before = len(power_log(lab))
    run, _ = gate(lab, tmp_path, "each")
    assert run.returncode == 0, run.output[-3000:]
    assert run.outcomes == {f"cluster_failover[cp{i}]": "passed" for i in (1, 2, 3)}
    new = [line.split()[1:3] for line in power_log(lab)[before:]]
    assert new == [[verb, f"cp{i}"] for i in (1, 2, 3) for verb in ("power-off", "power-on")]
    assert_restored(lab)


REFUSALS = {
    "etcd-two-members": ("cp1", ("pre-flight refused, nothing was powered off",
                                 "etcd has 2 member(s)", "losing one member loses quorum")),
    "lb-missing-backend": ("cp1", ("pre-flight refused", "missing cp3")),
    "coredns-one-master": ("cp1", ("pre-flight refused",
                                   "every Ready replica (2) runs on cp1",
                                   "cluster DNS fails while cp1 is down")),
}


@pytest.mark.parametrize("fault", REFUSALS)
def test_preflight_refuses(lab, tmp_path, fault):
    target, words = REFUSALS[fault]
    try:
        lab.inject(fault)
        before = len(power_log(lab))
        run, journal = gate(lab, tmp_path, target)
        assert power_log(lab)[before:] == []  # nothing was touched
    finally:
        lab.heal()
    name = f"cluster_failover[{target}]"
    assert run.outcomes == {name: "failed"}, run.output[-3000:]
    for w in words:
        assert w in run.messages[name], f"{w!r} not in {run.messages[name]}"
    assert not journal.exists()
    assert_restored(lab)


def test_haproxy_without_health_checks_exceeds_the_budget(lab, tmp_path):
    try:
        lab.inject("haproxy-no-checks")
        run, journal = gate(lab, tmp_path, "cp1")
    finally:
        lab.heal()
    name = "cluster_failover[cp1]"
    assert run.outcomes == {name: "failed"}, run.output[-3000:]
    msg = run.messages[name]
    for w in ("cp1:endpoint", "last failure at", "HAProxy does not health-check cp1",
              "still failed at the end of the observation", "option httpchk GET /readyz"):
        assert w in msg, f"{w!r} not in {msg}"
    assert "RESTORE FAILED" not in msg and not journal.exists()
    assert float(run.properties[name]["vip_last_failure_s"]) > float(
        run.properties[name]["budget_s"])
    assert_restored(lab)


def test_failed_power_on_is_loud_and_the_journal_restores(lab, tmp_path):
    try:
        lab.inject("power-on-fails")
        run, journal = gate(lab, tmp_path, "cp2")
        name = "cluster_failover[cp2]"
        assert run.outcomes == {name: "failed"}, run.output[-3000:]
        for w in ("RESTORE FAILED: power-on failed", "cp2 is still OFF",
                  "kubeaccept-restore --journal"):
            assert w in run.messages[name], f"{w!r} not in {run.messages[name]}"
        assert json.loads(journal.read_text())["host"] == "cp2"
        lab.reload()
        assert "cp2" in lab.state["powered_off"]
        # the BMC answers again: the journal brings the host back, verified
        lab.state.pop("power_on_fails")
        lab.save()
        proc = subprocess.run([sys.executable, "-m", "pytest",
                               f"--hosts={lab.inventory}", "--failover-restore",
                               f"--failover-journal={journal}"],
                              cwd=ROOT, capture_output=True, text=True, timeout=400)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "cp2 restored and verified" in proc.stdout
        assert not journal.exists()
    finally:
        lab.heal()
    assert_restored(lab)


def test_sigint_during_the_outage_restores_the_host(lab, tmp_path):
    before = len(power_log(lab))
    junit = tmp_path / "junit-failover.xml"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", f"--hosts={lab.inventory}", "--failover=cp3",
         f"--junitxml={junit}", f"--failover-journal={tmp_path / 'journal.json'}", *GATE],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while not any("power-off cp3" in line for line in power_log(lab)[before:]):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
            time.sleep(0.2)
        time.sleep(3)
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=400)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "interrupted by SIGINT" in output and "cp3 restored and verified" in output, output
    assert proc.returncode != 0
    assert [line.split()[1:3] for line in power_log(lab)[before:]] == [
        ["power-off", "cp3"], ["power-on", "cp3"]]
    text = Path(junit).read_text()
    assert "cluster_failover[cp3]" in text and "interrupted" in text
    assert not (tmp_path / "journal.json").exists()
    assert_restored(lab)


@pytest.mark.parametrize("extra", [(), ("-n", "2")])
def test_non_destructive_suite_never_powers_off(lab, tmp_path, extra):
    before = power_log(lab)
    run = run_suite(str(lab.inventory), tmp_path / "junit.xml", *extra)
    assert run.returncode == 0, run.output[-2000:]
    assert not any(name.startswith("cluster_failover") for name in run.outcomes)
    assert power_log(lab) == before
    assert "cluster_failover" not in (tmp_path / "junit.xml").read_text()

