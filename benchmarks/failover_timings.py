"""The failover gate's timings on the lab, median of K runs, beside the computed budget.
Usage (root): python -m benchmarks.failover_timings [--target etcd-leader] [--repeat 3]"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

from lab.lab import Lab
from lab.plan import DEFAULT_STATE_DIR

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("budget_s", "vip_longest_outage_s", "vip_last_failure_s", "etcd_new_leader_s",
        "first_write_s", "dns_back_s", "rejoined_s")


def run_once(inventory: Path, target: str) -> dict[str, str]:
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run([sys.executable, "-m", "pytest", f"--hosts={inventory}", "-q",
                               f"--failover={target}", f"--junitxml={tmp}/j.xml",
                               f"--failover-journal={tmp}/journal.json"], cwd=ROOT,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"gate failed ({proc.returncode}):\n{proc.stdout[-3000:]}")
        case = next(ET.parse(f"{tmp}/j.xml").getroot().iter("testcase"))
        return {p.get("name"): p.get("value") for p in case.iter("property")}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--target", default="etcd-leader")
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    lab = Lab(DEFAULT_STATE_DIR)
    lab.up(2, control_plane=True)
    runs = []
    for i in range(args.repeat):
        props = run_once(lab.inventory, args.target)
        runs.append(props)
        print(f"run {i + 1}: {props['host']}: " + ", ".join(f"{k} {props.get(k)}"
                                                             for k in KEYS), flush=True)
    print(f"budget: {runs[0].get('budget')}")
    for k in KEYS:
        values = [float(r[k]) for r in runs if r.get(k)]
        if values:
            print(f"median {k}: {statistics.median(values):g} (of {len(values)}: "
                  f"{', '.join(f'{v:g}' for v in values)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
