"""A pod's sandbox on a lab node, made the way a container runtime and flannel's CNI make
it: a network namespace held by a pause process, a veth pair with one end on the node's
`cni0` and the pod's IP (the one kwok published in the pod's status) on the other, a default
route via cni0, and the pod's resolv.conf (nameserver = kube-dns).

Runs inside the node's namespaces, as root:
  python -m lab.podexec sandbox NS/NAME          -> prints the pause pid
  python -m lab.podexec exec NS/NAME CMD [ARG..]  -> CMD in the pod's sandbox
`exec` is what kwok runs for `kubectl exec` (see cluster.kwok_config)."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from .cluster import DNS_IP, Kube
from .plan import DEFAULT_STATE_DIR, HOST_PROC, SYSTEM_PATH, VIP
from .podnet import gateway
from .system import LabError, alive

RESOLV = (f"search {{ns}}.svc.cluster.local svc.cluster.local cluster.local\n"
          f"nameserver {DNS_IP}\noptions ndots:5\n")


def pods_dir(state_dir: Path) -> Path:
    return state_dir / "pods"


def _run(*argv: str) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if proc.returncode:
        raise LabError(f"{' '.join(argv)}: {proc.stderr.strip()}")


def _server(state_dir: Path) -> str | None:
    """The VIP, or a control plane's own apiserver when the load balancer does not answer
    (the lab's exec path must not depend on the fault under test)."""
    lab = json.loads((state_dir / "lab.json").read_text())
    for address in [VIP] + [h["ip"] for h in lab.get("hosts", [])
                            if "control_plane" in h["roles"]]:
        try:
            with socket.create_connection((address, 6443), timeout=1):
                return f"https://{address}:6443"
        except OSError:
            continue
    return None


def sandbox(pod_ref: str, state_dir: Path = DEFAULT_STATE_DIR) -> tuple[int, Path]:
    """(pause pid, resolv.conf) of the pod's sandbox, made if missing or stale."""
    ns, name = pod_ref.split("/", 1)
    kube = Kube(state_dir / "admin.conf", _server(state_dir))
    pod = kube.call("GET", f"/api/v1/namespaces/{ns}/pods/{name}", missing_ok=True)
    ip = (pod or {}).get("status", {}).get("podIP")
    if not ip:
        raise LabError(f"pod {pod_ref} has no IP yet (not Running?)")
    node = kube.call("GET", f"/api/v1/nodes/{pod['spec']['nodeName']}")
    cidr = node["spec"].get("podCIDR")
    record = pods_dir(state_dir) / f"{ns}_{name}.json"
    resolv = record.with_suffix(".resolv.conf")
    if record.exists():
        old = json.loads(record.read_text())
        # its node's pid means something here only on the same node (each has its own PID
        # namespace) and while it is still a pause: a pod recreated elsewhere leaves the old
        # sandbox to `down` (which ends every host's PID namespace)
        mine = old.get("node_pid") if old.get("node") == node["metadata"]["name"] else None
        if mine and _is_pause(mine):
            if old.get("ip") == ip:
                return mine, resolv
            os.kill(mine, 9)
    record.parent.mkdir(parents=True, exist_ok=True)
    resolv.write_text(RESOLV.format(ns=ns))
    pause = subprocess.Popen(["unshare", "--net", "--", "sleep", "infinity"],
                             start_new_session=True, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    own = os.readlink("/proc/self/ns/net")
    deadline = time.monotonic() + 5
    while os.readlink(f"/proc/{pause.pid}/ns/net") == own:
        if time.monotonic() > deadline:
            raise LabError(f"sandbox of {pod_ref}: unshare --net did not take")
        time.sleep(0.01)
    veth = "kp" + hashlib.sha256(pod_ref.encode()).hexdigest()[:10]
    subprocess.run(["ip", "link", "del", veth], capture_output=True)
    _run("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns",
         str(pause.pid))
    _run("ip", "link", "set", veth, "master", "cni0", "up")
    enter = ("nsenter", f"--net=/proc/{pause.pid}/ns/net", "--")
    prefix = ipaddress.ip_network(cidr).prefixlen
    _run(*enter, "ip", "link", "set", "lo", "up")
    _run(*enter, "ip", "addr", "add", f"{ip}/{prefix}", "dev", "eth0")
    _run(*enter, "ip", "link", "set", "eth0", "up")
    _run(*enter, "ip", "route", "add", "default", "via", gateway(cidr))
    # "pid" as the machine numbers it (`down`, power-off and rollouts kill by it from outside
    # the node), "node_pid" as the node does (this module, inside it)
    record.write_text(json.dumps({"pid": _machine_pid(pause.pid), "node_pid": pause.pid,
                                  "ip": ip, "node": node["metadata"]["name"]}))
    return pause.pid, resolv


def _is_pause(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read() == b"sleep\0infinity\0" and alive(pid)
    except OSError:
        return False


def _machine_pid(pid: int) -> int:
    """`pid` (a child of this process) as the machine numbers it: a lab host has a PID
    namespace of its own, with the machine's /proc at HOST_PROC."""
    if not os.path.isdir(f"{HOST_PROC}/self"):
        return pid  # not in a lab host's PID namespace: one numbering
    me = os.readlink(f"{HOST_PROC}/self")
    if me == str(os.getpid()):
        return pid
    with open(f"{HOST_PROC}/{me}/task/{me}/children") as f:
        kids = [int(k) for k in f.read().split()]
    # our only child (the subprocess.run calls before it have been reaped)
    if len(kids) != 1:
        raise LabError(f"cannot tell pause pid {pid} on the machine: children {kids}")
    return kids[0]


def exec_in(pod_ref: str, argv: list[str], state_dir: Path = DEFAULT_STATE_DIR) -> None:
    pid, resolv = sandbox(pod_ref, state_dir)
    os.execvp("nsenter", ["nsenter", f"--net=/proc/{pid}/ns/net", "--", "unshare", "--mount",
                          "--", "sh", "-c",
                          'mount --bind "$0" /etc/resolv.conf && PATH="$1" && shift && '
                          'exec "$@"', str(resolv), SYSTEM_PATH, *argv])


def main(argv: list[str]) -> int:
    # kwok's PATH starts with the shims that lead here: the tools used below must be real
    os.environ["PATH"] = SYSTEM_PATH
    os.environ.pop("KUBEACCEPT_POD", None)
    try:
        if len(argv) >= 2 and argv[0] == "sandbox":
            print(sandbox(argv[1])[0])
            return 0
        if len(argv) >= 3 and argv[0] == "exec":
            exec_in(argv[1], argv[2:])
        print("usage: podexec sandbox NS/NAME | exec NS/NAME CMD [ARG...]", file=sys.stderr)
        return 2
    except LabError as exc:
        print(f"podexec: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
