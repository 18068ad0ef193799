"""The failover gate's pure parts: the budget from real HAProxy/keepalived/etcd settings, the
timelines, the verdicts, the power methods, the pre-flight pieces, the journal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kubeaccept.failover import budget, power, preflight, probes
from kubeaccept.failover.journal import Journal
from kubeaccept.failover.restore import restore
from kubeaccept.failover.timeline import Sample, failure_runs, longest_failure, max_gap
from kubeaccept.failover.verdict import Observation, judge
from kubeaccept.model.apistate import ApiState
from kubeaccept.model.hosts import Host

FIX = Path(__file__).parent / "fixtures" / "failover"
LAB_CFG = Path(__file__).resolve().parents[2] / "kubeaccept" / "lab" / "nodefiles.py"


# --- budget -------------------------------------------------------------------------------
def test_kubeadm_guide_haproxy_defaults_with_timeout_check():
    """HAProxy's manual: without inter a check runs every 2 s, fall 3; with `timeout check`
    set, a check's connect phase is bounded by min(timeout connect, inter): a dead apiserver
    costs 2 s per check."""
    checks = budget.haproxy_checks((FIX / "kubeadm-ha-guide.haproxy.cfg").read_text())
    assert [c.server for c in checks] == ["master1", "master2", "master3"]
    c = checks[0]
    assert (c.checked, c.inter, c.fall, c.rise, c.timeout) == (True, 2.0, 3, 2, 2.0)
    assert c.detection == 2 + 2 * 2 + 3 * 2


def test_listen_section_with_millisecond_inter():
    """`inter 5000` is milliseconds (HAProxy's default unit); without `timeout check` a check
    may take the whole inter."""
    checks = budget.haproxy_checks((FIX / "listen-inter-ms.haproxy.cfg").read_text())
    assert {(c.inter, c.fall, c.timeout) for c in checks} == {(5.0, 5, 5.0)}
    assert checks[0].detection == 5 + 4 * 5 + 5 * 5


def test_servers_without_check_are_named():
    cfg = ("backend b\n    server cp1 10.0.0.1:6443\n"
           "    server cp2 10.0.0.2:6443 check inter 1s fall 2\n")
    checks = budget.haproxy_checks(cfg)
    b = budget.compute(checks, True, None, None, False)
    assert b.notes == ("HAProxy does not health-check cp1: it keeps sending requests to a "
                       "dead apiserver there",)
    assert b.parts[0] == ("HAProxy detection (inter 1s, fall 2, check timeout 1s)", 4.0)


def test_budget_adds_keepalived_only_when_the_target_holds_the_vip():
    """keepalived: the BACKUP takes over after 3 missed adverts + skew (< 1 advert)."""
    ka = budget.keepalived_advert((FIX / "keepalived-advert5.conf").read_text())
    assert ka == 5.0
    assert budget.keepalived_advert("vrrp_instance VI_1 {\n}\n") == 1.0
    checks = budget.haproxy_checks((FIX / "kubeadm-ha-guide.haproxy.cfg").read_text())
    without = budget.compute(checks, True, 1.0, ka, False)
    with_vip = budget.compute(checks, True, 1.0, ka, True)
    assert with_vip.seconds - without.seconds == 20.0
    assert "keepalived VIP move (advert_int 5s x 4) 20.0 s" in with_vip.text()


def test_budget_text_and_override():
    b = budget.compute([budget.HealthCheck("cp1", True, 2.0, 2.0, 2, 2, 2.0)], True, None,
                       None, False)
    assert b.seconds == 12.0
    assert b.text() == ("12.0 s = HAProxy detection (inter 2s, fall 2, check timeout 2s) "
                        "8.0 s + etcd election (2 x election timeout 1s, default) 2.0 s + "
                        "margin 2.0 s")
    assert budget.compute([], False, None, None, False, 30).text() == "30 s (--failover-budget)"
    assert "haproxy.cfg was not readable" in budget.compute([], False, None, None, False).notes[0]


def test_etcd_election_timeout_from_the_static_pod():
    manifest = "    - etcd\n    - --election-timeout=5000\n    - --heartbeat-interval=500\n"
    assert budget.etcd_election(manifest) == 5.0
    assert budget.etcd_election("    - etcd\n") is None


def test_the_lab_haproxy_budget():
    from lab.nodefiles import haproxy_cfg
    from lab.plan import plan
    cfg = haproxy_cfg([h for h in plan(2) if "control_plane" in h.roles])
    checks = budget.haproxy_checks(cfg)
    assert {c.detection for c in checks} == {8.0}


# --- timelines ----------------------------------------------------------------------------
def s(t, ok, detail="", **data):
    return Sample(t, t + 0.1, ok, detail, data)


def test_failure_runs_and_gaps():
    samples = [s(0, True), s(0.5, False), s(1, False), s(1.5, None), s(2, False), s(2.5, True),
               s(3, False)]
    runs = failure_runs(samples)
    assert [(r.count, r.first.start, r.until) for r in runs] == [(3, 0.5, 2.5), (1, 3, 3.1)]
    assert longest_failure(samples).seconds == 2.0
    assert max_gap(samples, 0, 5) == 2.0
    assert max_gap([], 0, 4) == 4


# --- verdicts -----------------------------------------------------------------------------
B = budget.Budget(12.0, (("x", 12.0),))


def observation(**over):
    readyz = [s(t / 2, not 2 <= t / 2 <= 4, "no answer") for t in range(0, 60)]
    etcd = [s(t, t >= 2, "leader cp2 term 3" if t >= 2 else "no leader",
              leader="cp2" if t >= 2 else None, term=3,
              healthy={"cp1": False, "cp2": True, "cp3": True}) for t in range(0, 30)]
    ok = [s(t, True, "created and deleted") for t in range(0, 30)]
    base = dict(target="cp1", endpoint="198.18.0.100:6443", was_leader=True, term_before=2,
                window=30.0, readyz=readyz, etcd=etcd, write=ok, dns_pod=ok, dns_node=ok,
                dns_node_name="w1")
    base.update(over)
    return Observation(**base)


def test_a_healthy_failover_passes_with_its_timings():
    findings, timings = judge(observation(), B)
    assert [f.ok for f in findings] == [True] * 6, [f.observed for f in findings if not f.ok]
    assert timings["vip_longest_outage_s"] == 2.5
    assert timings["etcd_new_leader_s"] == 2.1 and timings["first_write_s"] == 0.1
    assert timings["dns_back_s"] == 0.0 and timings["budget_s"] == 12.0


def test_endpoint_still_failing_at_the_end():
    """HAProxy without checks: a third of the requests go to the dead apiserver, forever."""
    readyz = [s(t / 2, t % 3 != 0, "no answer") for t in range(0, 60)]
    findings, timings = judge(observation(readyz=readyz), B)
    vip = next(f for f in findings if f.subject == "cp1:endpoint")
    assert not vip.ok and "still failed at the end of the observation" in vip.why
    assert "option httpchk GET /readyz" in vip.fix
    assert timings["vip_last_failure_s"] > 12


def test_power_off_that_did_not_take():
    etcd = [s(t, True, leader="cp1", term=2, healthy={"cp1": True, "cp2": True})
            for t in range(0, 30)]
    findings, _ = judge(observation(etcd=etcd), B)
    f = next(f for f in findings if f.subject == "cp1:etcd")
    assert not f.ok and "never reported unhealthy: the power-off did not take" in f.observed
    assert "no leader among the surviving members" in f.observed


def test_sampling_too_sparse_is_inconclusive():
    readyz = [s(t * 2.0, True) for t in range(0, 15)]
    f = judge(observation(readyz=readyz), B)[0][0]
    assert not f.ok and f.observed.startswith("INCONCLUSIVE: /readyz sampled 0.5/s")


def test_dns_failing_after_the_budget_and_exec_failures():
    dns = [s(t, t < 3 or t > 20, "no address: connection timed out") for t in range(0, 30)]
    findings, timings = judge(observation(dns_pod=dns), B)
    f = next(f for f in findings if f.subject == "cp1:dns-pod")
    assert not f.ok and "connection timed out" in f.observed
    assert timings["dns_back_s"] == 20.1  # back, but after the budget: the finding fails
    execs = [s(t, None, "exec failed: 500") for t in range(0, 30)]
    f = next(f for f in judge(observation(dns_pod=execs), B)[0] if f.subject == "cp1:dns-pod")
    assert not f.ok and "no lookup could be run: exec failed: 500" in f.observed


def test_writes_failing_after_the_budget():
    write = [s(t, t < 1, "500 etcdserver: request timed out") for t in range(0, 30)]
    f = next(f for f in judge(observation(write=write), B)[0] if f.subject == "cp1:write")
    assert not f.ok and "etcdserver: request timed out" in f.observed


# --- etcd probe output ---------------------------------------------------------------------
def test_parse_etcdctl_per_member_answers():
    """etcdctl 3.7.3 `endpoint status`/`endpoint health -w json`, one member per call; a dead
    member gives no status and health false."""
    names = {"9fdc82406066cd59": "cp3"}
    view = probes.parse_etcd((FIX / "etcdctl-3.7.3-endpoints.txt").read_text(), names)
    assert view["leader"] == "cp3" and view["term"] == 3
    assert view["healthy"] == {"https://198.18.0.12:2379": True,
                               "https://198.18.0.13:2379": True,
                               "https://198.18.0.11:2379": False}


# --- power methods ------------------------------------------------------------------------
def host(**v):
    return Host("cp1", "192.0.2.11", vars=v)


def test_power_off_method_is_required_and_nothing_changes():
    with pytest.raises(power.PowerError, match="no power-off method.*nothing was changed"):
        power.methods(host())


def test_shutdown_needs_a_power_on_command():
    with pytest.raises(power.PowerError, match="needs a way back: set kubeaccept_power_on"):
        power.methods(host(kubeaccept_power_off="shutdown"))
    with pytest.raises(power.PowerError, match="start-services cannot power on"):
        power.methods(host(kubeaccept_power_off="shutdown",
                           kubeaccept_power_on="start-services"))


def test_stop_services_defaults_to_start_services():
    off, on = power.methods(host(kubeaccept_power_off="stop-services"))
    assert off.kind == on.kind == "ssh" and "systemctl stop kubelet" in off.text
    assert "systemctl start" in on.text


def test_command_templates_are_filled_and_checked():
    off, on = power.methods(host(kubeaccept_power_off="echo off {host} {address}",
                                 kubeaccept_power_on="true {host}"))
    assert off.text == "echo off cp1 192.0.2.11" and on.kind == "command"
    with pytest.raises(power.PowerError, match=r"unknown placeholder 'bmc'"):
        power.methods(host(kubeaccept_power_off="ipmitool -H {bmc} power off",
                           kubeaccept_power_on="true"))
    with pytest.raises(power.PowerError, match="virsh-nope.* is not a command"):
        power.methods(host(kubeaccept_power_off="true",
                           kubeaccept_power_on="virsh-nope start {host}"))


def test_a_failing_power_command_says_why():
    off, _ = power.methods(host(kubeaccept_power_off="sh -c 'echo BMC timeout >&2; exit 3'",
                                kubeaccept_power_on="true"))
    with pytest.raises(power.PowerError, match="exited 3: BMC timeout"):
        power.run(off, host(), 10, 1)


# --- pre-flight pieces ---------------------------------------------------------------------
def pod(node, ready=True):
    return {"metadata": {"name": f"coredns-{node}", "namespace": "kube-system",
                         "labels": {"k8s-app": "kube-dns"}},
            "spec": {"nodeName": node},
            "status": {"conditions": [{"type": "Ready", "status": str(ready)}]}}


def test_coredns_must_survive_the_target():
    assert preflight.coredns_survives(ApiState(endpoint="https://192.0.2.100:6443", pods=[pod("cp1"), pod("w2")]), "cp1") is None
    why = preflight.coredns_survives(ApiState(endpoint="https://192.0.2.100:6443", pods=[pod("cp1"), pod("cp1")]), "cp1")
    assert "every Ready replica (2) runs on cp1" in why and "topologySpreadConstraint" in why
    assert "no Ready replica" in preflight.coredns_survives(
        ApiState(endpoint="https://192.0.2.100:6443", pods=[pod("w1", ready=False)]), "cp1")


# --- journal --------------------------------------------------------------------------------
def test_journal_round_trip_and_restore_without_one(tmp_path):
    j = Journal(tmp_path / "j.json")
    j.write("cp1", "inv/hosts.yaml", "virsh start cp1", "command")
    entry = j.read()
    assert entry["host"] == "cp1" and entry["power_on"] == "virsh start cp1"
    j.clear()
    assert j.read() is None
    lines = []
    assert restore(tmp_path / "j.json", say=lines.append) == 0
    assert "nothing to restore" in lines[0]
    (tmp_path / "bad.json").write_text("{")
    assert restore(tmp_path / "bad.json", say=lines.append) == 4
    assert "not a kubeaccept restore journal" in lines[-1]


def test_restore_from_a_journal_whose_inventory_is_gone(tmp_path):
    path = tmp_path / "j.json"
    path.write_text(json.dumps({"host": "cp1", "inventory": str(tmp_path / "gone.yaml"),
                                "power_on": "virsh start cp1", "kind": "command"}))
    lines = []
    assert restore(path, say=lines.append) == 1
    assert "power on cp1 by hand (virsh start cp1)" in lines[0]


# --- command line ---------------------------------------------------------------------------
def pytest_run(tmp_path, *args):
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           f"--junitxml={tmp_path / 'j.xml'}", *args],
                          cwd=Path(__file__).resolve().parents[2], capture_output=True,
                          text=True, timeout=120)
    return proc.returncode, proc.stdout + proc.stderr


TWO_CPS = ("--hosts=ssh://root@127.0.0.1:1?roles=control_plane,"
           "ssh://root@127.0.0.2:1?roles=control_plane")


def test_failover_target_must_be_a_control_plane(tmp_path):
    rc, out = pytest_run(tmp_path, TWO_CPS, "--failover=w1")
    assert rc == 4 and "--failover=w1: not a control plane" in out and "Traceback" not in out


def test_failover_needs_two_control_planes(tmp_path):
    rc, out = pytest_run(tmp_path, "--hosts=ssh://root@127.0.0.1:1?roles=control_plane",
                         "--failover=each")
    assert rc == 4 and "1 control plane(s): nothing can fail over" in out


def test_failover_refuses_xdist(tmp_path):
    rc, out = pytest_run(tmp_path, TWO_CPS, "--failover=each", "-n", "2")
    assert rc == 4 and "runs alone and serially: drop -n" in out


def test_without_failover_the_gate_is_deselected(tmp_path):
    rc, out = pytest_run(tmp_path, TWO_CPS, "--collect-only", "-q", "-m", "destructive")
    assert "cluster_failover" not in out.split("deselected")[0] and rc == 5


def test_failover_restore_without_a_journal(tmp_path):
    rc, out = pytest_run(tmp_path, TWO_CPS, "--failover-restore",
                         f"--failover-journal={tmp_path / 'none.json'}")
    assert rc == 0 and "nothing to restore" in out


# --- sampling and signals -------------------------------------------------------------------
def test_a_slow_probe_does_not_stretch_the_sampling():
    """A probe waiting for its timeout (0.35 s) must not delay the next one (0.1 s tick)."""
    import time

    from kubeaccept.failover.timeline import Sampler
    sampler = Sampler("slow", lambda: (time.sleep(0.35) or False, "timeout", {}), 0.1)
    sampler.start()
    time.sleep(1.0)
    sampler.stop()
    starts = [x.start for x in sampler.timeline()]
    assert len(starts) >= 8
    assert max(b - a for a, b in zip(starts, starts[1:], strict=False)) < 0.25


def test_sigterm_becomes_an_interruption_the_gate_restores_from():
    import os
    import signal

    from kubeaccept.failover.gate import Interrupted, _trap_sigterm
    previous = _trap_sigterm()
    try:
        with pytest.raises(Interrupted):
            os.kill(os.getpid(), signal.SIGTERM)
            import time
            time.sleep(1)
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_each_waits_for_the_cluster_to_settle_after_the_previous_failover(monkeypatch):
    """`each`: a pre-flight refused right after the previous host's restore is retried until
    the cluster has settled (bounded); the first target is never waited for."""
    from kubeaccept.failover import gate as gate_mod

    snaps = iter([1, 2, 3])
    verdicts = {1: ["CoreDNS: no Ready replica"], 2: ["CoreDNS: no Ready replica"], 3: []}
    g = object.__new__(gate_mod.Gate)
    g.settle_until = 0.0
    seen = []

    def snapshot():
        n = next(snaps)
        seen.append(n)
        return n, None, None, None

    monkeypatch.setattr(g, "snapshot", snapshot, raising=False)
    monkeypatch.setattr(g, "resolve", lambda spec, ctx: Host("cp1", "192.0.2.1"), raising=False)
    monkeypatch.setattr(gate_mod.power, "methods", lambda host: (None, None))
    monkeypatch.setattr(gate_mod.preflight, "check", lambda ctx, *a: list(verdicts[ctx]))
    monkeypatch.setattr(g, "budget", lambda ctx, target: budget.Budget(12.0), raising=False)
    monkeypatch.setattr(gate_mod.time, "sleep", lambda s: None)
    out = gate_mod.Gate.run(g, "cp1")
    assert out.refused == ["CoreDNS: no Ready replica"] and seen == [1]  # first: no wait
    snaps, seen[:] = iter([1, 2, 3]), []
    g.settle_until = gate_mod.time.monotonic() + 60

    class Proceeded(Exception):
        pass

    def say(line):
        raise Proceeded(line)

    monkeypatch.setattr(g, "say", say, raising=False)
    with pytest.raises(Proceeded, match="failover cp1: budget"):
        gate_mod.Gate.run(g, "cp1")
    assert seen == [1, 2, 3]
