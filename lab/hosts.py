"""One lab host: a network namespace + private mount, UTS and PID namespaces held by an
anchor process (the host's PID 1), its own sshd, the role's listeners, sysctls, iptables
rules and node files."""

from __future__ import annotations

import os
import shlex
import socket
import sys
import time
from pathlib import Path

from kubeaccept.model.ports import served
from kubeaccept.model.roles import LB

from . import nodefiles
from .plan import BRIDGE, HOST_PROC, NODE_NETWORK, VIP, LabHost
from .system import LabError, alive, child, group_alive, run, spawn

# PID 1 of a lab host: reaps the orphans the kernel hands it (a bare `sleep` would leave them
# zombies), and like any PID 1 ignores signals it has no handler for.
REAPER = "while :; do sleep 3600 & wait; done"

HEALTHY_SYSCTLS = {
    "net.ipv4.ip_forward": "1",
    "net.ipv4.conf.all.rp_filter": "1",
    "net.ipv4.conf.default.rp_filter": "1",
    "net.ipv4.conf.eth0.rp_filter": "1",
    "net.bridge.bridge-nf-call-iptables": "1",
}


def listeners(host: LabHost, real: tuple[str, ...] = ()) -> list[tuple[str, str, int]]:
    """(process name, bind address, port) as a kubeadm node binds them, for the components
    that do not run for real (`real`: names of those that do)."""
    if LB in host.roles:
        return []
    local_only = {"kube-controller-manager", "kube-scheduler"}
    out = []
    for port in served(host.roles, None):
        name = port.component.split(" ")[0]
        if port.number == 2379:
            out += [("etcd", "127.0.0.1", 2379), ("etcd", host.ip, 2379)]
        elif port.number == 2380:
            out.append(("etcd", host.ip, 2380))
        else:
            out.append((name, "127.0.0.1" if name in local_only else "0.0.0.0", port.number))
    return [entry for entry in out if entry[0] not in real]


