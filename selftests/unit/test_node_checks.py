"""Node checks as pure functions over facts: each can fail, and says why and how to fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubeaccept.checks import NodeContext, firewall, sysctl
from kubeaccept.facts import NodeFacts, parse
from kubeaccept.inventory.ansible import load_inventory
from kubeaccept.model import ports as port_matrix
from kubeaccept.model.hosts import Inventory
from kubeaccept.model.roles import CONTROL_PLANE, ETCD, LB
from kubeaccept.model.settings import Settings
from kubeaccept.suite.verdict import failure_message
from lab.faults import FAULTS

from .factory import CP, NO_API, cni_cluster, context, facts, host, judge


def failed(findings):
    return [f for f in findings if not f.ok]


def sysctl_with(**changes):
    lines = dict(line.split(" ") for line in facts().sections["sysctl"].splitlines())
    lines.update(changes)
    return "\n".join(f"{k} {v}" for k, v in lines.items())


# --- rp_filter / ip_forward / bridge-nf ---------------------------------------------------
# Calico v3.11.3 (field report 01's) with its pod on n1, as checks.cni.cluster_view reads it
CALICO_311 = cni_cluster()
FELIX_FATAL = ("Kernel's RPF check is set to 'loose'.  This would allow endpoints to spoof "
               "their IP address.  Calico requires net.ipv4.conf.all.rp_filter to be set to 0 "
               "or 1.")


def test_rp_filter_healthy():
    assert not failed(judge("node_rp_filter", node=context(), cluster_cni=NO_API))


def test_rp_filter_all_loose_fails_every_interface_with_felix_message_where_calico_311_runs():
    """felix v3.11.3 dataplane/linux/int_dataplane.go: readRPFilter reads
    /proc/sys/net/ipv4/conf/all/rp_filter and log.Fatal's the text field report 01 quotes
    when it is above 1 (unless IgnoreLooseRPF)."""
    f = failed(judge("node_rp_filter", node=context(facts(sysctl=sysctl_with(
        **{"net.ipv4.conf.all.rp_filter": "2"}))), cluster_cni=CALICO_311))
    assert {x.subject for x in f} == {"n1:default", "n1:eth0", "n1:lo"}
    assert f"[FATAL] {FELIX_FATAL}" in f[0].why and "v3.11.3" in f[0].why
    assert "net.ipv4.conf.all.rp_filter=1" in f[0].fix
    assert any("kube-system/calico-node" in e and "has a pod on node n1" in e
               for e in f[0].evidence)


def test_felix_message_is_felix_311s_own_text():
    """The text, copied from felix v3.11.3's int_dataplane.go, is field report 01's log line."""
    report = Path("/work/shared/field-reports/01-calico-rp-filter-crashloop.txt")
    if not report.exists():
        pytest.skip("field reports not on this machine")
    assert sysctl.FELIX_FATAL in report.read_text()


def test_rp_filter_all_loose_where_calico_312_or_later_runs_is_a_note():
    """felix commit 9eabe46c3 ("Use iptables for ipv4 RPF check (#2189)", first in v3.12.0)
    removed the conf/all check and IgnoreLooseRPF: calico-node v3.29.1 runs with all=2."""
    out = judge("node_rp_filter", node=context(facts(sysctl=sysctl_with(
        **{"net.ipv4.conf.all.rp_filter": "2"}))), cluster_cni=cni_cluster(
            image="quay.io/calico/node:v3.29.1",
            exception="DaemonSet kube-system/calico-node: FELIX_IGNORELOOSERPF=true"))
    assert not failed(out)
    eth0 = next(x for x in out if x.subject == "n1:eth0")
    assert "Kernel's RPF check" not in eth0.note and "v3.29.1" in eth0.note
    assert "Felix does not read conf/all" in eth0.note and "has no effect any more" in eth0.note


def test_rp_filter_calico_of_unknown_version_fails_and_says_so():
    out = failed(judge("node_rp_filter", node=context(facts(sysctl=sysctl_with(
        **{"net.ipv4.conf.all.rp_filter": "2"}))), cluster_cni=cni_cluster(
            image="quay.io/calico/node:master")))
    assert out and "version unknown" in out[0].why and "v3.12 and later" in out[0].why


def test_rp_filter_one_interface_loose_is_a_note_not_calicos_crash():
    """Kernel (Documentation/networking/ip-sysctl.rst, rp_filter): the value used on an
    interface is max(conf/all, conf/<iface>); 2 is RFC 3704 loose mode, which drops a packet
    only when its source has no route back at all. Calico's Felix v3.11 reads only conf/all
    (dataplane/linux/int_dataplane.go, readRPFilter), so eth0=2 with all=1 neither
    crash-loops calico-node nor breaks asymmetric routes: it passes with a note saying so."""
    out = judge("node_rp_filter", node=context(facts(sysctl=sysctl_with(
        **{"net.ipv4.conf.eth0.rp_filter": "2"}))), cluster_cni=CALICO_311)
    assert not failed(out)
    eth0 = next(x for x in out if x.subject == "n1:eth0")
    assert eth0.ok and "max(all=1, eth0=2)" in eth0.observed and "loose on eth0 only" in eth0.observed
    assert "Kernel's RPF check" not in eth0.note and "Felix reads only conf/all" in eth0.note
    assert "no route back through any interface" in eth0.note and "asymmetric" in eth0.note
    assert "eth0=2" in eth0.note and "sysctl -w net.ipv4.conf.eth0.rp_filter=1" in eth0.note
    # without Calico the note explains loose mode and does not speak of Felix
    plain = judge("node_rp_filter", node=context(facts(sysctl=sysctl_with(
        **{"net.ipv4.conf.eth0.rp_filter": "2"}))), cluster_cni=NO_API)
    note = next(x for x in plain if x.subject == "n1:eth0").note
    assert "Felix" not in note and "Calico" not in note and "asymmetric routes keep working" in note


FLANNEL_DS = cni_cluster("kube-flannel-ds", "ghcr.io/flannel-io/flannel:v0.26.1",
                         namespace="kube-flannel")


def test_lab_rp_filter_faults_words_come_from_the_check():
    """selftests/lab/test_matrix.py matches the lab faults by these words: the lab runs
    flannel (rp-filter-all: all=2, a note, no Calico; rp-filter-iface: eth0=2, a note),
    calico-node v3.11.3 (rp-filter-all-calico: Felix's FATAL text) and calico-node v3.29.1
    with FELIX_IGNORELOOSERPF=true (calico-loose-rpf: a note)."""
    loose_all = facts(sysctl=sysctl_with(**{"net.ipv4.conf.all.rp_filter": "2"}))
    all2 = judge("node_rp_filter", node=context(loose_all), cluster_cni=FLANNEL_DS)
    assert not failed(all2) and FAULTS["rp-filter-all"].expect == ()
    notes = "\n".join(f"{f.subject}: {f.note}" for f in all2 if f.note)
    assert "Calico" not in notes and "Felix" not in notes
    for _, words in FAULTS["rp-filter-all"].notes:
        assert all(w in notes for w in words), (words, notes)
    calico = judge("node_rp_filter", node=context(loose_all), cluster_cni=CALICO_311)
    message = failure_message(calico, failed(calico))
    for _, words in FAULTS["rp-filter-all-calico"].expect:
        assert all(w in message for w in words), (words, message)
    told = judge("node_rp_filter", node=context(loose_all), cluster_cni=cni_cluster(
        image="docker.io/calico/node:v3.29.1",
        exception="DaemonSet kube-system/calico-node: FELIX_IGNORELOOSERPF=true"))
    notes = "\n".join(f"{f.subject}: {f.note}" for f in told if f.note)
    assert not failed(told)
    for _, words in FAULTS["calico-loose-rpf"].notes:
        assert all(w in notes for w in words), (words, notes)
    eth0 = judge("node_rp_filter", node=context(facts(sysctl=sysctl_with(
        **{"net.ipv4.conf.eth0.rp_filter": "2"}))), cluster_cni=FLANNEL_DS)
    assert not failed(eth0) and FAULTS["rp-filter-iface"].expect == ()
    notes = "\n".join(f"{f.subject}: {f.note}" for f in eth0 if f.note)
    for _, words in FAULTS["rp-filter-iface"].notes:
        assert all(w in notes for w in words), (words, notes)


FLANNEL_NODE = (Path(__file__).parent / "fixtures" / "flannel-node.facts").read_text()


def flannel_node(**section_changes) -> NodeFacts:
    """fixtures/flannel-node.facts parsed as gather.sh's output is, sections changed."""
    f = parse("k8s-master-01", "FIXTURE", FLANNEL_NODE, "", 0)
    return NodeFacts(f.host, {**f.sections, **section_changes})


def test_rp_filter_dotted_interface_name_in_facts_and_in_the_fix():
    """gather.sh prints /proc/sys/net/ipv4/conf/flannel.1/rp_filter as
    net.ipv4.conf.flannel.1.rp_filter: the interface is everything between the prefix and
    the suffix. procps sysctl(8) splits keys on dots and reads `/` as a literal dot
    (`sysctl -a` prints net.ipv4.conf.flannel/1.rp_filter), so the fix must say flannel/1."""
    f = flannel_node()
    assert sysctl.rp_filters(f.sysctls)["flannel.1"] == "2"
    assert "1.rp_filter" not in sysctl.rp_filters(f.sysctls)  # no interface named "1"
    assert sysctl.conf_key("flannel.1") == "net.ipv4.conf.flannel/1.rp_filter"
    assert sysctl.conf_key("eth0.100") == "net.ipv4.conf.eth0/100.rp_filter"
    ok = {x.subject: x for x in judge("node_rp_filter", node=context(f, host("k8s-master-01")), cluster_cni=NO_API)}
    assert set(ok) == {f"k8s-master-01:{i}" for i in (
        "cni0", "default", "docker0", "eth0", "eth1", "flannel.1", "lo", "veth01b630bb",
        "veth50e87d52")}
    assert all(x.ok for x in ok.values())
    flannel = ok["k8s-master-01:flannel.1"]
    assert "sysctl -w net.ipv4.conf.flannel/1.rp_filter=1" in flannel.note
    assert "/proc/sys/net/ipv4/conf/flannel.1/rp_filter = 2" in flannel.evidence
    # the node says flannel (flannel.1) without the API
    assert any(e.startswith("CNI on this node: flannel (") and "flannel.1" in e
               for e in flannel.evidence)
    loose = flannel_node(sysctl=f.sections["sysctl"].replace(
        "net.ipv4.conf.all.rp_filter 0", "net.ipv4.conf.all.rp_filter 2"))
    # a flannel node: all=2 is loose mode, not Calico's fatal case
    plain = judge("node_rp_filter", node=context(loose, host("k8s-master-01")), cluster_cni=NO_API)
    assert not failed(plain)
    assert not any("Calico" in x.note or "Felix" in x.why for x in plain)
    # Canal-like: Calico v3.11.3's pod on the same node: Felix's text, procps' keys in the fix
    canal = cni_cluster("canal", "docker.io/calico/node:v3.11.3", nodes=("k8s-master-01",))
    bad = {x.subject: x for x in failed(judge("node_rp_filter", node=context(loose, host("k8s-master-01")), cluster_cni=canal))}
    assert len(bad) == 9
    fix = bad["k8s-master-01:flannel.1"].fix
    assert fix.startswith("sysctl -w net.ipv4.conf.all.rp_filter=1 "
                          "net.ipv4.conf.flannel/1.rp_filter=1 and persist")
    assert "net.ipv4.conf.flannel.1.rp_filter" not in fix
    assert "Kernel's RPF check is set to 'loose'" in bad["k8s-master-01:flannel.1"].why


def test_rp_filter_never_silent_and_unreadable_values():
    only_all = judge("node_rp_filter", node=context(facts(sysctl="net.ipv4.conf.all.rp_filter 1")), cluster_cni=NO_API)
    assert [(x.ok, x.subject) for x in only_all] == [(True, "n1")]
    assert "no per-interface rp_filter was listed" in only_all[0].observed
    odd = failed(judge("node_rp_filter", node=context(facts(sysctl=sysctl_with(
        **{"net.ipv4.conf.eth0.rp_filter": "cat: Permission denied"}))), cluster_cni=NO_API))
    assert [x.subject for x in odd] == ["n1:eth0"] and "unreadable" in odd[0].observed
    three = failed(judge("node_rp_filter", node=context(facts(sysctl=sysctl_with(
        **{"net.ipv4.conf.eth0.rp_filter": "3"}))), cluster_cni=NO_API))
    assert "not a defined mode" in three[0].observed and "eth0.rp_filter=1" in three[0].fix
    default = next(x for x in judge("node_rp_filter", node=context(facts(sysctl=sysctl_with(
        **{"net.ipv4.conf.default.rp_filter": "2"}))), cluster_cni=CALICO_311) if x.subject == "n1:default")
    assert default.ok and "interfaces created from now on" in default.note
    assert "Felix sets conf/default to 1" in default.note


def test_rp_filter_unknown_cni_says_so_and_applies_the_kernels_rules():
    """No CNI config, no CNI interface, no API: the finding names what was looked at."""
    out = judge("node_rp_filter", node=context(facts(
        sysctl=sysctl_with(**{"net.ipv4.conf.all.rp_filter": "2"}), cni_conf="!no-dir")),
        cluster_cni=NO_API)
    assert not failed(out)
    note = next(x for x in out if x.subject == "n1:eth0").note
    assert note.startswith("no CNI identified on this node (/etc/cni/net.d absent")
    assert "no API in this test" in note and "Kernel's RPF check" not in note


def test_ip_forward():
    assert not failed(judge("node_ip_forward", node=context()))
    f = failed(judge("node_ip_forward", node=context(facts(sysctl=sysctl_with(
        **{"net.ipv4.ip_forward": "0"})))))
    assert f and "net.ipv4.ip_forward = 0" in f[0].observed


def test_bridge_nf_only_where_loaded():
    no_module = "\n".join(line for line in facts().sections["sysctl"].splitlines()
                          if "bridge" not in line)
    assert not failed(judge("node_bridge_nf_call_iptables", node=context(facts(sysctl=no_module))))
    f = failed(judge("node_bridge_nf_call_iptables", node=context(facts(sysctl=sysctl_with(
        **{"net.bridge.bridge-nf-call-iptables": "0"})))))
    assert f and "10.96.0.10" in f[0].why


def test_bridge_nf_not_loaded_while_cni0_bridges_pods_fails():
    """Kubernetes' network plugin requirements: a plugin that connects containers to a Linux
    bridge must set net/bridge/bridge-nf-call-iptables to 1 for kube-proxy; kubeadm's install
    guide ("Forwarding IPv4 and letting iptables see bridged traffic") loads br_netfilter.
    Without the module /proc/sys/net/bridge does not exist; the kernel lists a bridge's ports
    under /sys/class/net/<bridge>/brif/ (linux/if_bridge.h SYSFS_BRIDGE_PORT_SUBDIR)."""
    f = flannel_node()
    assert f.bridges == {"cni0": ["veth01b630bb", "veth50e87d52"], "docker0": []}
    out = judge("node_bridge_nf_call_iptables", node=context(f, host("k8s-master-01")))
    assert [x.ok for x in out] == [False]
    assert out[0].observed == ("br_netfilter not loaded while bridge cni0 has 2 port(s): "
                               "veth01b630bb, veth50e87d52")
    assert "switched, not routed, so iptables never sees it" in out[0].why
    assert "must set net/bridge/bridge-nf-call-iptables to 1" in out[0].why
    assert "modprobe br_netfilter" in out[0].fix and "/etc/modules-load.d/k8s.conf" in out[0].fix
    assert "/sys/class/net/docker0/brif: (no ports)" in out[0].evidence
    # a bridge without ports carries nothing: pass, with a note
    idle = judge("node_bridge_nf_call_iptables", node=context(flannel_node(
        bridges="/sys/class/net/docker0/bridge")))
    assert idle[0].ok and "docker0" in idle[0].note and "no ports" in idle[0].observed
    # no bridge at all (routed CNI such as Calico): pass, saying why
    routed = judge("node_bridge_nf_call_iptables", node=context(flannel_node(bridges="")))
    assert routed[0].ok and "no Linux bridge on the node" in routed[0].observed
    # loaded: the value decides, whatever the bridges
    loaded = flannel_node(sysctl=f.sections["sysctl"] + "\nnet.bridge.bridge-nf-call-iptables 1")
    assert judge("node_bridge_nf_call_iptables", node=context(loaded))[0].ok


# --- swap -----------------------------------------------------------------------------------
def test_swap_active_and_fstab_line():
    f = facts(swaps="Filename Type Size Used Priority\n/swap.img file 1024 0 -2",
              files={"/etc/fstab": "UUID=x / ext4 defaults 0 1\n/swap.img none swap sw 0 0\n"})
    out = failed(judge("node_swap", node=context(f)))
    assert [x.subject for x in out] == ["n1:/proc/swaps", "n1:/etc/fstab:2"]
    assert "running with swap on is not supported" in out[0].why
    assert "sed -i '2s/^/#/' /etc/fstab" in out[1].fix


def test_swap_commented_fstab_passes_and_kubelet_may_allow_swap():
    assert not failed(judge("node_swap", node=context()))
    allowed = facts(swaps="Filename\n/swap.img file 1 0 -2", files={
        "/var/lib/kubelet/config.yaml": "failSwapOn: false\nmemorySwap:\n  swapBehavior: LimitedSwap\n"})
    out = judge("node_swap", node=context(allowed))
    assert not failed(out) and "LimitedSwap" in out[0].observed


# --- cgroup driver --------------------------------------------------------------------------
def test_cgroup_containerd_systemd_passes():
    out = judge("node_cgroup_driver", node=context())
    assert not failed(out) and out[0].observed == "containerd uses systemd, kubelet uses systemd"


def test_cgroup_containerd_v3_path_and_false():
    toml = ('version = 3\n[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]\n'
            "  SystemdCgroup = false\n")
    out = failed(judge("node_cgroup_driver", node=context(facts(files={"/etc/containerd/config.toml": toml}))))
    assert out and out[0].observed == "containerd uses cgroupfs, kubelet uses systemd"
    assert "is different from containerd cgroup driver" in out[0].why


def test_cgroup_docker_cgroupfs_and_default_by_cgroup_version():
    flags = {"/var/lib/kubelet/kubeadm-flags.env":
             'KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///var/run/cri-dockerd.sock"'}
    cgfs = facts(files={**flags, "/etc/docker/daemon.json":
                        '{"exec-opts": ["native.cgroupdriver=cgroupfs"]}'})
    out = failed(judge("node_cgroup_driver", node=context(cgfs)))
    assert out and "docker uses cgroupfs" in out[0].observed
    assert "native.cgroupdriver=systemd" in out[0].fix
    bare = {**flags, "/etc/docker/daemon.json": "{}"}
    assert not failed(judge("node_cgroup_driver", node=context(facts(files=bare))))  # cgroup v2 default
    assert failed(judge("node_cgroup_driver", node=context(facts(files=bare, cgroupfs="tmpfs"))))


def test_cgroup_kubelet_mismatch_and_both_cgroupfs():
    f = facts(files={"/var/lib/kubelet/config.yaml": "cgroupDriver: cgroupfs\n"})
    out = failed(judge("node_cgroup_driver", node=context(f)))
    assert out and out[0].observed == "containerd uses systemd, kubelet uses cgroupfs"
    both = facts(files={"/var/lib/kubelet/config.yaml": "kind: KubeletConfiguration\n",
                        "/etc/containerd/config.toml": "version = 2\n"})
    out = failed(judge("node_cgroup_driver", node=context(both)))
    assert out and "IsDockerSystemdCheck" in out[0].why  # agree, but not systemd


def test_cgroup_malformed_files_name_the_line():
    f = facts(files={"/var/lib/kubelet/kubeadm-flags.env": "",
                     "/etc/docker/daemon.json": '{\n  "a": 1\n  "b": 2\n}\n'})
    out = failed(judge("node_cgroup_driver", node=context(f)))
    assert out and "/etc/docker/daemon.json line 3" in out[0].observed
    toml = facts(files={"/etc/containerd/config.toml": "version = 2\n[plugins\n"})
    assert "line 2" in failed(judge("node_cgroup_driver", node=context(toml)))[0].observed
    yml = facts(files={"/var/lib/kubelet/config.yaml": "cgroupDriver: [systemd\n"})
    assert "config.yaml line" in failed(judge("node_cgroup_driver", node=context(yml)))[0].observed


def test_cgroup_no_kubelet_config_or_runtime():
    out = failed(judge("node_cgroup_driver", node=context(facts(
        files={"/var/lib/kubelet/config.yaml": None}))))
    assert out and "not found" in out[0].observed
    none = facts(files={"/var/lib/kubelet/kubeadm-flags.env": None,
                        "/etc/containerd/config.toml": None})
    assert "container runtime not found" in failed(judge("node_cgroup_driver", node=context(none)))[0].observed


# --- ports ----------------------------------------------------------------------------------
LISTEN_CP = "\n".join(
    f'LISTEN 0 4096 {a}:{p} 0.0.0.0:* users:(("{n}",pid={i},fd=3))' for i, (n, a, p) in enumerate([
        ("kube-apiserver", "*", 6443), ("etcd", "127.0.0.1", 2379), ("etcd", "192.0.2.11", 2380),
        ("kubelet", "*", 10250), ("kube-controller", "127.0.0.1", 10257)], 100))


def test_listening_ports_names_the_missing_component():
    f = facts(listen_tcp=LISTEN_CP)
    out = failed(judge("node_listening_ports", node=context(f, host(roles=CP))))
    assert [x.subject for x in out] == ["n1:tcp/10259"]
    assert out[0].observed == "nothing listens on tcp/10259 (kube-scheduler)"
    assert "Pending" in out[0].why


def test_listening_ports_legacy_by_version():
    f = facts(listen_tcp=LISTEN_CP + '\nLISTEN 0 1 127.0.0.1:10259 0.0.0.0:* users:(("kube-scheduler",pid=1,fd=3))')
    assert not failed(judge("node_listening_ports", node=context(f, host(roles=CP))))
    old = failed(judge("node_listening_ports", node=context(f, host(roles=CP), settings=Settings(kube_version=(1, 18)))))
    assert {x.subject for x in old} == {"n1:tcp/10251", "n1:tcp/10252"}


def test_ports_reachable_uses_peers_probes():
    target = host("w1", "192.0.2.21")
    cp1, cp2 = host("cp1", "192.0.2.11", CP), host("cp2", "192.0.2.12", CP)
    good = facts("cp1", probes="192.0.2.21:10250 open")
    bad = facts("cp2", probes="192.0.2.21:10250 timeout")
    out = judge("node_ports_reachable", node=context(facts("w1"), target, peers=[(cp1, good), (cp2, bad)]))
    assert [x.observed for x in failed(out)] == ["tcp/10250 (kubelet) not reachable from cp2 (timeout)"]
    out = judge("node_ports_reachable", node=context(facts("w1"), target, peers=[(cp1, good), (cp2, "unreachable: x")]))
    assert not failed(out) and any("cp2 (unreachable: x): not probed" in e for e in out[0].evidence)


def test_probe_targets_follow_the_port_matrix():
    stacked = (CONTROL_PLANE, ETCD)  # kubeadm's default: etcd on each control plane
    cp1, cp2 = host("cp1", "10.0.0.1", stacked), host("cp2", "10.0.0.2", stacked)
    w1 = host("w1", "10.0.0.3")
    inv = Inventory("t", (cp1, cp2, w1))
    assert port_matrix.probe_targets(w1, inv) == ["10.0.0.1:6443", "10.0.0.2:6443"]
    assert port_matrix.probe_targets(cp1, inv) == ["10.0.0.2:6443", "10.0.0.2:2379", "10.0.0.2:2380",
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
    assert not failed(judge("node_listening_ports", node=cp_ctx))
    assert not any("2379" in f.subject or "2380" in f.subject
                   for f in judge("node_listening_ports", node=cp_ctx))
    out = failed(judge("node_listening_ports", node=NodeContext(etcd, facts(etcd.name), inv)))
    assert [(f.subject, f.observed) for f in out] == [
        ("ubuntu-2404-4:tcp/2379", "nothing listens on tcp/2379 (etcd client)"),
        ("ubuntu-2404-4:tcp/2380", "nothing listens on tcp/2380 (etcd peer)")]
    assert "kube-apiservers using this etcd member" in out[0].why
    # probes: control planes -> etcd client port; etcd members -> each other's 2379 and 2380
    assert port_matrix.probe_targets(cp, inv) == [
        "192.0.2.11:6443", "192.0.2.11:10250", "192.0.2.12:6443", "192.0.2.12:10250",
        "192.0.2.14:2379", "192.0.2.15:2379", "192.0.2.16:2379", "192.0.2.13:10250"]
    assert port_matrix.probe_targets(etcd, inv) == [
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
    out = judge("node_ports_reachable", node=NodeContext(etcd, facts(etcd.name), inv, peers=peers))
    assert [(f.subject, f.ok) for f in out] == [("ubuntu-2404-4:tcp/2379", True),
                                                ("ubuntu-2404-4:tcp/2380", False)]
    assert out[0].observed == "tcp/2379 (etcd client) reachable from 5 node(s)"
    assert out[1].observed == "tcp/2380 (etcd peer) not reachable from ubuntu-2404-6 (timeout)"
    assert out[1].expected == "reachable from every etcd node"


def test_ports_reachable_says_what_it_could_not_check():
    """A worker-only inventory has no control plane to probe the kubelet from: the check says
    so (a passing finding with a note) instead of producing nothing."""
    w1, w2 = host("w1", "192.0.2.21"), host("w2", "192.0.2.22")
    out = judge("node_ports_reachable", node=context(facts("w1"), w1, peers=[(w2, facts("w2"))]))
    assert [(f.subject, f.ok, f.observed) for f in out] == [
        ("w1:unchecked", True, "not checked: tcp/10250 (kubelet)")]
    assert out[0].note == ("not checked: tcp/10250 (kubelet) on w1: the inventory has no other "
                           "control_plane host to probe from")


def test_lb_listening():
    lbh = host("lb1", roles=(LB,))
    assert failed(judge("lb_listening", node=context(facts("lb1"), lbh)))
    f = facts("lb1", listen_tcp='LISTEN 0 1 198.18.0.100:6443 0.0.0.0:* users:(("haproxy",pid=9,fd=7))')
    out = judge("lb_listening", node=context(f, lbh))
    assert not failed(out) and "haproxy" in out[0].observed


def test_a_missing_command_is_not_judged_and_says_what_it_was_for():
    """gather.sh prints "!missing TOOL" when `command -v` finds no ss / iptables-save (and no
    nft): the check says what is not installed and what it needed it for, and is not judged
    (its test errors) rather than reporting "nothing listens" or "nothing filters"."""
    ctx = context(facts("cp1", sections={"listen-tcp": "!missing ss",
                                         "listen-udp": "!missing ss",
                                         "iptables-save": "!missing iptables-save"}),
                  host("cp1", roles=("control_plane",)))
    [f] = judge("node_listening_ports", node=ctx)
    assert f.unjudged == "missing tool" and not f.ok
    assert f.observed == ("cp1: ss is not installed (package iproute2); node_listening_ports "
                          "needs it to list the listening sockets")
    for check in ("node_firewall_input", "node_firewall_forward"):
        [f] = judge(check, node=ctx)
        assert f.unjudged == "missing tool" and "iptables-save is not installed" in f.observed
        assert "(or nft) to read the firewall rules" in f.observed


def big_inventory(workers: int) -> Inventory:
    stacked = (CONTROL_PLANE, ETCD)
    cps = tuple(host(f"cp{i}", f"10.0.0.{i}", stacked) for i in (1, 2, 3))
    return Inventory("big", cps + tuple(host(f"w{i}", f"10.0.{1 + i // 250}.{i % 250}")
                                         for i in range(workers)))


def test_probe_sources_option():
    assert port_matrix.probe_sources("auto", 99) == 0 and port_matrix.probe_sources("auto", 100) == 1
    assert port_matrix.probe_sources("all", 500) == 0 and port_matrix.probe_sources("3", 5) == 3
    for bad in ("0", "-1", "many"):
        with pytest.raises(ValueError, match=f"--probe-sources={bad}: give all, auto or a number"):
            port_matrix.probe_sources(bad, 5)


def test_limited_probes_cover_every_port_once_and_spread_over_the_sources():
    """--probe-sources 1 on 3 control planes and 200 workers: every port of every host is
    still probed (by one of its users), the control planes share the kubelets, and a
    source probes exactly what it was picked for."""
    inv = big_inventory(200)
    full = {h.name: set(port_matrix.probe_targets(h, inv)) for h in inv.hosts}
    one = {h.name: set(port_matrix.probe_targets(h, inv, 1)) for h in inv.hosts}
    covered = set().union(*one.values())
    assert covered == set().union(*full.values())  # every target port still probed
    assert sum(map(len, one.values())) == len(covered)  # ... by exactly one source
    kubelets = [len([t for t in one[f"cp{i}"] if t.endswith(":10250")]) for i in (1, 2, 3)]
    assert sum(kubelets) == 203 and min(kubelets) > 40, kubelets  # 200 workers + 3 cps
    assert sum(map(len, full.values())) == 3 * (200 + 2 * 4) + 200 * 3
    for h in inv.hosts:  # stable: the same picks every time
        assert set(port_matrix.probe_targets(h, inv, 1)) == one[h.name]


def test_reachability_judges_only_the_picked_sources_and_says_so():
    inv = big_inventory(5)
    cp1 = inv.get("cp1")
    api = next(p for p in port_matrix.served(cp1.roles, None) if p.number == 6443)
    assert len(port_matrix.probers(cp1, api, inv, 2)) == 2
    # each peer answers only for the ports it was picked to probe
    probes = {h.name: "\n".join(f"10.0.0.1:{p.number} open"
                                 for p in port_matrix.served(cp1.roles, None)
                                 if h.name in port_matrix.probers(cp1, p, inv, 2))
              for h in inv.hosts if h.name != "cp1"}
    peers = {name: facts(name, probes=text) for name, text in probes.items()}
    ctx = NodeContext(cp1, facts("cp1"), inv, Settings(probe_sources=2), peers)
    out = judge("node_ports_reachable", node=ctx)
    assert not failed(out)  # the unpicked workers' missing probes are not failures
    apiserver = next(f for f in out if f.subject == "cp1:tcp/6443")
    assert apiserver.observed == ("tcp/6443 (kube-apiserver) reachable from 2 node(s) (of 7 "
                                  "that use it: --probe-sources 2)")
    # with every source, the same answers fail: 5 workers never probed it
    full = judge("node_ports_reachable", node=NodeContext(cp1, facts("cp1"), inv, Settings(), peers))
    assert "not reachable from" in failed(full)[0].observed
