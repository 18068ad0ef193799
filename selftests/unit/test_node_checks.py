"""Node checks as pure functions over facts: each can fail, and says why and how to fix."""

from __future__ import annotations

from pathlib import Path

from kubeaccept.checks import NodeContext, cgroup, firewall, lb, ports, swap, sysctl
from kubeaccept.inventory import Inventory, load_inventory
from kubeaccept.roles import CONTROL_PLANE, ETCD, LB
from kubeaccept.settings import Settings

from .factory import CP, context, facts, host


def failed(findings):
    return [f for f in findings if not f.ok]


def sysctl_with(**changes):
    lines = dict(line.split(" ") for line in facts().sections["sysctl"].splitlines())
    lines.update(changes)
    return "\n".join(f"{k} {v}" for k, v in lines.items())


# --- rp_filter / ip_forward / bridge-nf ---------------------------------------------------
def test_rp_filter_healthy():
    assert not failed(sysctl.rp_filter(context()))


def test_rp_filter_all_loose_fails_every_interface_with_calico_message():
    f = failed(sysctl.rp_filter(context(facts(sysctl=sysctl_with(
        **{"net.ipv4.conf.all.rp_filter": "2"})))))
    assert {x.subject for x in f} == {"n1:default", "n1:eth0", "n1:lo"}
    assert "Kernel's RPF check is set to 'loose'" in f[0].why
    assert "net.ipv4.conf.all.rp_filter=1" in f[0].fix


def test_rp_filter_one_interface_is_max_of_all_and_iface():
    f = failed(sysctl.rp_filter(context(facts(sysctl=sysctl_with(
        **{"net.ipv4.conf.eth0.rp_filter": "2"})))))
    assert [x.subject for x in f] == ["n1:eth0"]
    assert "max(all=1, eth0=2)" in f[0].observed
    assert "all.rp_filter=1" not in f[0].fix and "eth0.rp_filter=1" in f[0].fix


def test_ip_forward():
    assert not failed(sysctl.ip_forward(context()))
    f = failed(sysctl.ip_forward(context(facts(sysctl=sysctl_with(
        **{"net.ipv4.ip_forward": "0"})))))
    assert f and "net.ipv4.ip_forward = 0" in f[0].observed


def test_bridge_nf_only_where_loaded():
    no_module = "\n".join(line for line in facts().sections["sysctl"].splitlines()
                          if "bridge" not in line)
    assert not failed(sysctl.bridge_nf_call_iptables(context(facts(sysctl=no_module))))
    f = failed(sysctl.bridge_nf_call_iptables(context(facts(sysctl=sysctl_with(
        **{"net.bridge.bridge-nf-call-iptables": "0"})))))
    assert f and "10.96.0.10" in f[0].why


# --- swap -----------------------------------------------------------------------------------
def test_swap_active_and_fstab_line():
    f = facts(swaps="Filename Type Size Used Priority\n/swap.img file 1024 0 -2",
              files={"/etc/fstab": "UUID=x / ext4 defaults 0 1\n/swap.img none swap sw 0 0\n"})
    out = failed(swap.swap(context(f)))
    assert [x.subject for x in out] == ["n1:/proc/swaps", "n1:/etc/fstab:2"]
    assert "running with swap on is not supported" in out[0].why
    assert "sed -i '2s/^/#/' /etc/fstab" in out[1].fix


def test_swap_commented_fstab_passes_and_kubelet_may_allow_swap():
    assert not failed(swap.swap(context()))
    allowed = facts(swaps="Filename\n/swap.img file 1 0 -2", files={
        "/var/lib/kubelet/config.yaml": "failSwapOn: false\nmemorySwap:\n  swapBehavior: LimitedSwap\n"})
    out = swap.swap(context(allowed))
    assert not failed(out) and "LimitedSwap" in out[0].observed


# --- cgroup driver --------------------------------------------------------------------------
def test_cgroup_containerd_systemd_passes():
    out = cgroup.cgroup_driver(context())
    assert not failed(out) and out[0].observed == "containerd uses systemd, kubelet uses systemd"


def test_cgroup_containerd_v3_path_and_false():
    toml = ('version = 3\n[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]\n'
            "  SystemdCgroup = false\n")
    out = failed(cgroup.cgroup_driver(context(facts(files={"/etc/containerd/config.toml": toml}))))
    assert out and out[0].observed == "containerd uses cgroupfs, kubelet uses systemd"
    assert "is different from containerd cgroup driver" in out[0].why


def test_cgroup_docker_cgroupfs_and_default_by_cgroup_version():
    flags = {"/var/lib/kubelet/kubeadm-flags.env":
             'KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///var/run/cri-dockerd.sock"'}
    cgfs = facts(files={**flags, "/etc/docker/daemon.json":
                        '{"exec-opts": ["native.cgroupdriver=cgroupfs"]}'})
    out = failed(cgroup.cgroup_driver(context(cgfs)))
    assert out and "docker uses cgroupfs" in out[0].observed
    assert "native.cgroupdriver=systemd" in out[0].fix
    bare = {**flags, "/etc/docker/daemon.json": "{}"}
    assert not failed(cgroup.cgroup_driver(context(facts(files=bare))))  # cgroup v2 default
    assert failed(cgroup.cgroup_driver(context(facts(files=bare, cgroupfs="tmpfs"))))


