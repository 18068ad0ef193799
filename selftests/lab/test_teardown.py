"""`down` removes everything the lab made: namespaces, links, routes, processes, swap, files."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from lab.plan import BRIDGE, NETNS_PREFIX


def leftovers(state_dir: Path) -> list[str]:
    found = []
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    found += [f"netns {n}" for n in netns.split() if n.startswith(NETNS_PREFIX)]
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    found += [f"link {ln.split(':')[1].strip()}" for ln in links.splitlines()
              if ln.split(":")[1].strip().split("@")[0] == BRIDGE
              or ln.split(":")[1].strip().startswith("kl-")]
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True).stdout
    found += [f"route {r}" for r in routes.splitlines() if "198.18." in r]
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(state_dir) in cmd:
            found.append(f"process {pid}: {cmd[:80]}")
    if str(state_dir) in Path("/proc/swaps").read_text():
        found.append("swap")
    if str(state_dir) in Path("/proc/self/mountinfo").read_text():
        found.append("mount")
    if state_dir.exists():
        found.append(f"directory {state_dir}")
    return found


def _start_time(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


NEIGH = [Path(f"/proc/sys/net/ipv4/neigh/default/gc_thresh{i}") for i in (1, 2, 3)]


def test_down_removes_everything(lab):
    sysctls = [p.read_text() for p in NEIGH]
    # the pod sandboxes' pause processes live in namespaces of their own: they go too
    pauses = [json.loads(f.read_text())["pid"] for f in (lab.dir / "pods").glob("*.json")]
    # (pid, start time): pid_max may be 32768, and a rebuild can hand a pid out again
    started = {(p, _start_time(p)) for p in pauses}
    assert pauses and all(s is not None for _, s in started)
    lab.up(70)  # rebuilds, without the control plane; 74 hosts outgrow the default ARP table
    assert not any(_start_time(p) == s for p, s in started)
    assert len(lab.hosts) == 74 and not lab.problems()
    assert int(NEIGH[2].read_text()) >= 74 * 16
    lab.inject("swap-active")
    lab.inject("forward-reject")
    assert leftovers(lab.dir)
    removed = lab.down()
    assert any(r.startswith("netns") for r in removed)
    assert leftovers(lab.dir) == []
    assert [p.read_text() for p in NEIGH] == sysctls
    assert lab.down() == []  # nothing left to remove
