"""The benchmark's arithmetic: the CPU profile's grouping and the targets' verdicts."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import profile, targets

FIXTURES = Path(__file__).parent / "fixtures" / "bench"


def test_perf_report_is_grouped_by_what_ran():
    """A real `perf report --sort comm --stdio -n` of a 50-host serial run (perf 6.1, Debian;
    997 Hz on 2 cores for 4.03 s: 8,054 samples)."""
    samples = profile.parse_report((FIXTURES / "perf-report-comm.txt").read_text())
    assert samples["python"] == 2217 and samples["swapper"] == 1262 and samples["sshd"] == 940
    assert "ksoftirqd/1" in samples and "memfd:sealed-91" in samples
    assert sum(samples.values()) == pytest.approx(8054, abs=10)
    cpu = profile.grouped(samples)
    assert cpu["runner"] == round(2217 / 997, 2) and cpu["ssh logins"] == round(940 / 997, 2)
    assert cpu["idle"] == round(1262 / 997, 2)
    # the lab's control plane: apiservers, etcds, controller-manager (cut to 15 chars), kwok
    # as each node's kubelet …
    lab = sum(samples[n] for n in ("kube-apiserver", "etcd", "kube-controller", "haproxy",
                                   "coredns", "kube-scheduler", "kubelet"))
    assert cpu["lab control plane"] == round(lab / 997, 2)
    # … and what the facts commands started
    assert cpu["facts commands"] > 2.5
    assert profile.group("kworker/1:0H-kb") == "kernel" and profile.group("etcdctl") == \
        "facts commands" and profile.group("ss") == "facts commands"
    assert sum(cpu.values()) == pytest.approx(8054 / 997, abs=0.05)


def row(suite, hosts, wall, xdist="2", logins=1, rss=100.0):
    return {"suite": suite, "hosts": hosts, "wall_s": wall, "xdist": xdist,
            "logins_per_host": logins, "peak_rss_mib": rss}


def test_targets_say_which_hold_and_by_how_much():
    results = [row("kubeaccept", 50, 4.0, logins=2, rss=100), row("baseline", 50, 40.0),
               row("kubeaccept-auto", 50, 3.9, "auto", rss=110),
               row("kubeaccept", 200, 16.2, logins=2, rss=160), row("baseline", 200, 150.0),
               row("kubeaccept-auto", 200, 14.1, "auto", rss=200),
               row("kubeaccept", 5, 2.0, logins=2, rss=80), row("baseline", 5, 7.0),
               row("kubeaccept-auto", 5, 1.5, "auto", rss=90)]
    got = {t.name: t for t in targets.check(results, workers=2)}
    ratio = got["≥ 20× the baseline at 50 hosts"]
    assert not ratio.ok and "10.0×" in ratio.measured and "2.00 s" in ratio.measured
    wall = got["≤ 15 s at 200 hosts"]
    assert not wall.ok and "16.20 s" in wall.measured and "1.20 s over" in wall.measured
    assert got["≤ 15 s at 200 hosts, -n auto"].ok
    assert got["SSH logins per host ≤ xdist workers"].ok
    mem = got["runner memory ≤ linear in hosts"]
    assert mem.ok and "MiB per host" in mem.measured
    # too many logins, and memory growing faster than linear, fail
    results[0]["logins_per_host"] = 3
    results[3]["peak_rss_mib"] = 400
    got = {t.name: t for t in targets.check(results, workers=2)}
    assert not got["SSH logins per host ≤ xdist workers"].ok
    assert not got["runner memory ≤ linear in hosts"].ok


def test_targets_need_their_sizes():
    got = targets.check([row("kubeaccept", 5, 2.0)], workers=2)
    assert {t.name for t in got if t.ok is None} >= {"≥ 20× the baseline at 50 hosts",
                                                     "≤ 15 s at 200 hosts"}
    assert all("not measured" in t.measured for t in got if t.ok is None)
