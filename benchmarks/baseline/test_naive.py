"""The node invariants written the way a newcomer writes a testinfra suite: one remote
command per assertion through testinfra's `host` fixture (paramiko backend), no facts
gathered once, no parallel probes. It is the speed baseline of benchmarks/bench.py, never a
part of kubeaccept; run it with `pytest -c benchmarks/baseline/pytest.ini --hosts=...`."""

import pytest

CONTROL_PLANE_PORTS = (6443, 2379, 2380, 10250, 10257, 10259)


def is_control_plane(host):
    return host.file("/etc/kubernetes/manifests/kube-apiserver.yaml").exists


def test_rp_filter_all(host):
    assert host.sysctl("net.ipv4.conf.all.rp_filter") in (0, 1)


def test_rp_filter_default(host):
    assert host.sysctl("net.ipv4.conf.default.rp_filter") in (0, 1)


def test_rp_filter_eth0(host):
    assert host.sysctl("net.ipv4.conf.eth0.rp_filter") in (0, 1)


def test_ip_forward(host):
    assert host.sysctl("net.ipv4.ip_forward") == 1


def test_bridge_nf_call_iptables(host):
    if host.file("/proc/sys/net/bridge/bridge-nf-call-iptables").exists:
        assert host.sysctl("net.bridge.bridge-nf-call-iptables") == 1


def test_no_active_swap(host):
    assert len(host.file("/proc/swaps").content_string.splitlines()) == 1


def test_no_swap_in_fstab(host):
    for line in host.file("/etc/fstab").content_string.splitlines():
        fields = line.split("#")[0].split()
        assert not (len(fields) > 2 and fields[2] == "swap"), line


def test_kubelet_cgroup_driver(host):
    assert "cgroupDriver: systemd" in host.file("/var/lib/kubelet/config.yaml").content_string


def test_runtime_cgroup_driver(host):
    daemon = host.file("/etc/docker/daemon.json")
    if daemon.exists:
        assert "native.cgroupdriver=systemd" in daemon.content_string
    else:
        assert "SystemdCgroup = true" in host.file("/etc/containerd/config.toml").content_string


def test_kubelet_listens(host):
    assert host.socket("tcp://0.0.0.0:10250").is_listening


@pytest.mark.parametrize("port", CONTROL_PLANE_PORTS[:3] + CONTROL_PLANE_PORTS[4:])
def test_control_plane_ports(host, port):
    if not is_control_plane(host):
        pytest.skip("not a control plane")
    assert host.run(f"ss -Htln 'sport = :{port}'").stdout.strip()


def test_input_not_dropping_kubelet(host):
    rules = host.run("iptables-save -t filter").stdout
    assert "--dport 10250 -j DROP" not in rules


def test_forward_not_rejecting(host):
    rules = host.run("iptables-save -t filter").stdout
    assert "-A FORWARD -j REJECT" not in rules


def test_certificates_valid(host):
    for path in host.run("ls /etc/kubernetes/pki/*.crt 2>/dev/null").stdout.split():
        assert host.run(f"openssl x509 -checkend 2592000 -noout -in {path}").rc == 0, path
