"""What the lab writes before its hosts start: SSH keys and known_hosts, each host's files
(kubeadm's PKI and configs, HAProxy), kwok's credentials and the inventory."""

from __future__ import annotations

import shlex
import shutil
from typing import TYPE_CHECKING

import yaml

from kubeaccept.model.roles import CONTROL_PLANE, ETCD, LB, WORKER

from . import cluster, nodefiles, pki
from .hosts import listeners, sshd_config
from .nodefiles import host_files, write_tree
from .plan import FIRST_CONTROL_PLANE, POD_SUBNET, SERVICE_SUBNET, SYSTEM_PATH, VIP, LabHost
from .system import python_m, run

if TYPE_CHECKING:
    from .state import LabState

# Commands `kubectl exec` can run in a lab pod (see podexec.py).
POD_COMMANDS = ("nslookup", "dig", "host", "cat", "sh", "ip", "getent", "ping")
GROUPS = {CONTROL_PLANE: "kube_control_plane", WORKER: "kube_node", ETCD: "etcd", LB: "lb"}


def prepare_files(lab: LabState, hosts: list[LabHost]) -> None:
    """Keys, known_hosts, each host's files, kwok's credentials and the inventory."""
    ssh = lab.dir / "ssh"
    ssh.mkdir(parents=True, exist_ok=True)
    key = ssh / "id_ed25519"
    if not key.exists():
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "kubeaccept-lab", "-f",
            str(key))
    (ssh / "authorized_keys").write_text((ssh / "id_ed25519.pub").read_text())
    known = []
    for h in hosts:
        d = lab.dir / "hosts" / h.name
        d.mkdir(parents=True, exist_ok=True)
        hk = d / "ssh_host_ed25519_key"
        if not hk.exists():
            run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", h.name, "-f", str(hk))
        known.append(f"{h.ip} {' '.join(hk.with_suffix('.pub').read_text().split()[:2])}")
        (d / "sshd_config").write_text(sshd_config(h, d, ssh / "authorized_keys"))
        if LB in h.roles:
            cps = [c for c in hosts if CONTROL_PLANE in c.roles]
            write_tree(d / "files", {"/etc/haproxy/haproxy.cfg":
                                     nodefiles.haproxy_cfg(cps).encode()})
    (ssh / "known_hosts").write_text("\n".join(known) + "\n")
    cas = pki.ClusterCAs.new()
    for h in hosts:
        if h.is_node:
            write_tree(lab.dir / "hosts" / h.name / "files", host_files(h, cas))
    admin = lab.dir / "hosts" / FIRST_CONTROL_PLANE / "files" / "etc/kubernetes/admin.conf"
    if admin.exists():
        shutil.copy(admin, lab.dir / "admin.conf")
    if "kwok" in lab.state.get("binaries", {}):
        kubelet_files(lab, hosts, cas)
    host_bin = lab.dir / "hostbin"
    host_bin.mkdir(exist_ok=True)
    if "etcdctl" in lab.state.get("binaries", {}):
        (host_bin / "etcdctl").symlink_to(lab.state["binaries"]["etcdctl"])
    bin_dir = lab.dir / "bin"
    bin_dir.mkdir(exist_ok=True)
    socat = shutil.which("socat")
    # Listeners run socat under the component's name, so `ss -p` names the component.
    for name in {n for h in hosts for n, _, _ in listeners(h)}:
        link = bin_dir / name
        if not link.exists():
            link.symlink_to(socat)
    lab.inventory.parent.mkdir(parents=True, exist_ok=True)
    lab.inventory.write_text(inventory_yaml(lab, hosts))

def kubelet_files(lab: LabState, hosts: list[LabHost], cas: pki.ClusterCAs) -> None:
    """kwok's credentials, serving certificate and Exec rules on every node; the
    shims that route `kubectl exec` into a pod's sandbox; CoreDNS's kubeconfig."""
    exec_dir = lab.dir / "podexec"
    exec_dir.mkdir(exist_ok=True)
    for cmd in POD_COMMANDS:
        shim = exec_dir / cmd
        shim.write_text(
            "#!/bin/sh\n# `kubectl exec POD -- CMD` on a lab node: CMD in the pod's sandbox\n"
            'if [ -n "$KUBEACCEPT_POD" ]; then\n'
            f'  exec {python_m("lab.podexec")} exec "$KUBEACCEPT_POD" '
            f'{cmd} "$@"\nfi\n'
            f'PATH={SYSTEM_PATH} exec {cmd} "$@"\n')
        shim.chmod(0o755)
    kubelet = lab.dir / "bin" / "kubelet"
    kubelet.parent.mkdir(exist_ok=True)
    if not kubelet.exists():
        kubelet.symlink_to(lab.state["binaries"]["kwok"])  # `ss -p` shows "kubelet"
    user = pki.issue("kubeaccept-lab-kwok", cas.ca, orgs=["system:masters"],
                     usages=[pki.CLIENT])
    conf = pki.kubeconfig(f"https://{VIP}:6443", cas.ca, user, "kwok")
    (lab.dir / "coredns").mkdir(exist_ok=True)
    (lab.dir / "coredns" / "kubeconfig").write_bytes(
        pki.kubeconfig("https://10.96.0.1:443", cas.ca, user, "coredns"))
    for h in hosts:
        if not h.is_node:
            continue
        cert, key = pki.issue(f"{h.name}", cas.ca, usages=[pki.SERVER], dns=[h.name],
                              ips=[h.ip]).pem()
        write_tree(lab.dir / "hosts" / h.name / "files", {
            cluster.KWOK_CONF: conf,
            "/var/lib/kubelet/pki/kubelet.crt": cert,
            "/var/lib/kubelet/pki/kubelet.key": key,
            "/etc/kwok/kwok.yaml": cluster.kwok_config().encode()})

def inventory_yaml(lab: LabState, hosts: list[LabHost]) -> str:
    ssh = lab.dir / "ssh"
    lab_cli = f"{python_m('lab')} --state-dir {shlex.quote(str(lab.dir))}"
    groups: dict[str, dict] = {g: {"hosts": {}} for g in GROUPS.values()}
    for h in hosts:
        for role in h.roles:
            groups[GROUPS[role]]["hosts"][h.name] = {"ansible_host": h.ip, "ip": h.ip}
    doc = {"all": {
        "vars": {
            "ansible_user": "root",
            "ansible_ssh_private_key_file": str(ssh / "id_ed25519"),
            "ansible_ssh_common_args":
                f"-o UserKnownHostsFile={ssh / 'known_hosts'} -o StrictHostKeyChecking=yes",
            "kube_pods_subnet": POD_SUBNET,
            "kube_service_addresses": SERVICE_SUBNET,
            "loadbalancer_apiserver": {"address": VIP, "port": 6443},
            # the failover gate's power control: the lab's own "BMC"
            "kubeaccept_power_off": f"{lab_cli} power-off {{host}}",
            "kubeaccept_power_on": f"{lab_cli} power-on {{host}}",
        },
        "children": {**groups, "k8s_cluster": {"children": {
            "kube_control_plane": None, "kube_node": None}}},
    }}
    return ("# Written by `python -m lab up`: the lab's hosts, not a real cluster.\n"
            + yaml.safe_dump(doc, sort_keys=False))

# --- faults ---------------------------------------------------------------------------