def test_cgroup_kubelet_mismatch_and_both_cgroupfs():
    f = facts(files={"/var/lib/kubelet/config.yaml": "cgroupDriver: cgroupfs\n"})
    out = failed(cgroup.cgroup_driver(context(f)))
    assert out and out[0].observed == "containerd uses systemd, kubelet uses cgroupfs"
    both = facts(files={"/var/lib/kubelet/config.yaml": "kind: KubeletConfiguration\n",
                        "/etc/containerd/config.toml": "version = 2\n"})
    out = failed(cgroup.cgroup_driver(context(both)))
    assert out and "IsDockerSystemdCheck" in out[0].why  # agree, but not systemd


def test_cgroup_malformed_files_name_the_line():
    f = facts(files={"/var/lib/kubelet/kubeadm-flags.env": "",
                     "/etc/docker/daemon.json": '{\n  "a": 1\n  "b": 2\n}\n'})
    out = failed(cgroup.cgroup_driver(context(f)))
    assert out and "/etc/docker/daemon.json line 3" in out[0].observed
    toml = facts(files={"/etc/containerd/config.toml": "version = 2\n[plugins\n"})
    assert "line 2" in failed(cgroup.cgroup_driver(context(toml)))[0].observed
    yml = facts(files={"/var/lib/kubelet/config.yaml": "cgroupDriver: [systemd\n"})
    assert "config.yaml line" in failed(cgroup.cgroup_driver(context(yml)))[0].observed


def test_cgroup_no_kubelet_config_or_runtime():
    out = failed(cgroup.cgroup_driver(context(facts(
        files={"/var/lib/kubelet/config.yaml": None}))))
    assert out and "not found" in out[0].observed
    none = facts(files={"/var/lib/kubelet/kubeadm-flags.env": None,
                        "/etc/containerd/config.toml": None})
    assert "container runtime not found" in failed(cgroup.cgroup_driver(context(none)))[0].observed


# --- ports ----------------------------------------------------------------------------------
LISTEN_CP = "\n".join(
    f'LISTEN 0 4096 {a}:{p} 0.0.0.0:* users:(("{n}",pid={i},fd=3))' for i, (n, a, p) in enumerate([
        ("kube-apiserver", "*", 6443), ("etcd", "127.0.0.1", 2379), ("etcd", "192.0.2.11", 2380),
        ("kubelet", "*", 10250), ("kube-controller", "127.0.0.1", 10257)], 100))


def test_listening_ports_names_the_missing_component():
    f = facts(listen_tcp=LISTEN_CP)
    out = failed(ports.listening_ports(context(f, host(roles=CP))))
    assert [x.subject for x in out] == ["n1:tcp/10259"]
    assert out[0].observed == "nothing listens on tcp/10259 (kube-scheduler)"
    assert "Pending" in out[0].why


def test_listening_ports_legacy_by_version():
    f = facts(listen_tcp=LISTEN_CP + '\nLISTEN 0 1 127.0.0.1:10259 0.0.0.0:* users:(("kube-scheduler",pid=1,fd=3))')
    assert not failed(ports.listening_ports(context(f, host(roles=CP))))
    old = failed(ports.listening_ports(context(f, host(roles=CP), settings=Settings(kube_version=(1, 18)))))
    assert {x.subject for x in old} == {"n1:tcp/10251", "n1:tcp/10252"}


def test_ports_reachable_uses_peers_probes():
    target = host("w1", "192.0.2.21")
    cp1, cp2 = host("cp1", "192.0.2.11", CP), host("cp2", "192.0.2.12", CP)
    good = facts("cp1", probes="192.0.2.21:10250 open")
    bad = facts("cp2", probes="192.0.2.21:10250 timeout")
    out = ports.ports_reachable(context(facts("w1"), target, peers=[(cp1, good), (cp2, bad)]))
    assert [x.observed for x in failed(out)] == ["tcp/10250 (kubelet) not reachable from cp2 (timeout)"]
    out = ports.ports_reachable(context(facts("w1"), target, peers=[(cp1, good), (cp2, "unreachable: x")]))
    assert not failed(out) and any("cp2 (unreachable: x): not probed" in e for e in out[0].evidence)


def test_probe_targets_follow_the_port_matrix():
    stacked = (CONTROL_PLANE, ETCD)  # kubeadm's default: etcd on each control plane
    cp1, cp2 = host("cp1", "10.0.0.1", stacked), host("cp2", "10.0.0.2", stacked)
    w1 = host("w1", "10.0.0.3")
    inv = Inventory("t", (cp1, cp2, w1))
    assert ports.probe_targets(w1, inv) == ["10.0.0.1:6443", "10.0.0.2:6443"]
    assert ports.probe_targets(cp1, inv) == ["10.0.0.2:6443", "10.0.0.2:2379", "10.0.0.2:2380",
                                             "10.0.0.2:10250", "10.0.0.3:10250"]


