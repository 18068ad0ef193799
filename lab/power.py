"""Power a lab host off and on, as a BMC would: off kills everything running in the host at
once (sshd, etcd, the apiserver, kwok as its kubelet, its pods' processes and sandboxes) and
takes its link down; on brings the link up and starts the host's services as they were (its
files, sysctls and iptables rules stay: they are its disk and its kernel's state).

Every power action is appended to `power.log` in the state directory, so a self-test can
prove which runs powered anything off."""

from __future__ import annotations

import json
import os
import time
from contextlib import suppress
from pathlib import Path

from . import podnet
from .inside import Inside
from .state import LabState
from .system import LabError, alive, group_alive, run

POWER_ON_FAILS = "power_on_fails"  # state flag set by the power-on-fails fault


def log(state_dir: Path, line: str) -> None:
    with open(state_dir / "power.log", "a") as f:
        f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {line}\n")


def _kill_group(pid: int) -> None:
    run("kill", "-9", "--", f"-{pid}", check=False)
    deadline = time.monotonic() + 5
    while group_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)


def _pod_records(state_dir: Path, host: str) -> list[Path]:
    out = []
    for record in (state_dir / "pods").glob("*.json"):
        with suppress(ValueError, OSError):
            if json.loads(record.read_text()).get("node") == host:
                out.append(record)
    return out


def power_off(lab: LabState, name: str) -> None:
    host = lab.host(name)
    off = lab.state.setdefault("powered_off", {})
    if name in off:
        raise LabError(f"{name} is already powered off")
    rt = lab.runtime(host)
    log(lab.dir, f"power-off {name} (pid {os.getpid()})")
    for key in [k for k in rt.state if k != "anchor"]:
        pid = rt.state.pop(key)
        if alive(pid) or group_alive(pid):
            _kill_group(pid)
    for record in _pod_records(lab.dir, name):
        with suppress(ValueError, OSError):
            pid = json.loads(record.read_text()).get("pid")
            if alive(pid):
                os.kill(pid, 9)
        record.unlink(missing_ok=True)
    rt.sh("ip link set eth0 down")
    off[name] = time.time()
    lab.save()


def power_on(lab: LabState, name: str, sync: bool = True) -> None:
    host = lab.host(name)
    if lab.state.get(POWER_ON_FAILS):
        log(lab.dir, f"power-on {name} refused (power-on-fails fault)")
        raise LabError(f"power-on of {name} failed: the management controller did not "
                       "answer (the lab's power-on-fails fault)")
    log(lab.dir, f"power-on {name} (pid {os.getpid()})")
    rt = lab.runtime(host)
    rt.sh("ip link set eth0 up")
    cidrs = lab.state.get("pod_cidrs", {})
    if host.is_node and host.name in cidrs:
        # the link going down took its routes: flannel lays the pod network out at boot
        peers = [(p, cidrs[p.name]) for p in lab.hosts if p.is_node and p.name != name]
        rt.sh(podnet.node_script(host, cidrs[name], peers))
    rt.start_services()
    lab.state.get("powered_off", {}).pop(name, None)
    lab.save()
    rt.wait_ready(timeout=30)
    if sync and lab.state.get("cluster"):
        # its pods' sandboxes and processes come back as kubelet would start them
        Inside(lab).sync_coredns(lab.kube())
    lab.save()