class HostRuntime:
    def __init__(self, host: LabHost, state_dir: Path, state: dict,
                 components: dict[str, list[str]] | None = None):
        self.host = host
        # Control-plane processes (name -> argv), started in this order; None: stand-ins.
        self.components = components or {}
        self.dir = state_dir / "hosts" / host.name
        self.state_dir = state_dir
        self.state = state.setdefault(host.name, {})  # pids, persisted by the caller

    # --- creation -------------------------------------------------------------------------
    def create(self) -> None:
        h = self.host
        for sub in ("etc.upper", "etc.work", "varlib.upper", "varlib.work", "home"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        run("ip", "netns", "add", h.netns)
        run("ip", "link", "add", h.veth, "type", "veth", "peer", "name", "eth0", "netns", h.netns)
        run("ip", "link", "set", h.veth, "master", BRIDGE, "up")
        ns = ("ip", "netns", "exec", h.netns)
        run(*ns, "ip", "link", "set", "lo", "up")
        run(*ns, "ip", "addr", "add", f"{h.ip}/{NODE_NETWORK.prefixlen}", "dev", "eth0")
        if LB in h.roles:
            run(*ns, "ip", "addr", "add", f"{VIP}/32", "dev", "eth0")
        run(*ns, "ip", "link", "set", "eth0", "up")
        self._start_anchor()

    def _start_anchor(self) -> None:
        d, ready = self.dir, self.dir / "ready"
        ready.unlink(missing_ok=True)
        mounts = (
            f"mount -t overlay overlay -o lowerdir=/etc,upperdir={d}/etc.upper,"
            f"workdir={d}/etc.work /etc && "
            f"mount -t overlay overlay -o lowerdir=/var/lib,upperdir={d}/varlib.upper,"
            f"workdir={d}/varlib.work /var/lib && "
            # A lean home: no .bashrc, so each SSH command starts a bare shell; the Python
            # the lab runs on stays reachable (kwok's exec shims run it, see podexec.py).
            + "".join(f"mkdir -p {d}/home/{k} && mount --bind /root/{k} {d}/home/{k} && "
                      for k in _home_keep())
            + f"mount --rbind {d}/home /root && "
            # Tools an operator has on a control plane (etcdctl), from the build cache, over
            # what the machine has there.
            f"mount -t overlay overlay -o lowerdir={self.state_dir}/hostbin:/usr/local/bin "
            "/usr/local/bin && "
            "mount -t tmpfs -o mode=755 tmpfs /run && mkdir -p /run/sshd && "
            # The host's own PID namespace and /proc, as a real node has: `ps`, `ss -p` see
            # its processes only (`ss -p` reads every process's fds). The machine's /proc stays
            # at HOST_PROC for the lab's own bookkeeping (podexec records pause pids as the
            # machine sees them: `down` kills by those).
            f"mkdir -p {HOST_PROC} && mount --bind /proc {HOST_PROC} && "
            "mount -t proc proc /proc && "
            f"hostname {self.host.name} && touch {ready} && exec sh -c {shlex.quote(REAPER)}"
        )
        pid = spawn(["ip", "netns", "exec", self.host.netns, "unshare", "--mount", "--uts",
                     "--pid", "--fork", "--propagation", "private", "--", "sh", "-c", mounts],
                    str(d / "anchor.log"))
        deadline = time.monotonic() + 10
        while not ready.exists():
            if not alive(pid) or time.monotonic() > deadline:
                log = (d / "anchor.log").read_text(errors="replace").strip()
                raise LabError(f"{self.host.name}: namespace setup failed: {log[-300:]}")
            time.sleep(0.02)
        # unshare waits outside; its child is the host's PID 1, in all the host's namespaces
        self.state["anchor"] = child(pid)

    # --- running things inside ------------------------------------------------------------
    def enter(self) -> list[str]:
        pid = self.state.get("anchor")
        if not alive(pid):
            raise LabError(f"{self.host.name} is not running (lab down? run `up`)")
        return ["nsenter", "-t", str(pid), "-m", "-u", "-n", "-p", "--"]

    def sh(self, script: str, check: bool = True) -> str:
        return run(*self.enter(), "sh", "-c", script, check=check)

    def write(self, path: str, data: bytes, mode: int = 0o644) -> None:
        """Write a file inside the host (through its own /etc and /var/lib)."""
        run(*self.enter(), "sh", "-c", 'mkdir -p "$(dirname "$0")" && cat > "$0" && '
            'chmod "$1" "$0"', path, f"{mode:o}", input=data.decode())

    def start(self, key: str, argv: list[str], restart: bool = False) -> None:
        """Start a process in the host; `restart`: rerun it when it exits, as kubelet reruns
        a static pod (kube-controller-manager exits on purpose when it loses its lease)."""
        if alive(self.state.get(key)):
            return
        if restart:
            argv = ["sh", "-c", 'while :; do "$@"; sleep 1; done', key, *argv]
        self.state[key] = spawn(self.enter() + argv, str(self.dir / f"{key}.log"))

    def stop(self, key: str, timeout: float = 10) -> None:
        """Stop a process and wait until it is gone (etcd, for one, shuts down gracefully)."""
        pid = self.state.pop(key, None)
        if not alive(pid):
            return
        # The process leads its own group (spawn uses setsid): a restart loop and its child,
        # or socat and its per-connection children, go together.
        run("kill", "--", f"-{pid}", check=False)
        deadline = time.monotonic() + timeout
        while group_alive(pid):
            if time.monotonic() > deadline:
                run("kill", "-9", "--", f"-{pid}", check=False)
            time.sleep(0.05)

    # --- the healthy configuration (also what `heal` restores) ----------------------------
    def configure(self) -> None:
        h = self.host
        script = []
        if (self.dir / "files").is_dir():
            # The host's files were written once under files/ at `up`; copying them back is
            # also how `heal` undoes a fault (same certificates, same configs).
            files = self.dir / "files"
            script.append(f"rm -f /etc/docker/daemon.json && cp -a {shlex.quote(str(files))}/. /")
        if h.is_node:
            script.append("sysctl -q " + " ".join(f"-w {k}={v}" for k, v in
                                                  HEALTHY_SYSCTLS.items()))
            # nftables tables of the host's own (not iptables-nft's): a fault's, e.g. the
            # `inet filter` of Debian's /etc/nftables.conf
            script.append("command -v nft >/dev/null && for t in $(nft list tables 2>/dev/null"
                          " | awk '$2 == \"inet\" {print $3}'); do nft delete table inet \"$t\";"
                          " done; true")
            ports = sorted({p for _, _, p in listeners(h)})
            rules = nodefiles.iptables_rules(h, ports)
            script.append(f"iptables-restore <<'KUBEACCEPT_LAB_EOF'\n{rules}KUBEACCEPT_LAB_EOF")
            nat = self.dir / "nat.rules"  # kube-proxy's Service NAT, once the cluster has it
            if nat.exists():
                script.append(f"iptables-restore < {shlex.quote(str(nat))}")
        self.sh("set -e\n" + "\n".join(script) + "\n")
        self.start_services()

    def start_services(self) -> None:
        h = self.host
        self.start("sshd", ["/usr/sbin/sshd", "-D", "-f", str(self.dir / "sshd_config"),
                            "-E", str(self.dir / "sshd.log")])
        for name, address, port in listeners(h, tuple(self.components)):
            self.start(f"listen-{address}:{port}",
                       [str(self.state_dir / "bin" / name), "-u",
                        f"TCP-LISTEN:{port},bind={address},reuseaddr,fork", "/dev/null"])
        for name, argv in self.components.items():
            self.start(name, argv, restart=True)
        if LB in h.roles:
            self.start("haproxy", ["haproxy", "-db", "-f", "/etc/haproxy/haproxy.cfg"])

    def wait_ready(self, timeout: float = 15) -> None:
        """sshd and every listener accept connections."""
        targets = [(self.host.ip, 22)] + [
            (self.host.ip if a == "0.0.0.0" else a, p)
            for _, a, p in listeners(self.host, tuple(self.components)) if a != "127.0.0.1"]
        if LB in self.host.roles:
            targets.append((VIP, 6443))
        deadline = time.monotonic() + timeout
        for address, port in targets:
            while not _connects(address, port):
                if time.monotonic() > deadline:
                    raise LabError(f"{self.host.name}: nothing accepts on {address}:{port} "
                                   f"after {timeout:g}s (see {self.dir}/*.log)")
                time.sleep(0.05)


def _home_keep() -> list[str]:
    """Entries of /root the lab's own Python lives in (e.g. ~/.pyenv), if any."""
    real = Path(os.path.realpath(sys.executable))
    if real.parts[:2] == ("/", "root") and len(real.parts) > 3:
        return [real.parts[2]]
    return []


def _connects(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.5):
            return True
    except OSError:
        return False


def sshd_config(host: LabHost, host_dir: Path, authorized_keys: Path) -> str:
    return f"""\
Port 22
ListenAddress {host.ip}
HostKey {host_dir}/ssh_host_ed25519_key
AuthorizedKeysFile {authorized_keys}
PidFile none
UsePAM no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
StrictModes no
PrintMotd no
PrintLastLog no
UseDNS no
LogLevel VERBOSE
MaxStartups 500:30:1000
MaxSessions 100
Subsystem sftp internal-sftp
"""