CI_SEPARATE_ETCD = (Path(__file__).parent / "fixtures" / "inventories" / "kubespray-ci"
                    / "ubuntu24-ha-separate-etcd" / "ci_inventory.yml")
LISTEN_CP_NO_ETCD = "\n".join(
    f'LISTEN 0 4096 {a}:{p} 0.0.0.0:* users:(("{n}",pid={i},fd=3))' for i, (n, a, p) in enumerate([
        ("kube-apiserver", "*", 6443), ("kubelet", "*", 10250),
        ("kube-controller", "127.0.0.1", 10257), ("kube-scheduler", "127.0.0.1", 10259)], 100))


def test_separate_etcd_ports_belong_to_the_etcd_hosts():
    """kubespray CI ubuntu24-ha-separate-etcd: etcd runs on its own hosts, so 2379/2380 are
    theirs (kubeadm's "Ports and Protocols": 2379-2380 used by kube-apiserver, etcd): a control
    plane without etcd passes without them; an etcd host must listen on both."""
    inv = load_inventory(CI_SEPARATE_ETCD)
    cp, etcd = inv.get("ubuntu-2404-0"), inv.get("ubuntu-2404-4")
    cp_ctx = NodeContext(cp, facts(cp.name, listen_tcp=LISTEN_CP_NO_ETCD), inv)
    assert not failed(ports.listening_ports(cp_ctx))
    assert not any("2379" in f.subject or "2380" in f.subject
                   for f in ports.listening_ports(cp_ctx))
    out = failed(ports.listening_ports(NodeContext(etcd, facts(etcd.name), inv)))
    assert [(f.subject, f.observed) for f in out] == [
        ("ubuntu-2404-4:tcp/2379", "nothing listens on tcp/2379 (etcd client)"),
        ("ubuntu-2404-4:tcp/2380", "nothing listens on tcp/2380 (etcd peer)")]
    assert "kube-apiservers using this etcd member" in out[0].why
    # probes: control planes -> etcd client port; etcd members -> each other's 2379 and 2380
    assert ports.probe_targets(cp, inv) == [
        "192.0.2.11:6443", "192.0.2.11:10250", "192.0.2.12:6443", "192.0.2.12:10250",
        "192.0.2.14:2379", "192.0.2.15:2379", "192.0.2.16:2379", "192.0.2.13:10250"]
    assert ports.probe_targets(etcd, inv) == [
        "192.0.2.15:2379", "192.0.2.15:2380", "192.0.2.16:2379", "192.0.2.16:2380"]
    # the firewall check asks the control plane to accept no etcd traffic
    labels = [label for label, *_ in firewall._inbound(cp_ctx)]
    assert not any("etcd" in label for label in labels) and "tcp/6443 (kube-apiserver)" in labels


def test_etcd_host_reachability_from_control_planes_and_peers():
    inv = load_inventory(CI_SEPARATE_ETCD)
    etcd = inv.get("ubuntu-2404-4")
    ok = "192.0.2.14:2379 open\n192.0.2.14:2380 open"
    peers = {h.name: facts(h.name, probes=ok) for h in inv.hosts if h.name != etcd.name}
    peers["ubuntu-2404-6"] = facts("ubuntu-2404-6", probes="192.0.2.14:2379 open\n"
                                   "192.0.2.14:2380 timeout")
    out = ports.ports_reachable(NodeContext(etcd, facts(etcd.name), inv, peers=peers))
    assert [(f.subject, f.ok) for f in out] == [("ubuntu-2404-4:tcp/2379", True),
                                                ("ubuntu-2404-4:tcp/2380", False)]
    assert out[0].observed == "tcp/2379 (etcd client) reachable from 5 node(s)"
    assert out[1].observed == "tcp/2380 (etcd peer) not reachable from ubuntu-2404-6 (timeout)"
    assert out[1].expected == "reachable from every etcd node"


def test_ports_reachable_says_what_it_could_not_check():
    """A worker-only inventory has no control plane to probe the kubelet from: the check says
    so (a passing finding with a note) instead of producing nothing."""
    w1, w2 = host("w1", "192.0.2.21"), host("w2", "192.0.2.22")
    out = ports.ports_reachable(context(facts("w1"), w1, peers=[(w2, facts("w2"))]))
    assert [(f.subject, f.ok, f.observed) for f in out] == [
        ("w1:unchecked", True, "not checked: tcp/10250 (kubelet)")]
    assert out[0].note == ("not checked: tcp/10250 (kubelet) on w1: the inventory has no other "
                           "control_plane host to probe from")


def test_lb_listening():
    lbh = host("lb1", roles=(LB,))
    assert failed(lb.lb_listening(context(facts("lb1"), lbh)))
    f = facts("lb1", listen_tcp='LISTEN 0 1 198.18.0.100:6443 0.0.0.0:* users:(("haproxy",pid=9,fd=7))')
    out = lb.lb_listening(context(f, lbh))
    assert not failed(out) and "haproxy" in out[0].observed
