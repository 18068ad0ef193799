"""Suite wall time on the lab, serial vs -n 2, run side by side (alternating), and SSH logins
per host. Usage (root): python -m benchmarks.suite_speed [--workers N] [--repeat K] [--stand-ins]"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lab.lab import Lab
from lab.plan import DEFAULT_STATE_DIR

ROOT = Path(__file__).resolve().parents[1]


def run_once(inventory: Path, extra: list[str]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "pytest", f"--hosts={inventory}", "-q",
                               f"--junitxml={tmp}/j.xml", *extra], cwd=ROOT,
                              capture_output=True, text=True)
        took = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f"suite failed ({proc.returncode}):\n{proc.stdout[-2000:]}")
    return took


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--stand-ins", action="store_true", help="no real control plane")
    args = p.parse_args()
    lab = Lab(DEFAULT_STATE_DIR)
    up = lab.up(args.workers, control_plane=not args.stand_ins)
    print(f"lab: {len(lab.hosts)} hosts, up in {up:.1f}s (0 = already up)")
    modes = {"serial": [], "-n 2": ["-n", "2"]}
    times: dict[str, list[float]] = {m: [] for m in modes}
    logins: dict[str, dict[str, int]] = {}
    for _ in range(args.repeat):
        for mode, extra in modes.items():
            before = lab.logins()
            times[mode].append(run_once(lab.inventory, extra))
            after = lab.logins()
            logins[mode] = {h: after[h] - before[h] for h in after}
    for mode, ts in times.items():
        per_host = sorted(set(logins[mode].values()))
        print(f"{mode:7} median {statistics.median(ts):6.2f}s  min {min(ts):6.2f}s  "
              f"(of {len(ts)})  logins per host per run: {per_host}")
    ratio = statistics.median(times["-n 2"]) / statistics.median(times["serial"])
    print(f"ratio -n 2 / serial: {ratio:.2f}")


if __name__ == "__main__":
    main()
