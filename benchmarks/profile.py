"""Where the CPU of a run goes, on both cores: a system-wide `perf record` (linux-perf) around
one run, its samples (CPU seconds) summed by program name and grouped into the runner, the
SSH logins, the facts commands on the nodes, the lab's own control plane, the kernel, idle.

On the lab the nodes share the runner's 2 cores, so this is the floor's breakdown: a run
cannot take less wall time than its busy CPU seconds / 2 cores."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

RUNNER = {"python", "python3", "pytest"}  # pytest, its xdist workers (and the bench's timer)
LOGINS = {"sshd", "sshd-session", "sshd-auth"}  # the accept, fork, re-exec, key exchange
# The lab's stand-ins for a real cluster's control plane and kubelets: not the run's work,
# but on the same cores (a real cluster's run them on its own machines).
# (comm is cut at 15 characters: kube-controller-manager is "kube-controller")
# Each lab node's kubelet is kwok under that name (its lease and status updates); the facts
# command's `kubelet --version` shares the name and is counted here too (a few ms).
LAB = {"kube-apiserver", "etcd", "kwok", "kube-controller", "kube-scheduler", "coredns",
       "haproxy", "kubelet"}
IDLE = {"swapper"}
KERNEL = re.compile(r"^(kworker|ksoftirqd|migration|rcu_|kthreadd|cpuhp|idle_inject|"
                    r"watchdog|jbd2|kcompactd|khugepaged|kswapd)")
GROUPS = ("runner", "ssh logins", "facts commands", "lab control plane", "kernel", "perf",
          "idle")
PERIOD = 997  # Hz: not a multiple of the kernel's tick


def group(name: str) -> str:
    if name in RUNNER:
        return "runner"
    if name in LOGINS:
        return "ssh logins"
    if name in LAB:
        return "lab control plane"
    if name in IDLE:
        return "idle"
    if name == "perf":
        return "perf"
    if KERNEL.match(name) or "/" in name:
        return "kernel"
    # everything the facts commands start: sh, bash, ss, iptables-save, base64, etcdctl …
    return "facts commands"


def parse_report(text: str) -> dict[str, int]:
    """`perf report --sort comm --stdio -n` -> {program: samples}."""
    samples: dict[str, int] = {}
    for line in text.splitlines():
        m = re.match(r"^\s*[0-9.]+%\s+(\d+)\s+(\S.*?)\s*$", line)
        if m:
            samples[m[2]] = samples.get(m[2], 0) + int(m[1])
    return samples


def grouped(samples: dict[str, int]) -> dict[str, float]:
    """{group: CPU seconds}: a sample is 1/PERIOD s of one core."""
    out = dict.fromkeys(GROUPS, 0)
    for name, n in samples.items():
        out[group(name)] += n
    return {k: round(v / PERIOD, 2) for k, v in out.items()}


class ProfileError(Exception):
    pass


def record(argv: list[str], data: Path, cwd: Path, env: dict) -> dict:
    """Run `argv` under a system-wide perf record."""
    perf = shutil.which("perf")
    if perf is None:
        raise ProfileError("no perf (apt-get install linux-perf)")
    start = time.monotonic()
    rec = subprocess.run([perf, "record", "-a", "-F", str(PERIOD), "-o", str(data), "-q",
                          "--", *argv], cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    took = time.monotonic() - start
    if not data.exists() or data.stat().st_size == 0:
        raise ProfileError(f"perf record wrote nothing: {rec.stderr.strip()[-300:]}")
    rep = subprocess.run([perf, "report", "-i", str(data), "--sort", "comm", "--stdio", "-n"],
                         capture_output=True, text=True)
    if rep.returncode:
        raise ProfileError(f"perf report failed: {rep.stderr.strip()[-300:]}")
    report = rep.stdout
    samples = parse_report(report)
    top = sorted(samples.items(), key=lambda kv: -kv[1])[:12]
    # idle includes perf's own start and writing (the wall time under perf)
    return {"wall_s": round(took, 2), "cpu_s": grouped(samples),
            "top_cpu_s": {k: round(v / PERIOD, 2) for k, v in top}}
