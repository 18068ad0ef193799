"""kubeaccept's node suite against a plain testinfra suite of the same invariants
(benchmarks/baseline/), on the same lab, in the same run, at several sizes.

Usage (root): python -m benchmarks.bench [--sizes 5,50,200] [-n 2] [--runs 3] [--stand-ins]

Per size and suite: wall time, CPU time and peak memory of the runner (pytest and its xdist
workers), SSH logins and remote commands per host counted on each lab host's sshd, tests per
second. Both suites with the same -n (the ratio), and kubeaccept again with -n auto (what an
operator runs). Writes reports/bench.json and reports/bench.png (time vs hosts)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from benchmarks import profile, targets
from lab.lab import Lab
from lab.plan import DEFAULT_STATE_DIR
from lab.system import LabError, entered

ROOT = Path(__file__).resolve().parents[1]
# Runs a command and prints, as JSON on its last line, the resources of its process tree.
MEASURE = """
import json, resource, subprocess, sys, time
t = time.monotonic()
rc = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": rc, "wall_s": time.monotonic() - t, "cpu_s": r.ru_utime + r.ru_stime,
                  "peak_rss_mib": r.ru_maxrss / 1024}))
"""


# Both suites run as on an operator's machine: Python caches bytecode (this machine's
# environment may turn that off), and the self-tests' hypothesis plugin, which imports all of
# hypothesis at the end of every run (1 s), is not installed there.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
NO_DEV_PLUGINS = ["-p", "no:hypothesispytest"]


def measure(argv: list[str]) -> dict:
    out = subprocess.run([sys.executable, "-c", MEASURE, *argv], cwd=ROOT, capture_output=True,
                         text=True, check=True, env=ENV)
    return json.loads(out.stdout.strip().splitlines()[-1])


def tests_in(junit: Path) -> int:
    return sum(1 for _ in ET.parse(junit).getroot().iter("testcase")) if junit.exists() else 0


def node_cpu(lab: Lab) -> float:
    """CPU seconds the lab hosts' sshds have reaped from their children so far: the SSH
    sessions and every command they ran (the node side of a run, on the same 2 cores)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pids in lab.state.get("pids", {}).values():
        try:
            with open(f"/proc/{entered(pids['sshd'])}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (KeyError, OSError, LabError):
            continue
        total += (int(fields[13]) + int(fields[14])) / ticks  # cutime, cstime
    return total


def one(lab: Lab, name: str, argv: list[str], junit: Path) -> dict:
    logins, commands, cpu = lab.logins(), lab.commands(), node_cpu(lab)
    result = measure(argv)
    result["node_cpu_s"] = round(node_cpu(lab) - cpu, 2)
    nodes = [h.name for h in lab.hosts if h.is_node]
    dl = {h: lab.logins()[h] - logins[h] for h in nodes}
    dc = {h: lab.commands()[h] - commands[h] for h in nodes}
    result.update(suite=name, tests=tests_in(junit),
                  logins_per_host=max(dl.values()), commands_per_host=max(dc.values()),
                  tests_per_s=round(tests_in(junit) / result["wall_s"], 1))
    return result


def busy() -> tuple[int, int]:
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    return sum(ticks) - ticks[3] - ticks[4], sum(ticks)  # (busy, all): idle and iowait out


def settle(window: float = 3, limit: float = 120) -> float:
    """Wait until the machine's load stops falling (two windows within 5 points): a lab just
    up has 3 apiservers registering hundreds of kwok kubelets, which slowed the node side by
    up to 40 % in measurements taken then. Returns the settled load in % of both cores."""
    deadline, last = time.monotonic() + limit, None
    while True:
        b0, a0 = busy()
        time.sleep(window)
        b1, a1 = busy()
        pct = 100 * (b1 - b0) / max(1, a1 - a0)
        if (last is not None and abs(pct - last) < 5) or time.monotonic() > deadline:
            return round(pct, 1)
        last = pct


def median_run(lab: Lab, name: str, argv: list[str], junit: Path, runs: int) -> dict:
    """The run of median wall time of `runs` (each row keeps all the wall times)."""
    results = []
    for _ in range(runs):
        junit.unlink(missing_ok=True)
        results.append(one(lab, name, argv, junit))
    results.sort(key=lambda r: r["wall_s"])
    out = results[len(results) // 2]
    out["runs_wall_s"] = sorted(round(r["wall_s"], 2) for r in results)
    return out


def run_size(lab: Lab, size: int, n: str, control_plane: bool, tmp: Path,
             runs: int, perf: bool) -> list[dict]:
    workers = max(1, size - 3)  # size = node hosts: 3 control planes + workers
    took = lab.up(workers, control_plane=control_plane)
    load = settle()
    print(f"{size:4} hosts lab up in {took:.0f}s, settled at {load}% busy (its control plane "
          "and kwok kubelets)", flush=True)
    nodes = [h for h in lab.hosts if h.is_node]
    ssh = lab.dir / "ssh"
    config = tmp / "ssh_config"
    config.write_text(f"Host *\n  User root\n  IdentityFile {ssh / 'id_ed25519'}\n"
                      f"  UserKnownHostsFile {ssh / 'known_hosts'}\n"
                      "  StrictHostKeyChecking yes\n")
    specs = ",".join(f"paramiko://root@{h.ip}?ssh_config={config}" for h in nodes)
    xdist = ["-n", n] if n != "0" else []
    baseline = ["-c", "benchmarks/baseline/pytest.ini", "benchmarks/baseline"]
    for argv in ([f"--hosts={lab.inventory}", "tests"], [*baseline, f"--hosts={specs}"]):
        # warm-up, not measured: writes the bytecode caches a first run would compile
        measure([sys.executable, "-m", "pytest", *argv, "-q", "--collect-only", *NO_DEV_PLUGINS])
    out, argvs = [], {}
    for name, argv, junit in (
            ("kubeaccept", [sys.executable, "-m", "pytest", f"--hosts={lab.inventory}",
                            "tests", "-k", "node_", "-q", *xdist, *NO_DEV_PLUGINS,
                            f"--junitxml={tmp}/k.xml"],
             tmp / "k.xml"),
            ("baseline", [sys.executable, "-m", "pytest", "-c", "benchmarks/baseline/pytest.ini",
                          "benchmarks/baseline", f"--hosts={specs}", "-q", *xdist, *NO_DEV_PLUGINS,
                          f"--junitxml={tmp}/b.xml"], tmp / "b.xml"),
            # what an operator runs: kubeaccept picks the workers (serial below 300 hosts)
            ("kubeaccept-auto", [sys.executable, "-m", "pytest", f"--hosts={lab.inventory}",
                                 "tests", "-k", "node_", "-q", "-n", "auto", *NO_DEV_PLUGINS,
                                 f"--junitxml={tmp}/a.xml"], tmp / "a.xml")):
        # kubeaccept's runs are short, and noisier for it: the median of `runs`; the
        # baseline's are 10x longer (one run)
        r = median_run(lab, name, argv, junit, 1 if name == "baseline" else runs)
        r.update(hosts=len(nodes), lab_up_s=round(took, 1), lab_busy_pct=load,
                 xdist="auto" if name == "kubeaccept-auto" else n)
        out.append(r)
        argvs[name] = argv
        print(f"{len(nodes):4} hosts {name:15} wall {r['wall_s']:7.2f}s cpu {r['cpu_s']:7.2f}s "
              f"+ node side {r['node_cpu_s']:6.2f}s "
              f"peak {r['peak_rss_mib']:6.0f} MiB  tests {r['tests']:5} "
              f"({r['tests_per_s']}/s)  logins/host {r['logins_per_host']}  "
              f"commands/host {r['commands_per_host']}  rc {r['rc']}  "
              f"(runs {r['runs_wall_s']})", flush=True)
    startup = measure([sys.executable, "-m", "pytest", f"--hosts={lab.inventory}", "tests",
                       "-k", "node_", "-q", "--collect-only", *NO_DEV_PLUGINS])
    out[0]["startup_s"] = round(startup["wall_s"], 2)  # interpreter, ansible, collection
    if perf:
        # one more run of each kubeaccept form, under a system-wide perf record: where the
        # CPU of both cores went (not timed: perf's sampling costs a little)
        for r in (out[0], out[2]):
            try:
                r["profile"] = profile.record(argvs[r["suite"]], tmp / "perf.data", ROOT, ENV)
            except profile.ProfileError as exc:
                print(f"no CPU profile: {exc}", flush=True)
                break
            g = r["profile"]["cpu_s"]
            print(f"{len(nodes):4} hosts {r['suite']:15} under perf "
                  f"{r['profile']['wall_s']:.2f}s, CPU of both cores: "
                  + ", ".join(f"{k} {v:.2f}s" for k, v in g.items()), flush=True)
    k, b = out[:2]
    print(f"{len(nodes):4} hosts kubeaccept start-up + collection {startup['wall_s']:.2f}s; "
          f"floor on 2 cores (runner + node CPU) / 2 = "
          f"{(k['cpu_s'] + k['node_cpu_s']) / 2:.2f}s", flush=True)
    print(f"{len(nodes):4} hosts baseline/kubeaccept wall ratio {b['wall_s'] / k['wall_s']:.1f}x",
          flush=True)
    return out


def plot(results: list[dict], path: Path) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("no matplotlib (pip install '.[bench]'): no plot")
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for suite, label in (("kubeaccept", "kubeaccept -n 2"), ("baseline", "baseline -n 2"),
                         ("kubeaccept-auto", "kubeaccept -n auto")):
        rows = sorted((r["hosts"], r["wall_s"]) for r in results if r["suite"] == suite)
        if rows:
            ax.plot([h for h, _ in rows], [w for _, w in rows], marker="o", label=label)
    ax.set_xlabel("node hosts")
    ax.set_ylabel("wall time (s)")
    ax.set_title("node suite on the lab, 2 cores")
    ax.legend()
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="5,50,200")
    p.add_argument("-n", default="2", help="xdist workers for both suites (0: serial)")
    p.add_argument("--stand-ins", action="store_true",
                   help="stand-in listeners instead of the real control plane and kwok nodes "
                   "(the API checks then wait for answers that never come)")
    p.add_argument("--runs", type=int, default=3, help="kubeaccept runs per size (median)")
    p.add_argument("--no-profile", action="store_true",
                   help="skip the system-wide perf profile of one more kubeaccept run")
    args = p.parse_args()
    lab = Lab(DEFAULT_STATE_DIR)
    reports = ROOT / "reports"
    out = reports / "bench.json"
    # sizes measured now replace their rows; other sizes' rows stay (a long size can be
    # measured on its own: --sizes 500)
    results = json.loads(out.read_text()) if out.exists() else []
    with tempfile.TemporaryDirectory() as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            start = time.monotonic()
            rows = run_size(lab, size, args.n, not args.stand_ins, Path(tmp), args.runs,
                            not args.no_profile)
            results = [r for r in results if r["hosts"] != rows[0]["hosts"]] + rows
            results.sort(key=lambda r: (r["hosts"], r["suite"]))
            out.write_text(json.dumps(results, indent=1) + "\n")  # each size as it is done
            plot(results, reports / "bench.png")
            print(f"size {size} done in {time.monotonic() - start:.0f}s", flush=True)
    print(targets.show(targets.check(results, int(args.n))))
    print(f"wrote {out} and {reports / 'bench.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
