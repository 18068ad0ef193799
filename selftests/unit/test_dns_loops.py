"""CoreDNS forwarding loops (node_kubelet_resolv_conf, cluster_coredns_forward). References:
CoreDNS v1.14.7 plugin/loop/README.md ("Troubleshooting Loops In Kubernetes Clusters") and
what that CoreDNS printed forwarding to itself (fixtures/dns/coredns-1.14.7-loop.txt); the stub
resolv.conf systemd-resolved 252.39 writes (fixtures/dns/systemd-resolved-252.39-stub-
resolv.conf); the kubelet v1.37.2's --resolv-conf flag and resolvConf default "/etc/resolv.conf"
(k8s.io/kubelet config/v1beta1 types.go); kubeadm v1.37.2's Corefile (fixtures/dns/
kubeadm-1.37.2.Corefile) and its resolvConf for systemd-resolved (componentconfigs/
kubelet_unix.go)."""

from __future__ import annotations

from pathlib import Path

from kubeaccept.checks import dnsloop
from kubeaccept.model.apistate import ApiState
from kubeaccept.model.settings import Settings

from .factory import KUBELET, context, facts, judge, on_cluster

DNS = Path(__file__).parent / "fixtures" / "dns"
STUB = (DNS / "systemd-resolved-252.39-stub-resolv.conf").read_text()
KUBEADM_COREFILE = (DNS / "kubeadm-1.37.2.Corefile").read_text()


def resolv_run(files):
    return judge("node_kubelet_resolv_conf", node=context(facts("w1", files=files)))


def test_the_quoted_loop_message_is_what_coredns_printed():
    printed = (DNS / "coredns-1.14.7-loop.txt").read_text()
    head, tail = dnsloop.LOOP_FATAL.split("…")
    assert head in printed and tail in printed
    assert "see https://coredns.io/plugins/loop#troubleshooting" in printed


def test_systemd_resolveds_stub_as_etc_resolv_conf_is_a_loop():
    (f,) = resolv_run({"/etc/resolv.conf": STUB})
    assert not f.ok
    assert f.observed == ("/etc/resolv.conf (the kubelet's default (no resolvConf in its "
                          "config)) names nameserver 127.0.0.53 (systemd-resolved's stub)")
    assert "resolvConf: /run/systemd/resolve/resolv.conf" in f.fix
    assert "/etc/resolv.conf: nameserver 127.0.0.53" in f.evidence
    assert "loop plugin" in f.why


def test_resolv_conf_from_the_config_and_from_the_flags():
    real = "nameserver 192.0.2.1\nnameserver 2001:db8::1\nsearch example.org\n"
    config = KUBELET + "resolvConf: /run/systemd/resolve/resolv.conf\n"
    (f,) = resolv_run({"/var/lib/kubelet/config.yaml": config,
                     "/run/systemd/resolve/resolv.conf": real, "/etc/resolv.conf": STUB})
    assert f.ok and f.observed.startswith("/run/systemd/resolve/resolv.conf (resolvConf in ")
    flags = 'KUBELET_KUBEADM_ARGS="--resolv-conf=/etc/k8s-resolv.conf --foo=1"\n'
    (f,) = resolv_run({"/var/lib/kubelet/config.yaml": config,
                     "/var/lib/kubelet/kubeadm-flags.env": flags,
                     "/etc/k8s-resolv.conf": "nameserver ::1\n"})
    assert not f.ok and "names nameserver ::1" in f.observed and "--resolv-conf in" in f.observed


def test_missing_file_no_nameserver_and_disabled():
    config = KUBELET + "resolvConf: /etc/nope.conf\n"
    (f,) = resolv_run({"/var/lib/kubelet/config.yaml": config})
    assert not f.ok and "/etc/nope.conf (resolvConf in" in f.observed and \
        "does not exist" in f.observed
    (f,) = resolv_run({"/etc/resolv.conf": "search example.org\n"})
    assert not f.ok and f.observed.endswith("names no nameserver")
    (f,) = resolv_run({"/var/lib/kubelet/config.yaml": KUBELET + 'resolvConf: ""\n'})
    assert f.ok and "get no nameserver" in f.observed and f.note


def corefile_run(corefile, services=()):
    state = ApiState("https://192.0.2.100:6443", services=list(services),
                     configmaps={"kube-system/coredns": {"data": {"Corefile": corefile}}}
                     if corefile is not None else {})
    return judge("cluster_coredns_forward", api=state, cluster=on_cluster(Settings()))


def test_kubeadms_corefile_forwards_to_the_nodes_resolver():
    (f,) = corefile_run(KUBEADM_COREFILE)
    assert f.ok and f.subject == "coredns:.:53 forward ." and \
        f.observed == "forwards . to /etc/resolv.conf"
    assert "Corefile line 13: forward . /etc/resolv.conf" in f.evidence


def test_forwarding_to_the_cluster_dns_or_loopback_is_a_loop():
    kube_dns = {"metadata": {"namespace": "kube-system", "name": "kube-dns"},
                "spec": {"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"]}}
    to_itself = KUBEADM_COREFILE.replace("forward . /etc/resolv.conf",
                                         "forward . 10.96.0.10:53 192.0.2.1")
    (f,) = corefile_run(to_itself, [kube_dns])
    assert not f.ok and f.observed == ("forwards . to 10.96.0.10:53: the cluster DNS Service, "
                                       "i.e. CoreDNS itself")
    real = (DNS / "coredns-1.14.7-loop.Corefile").read_text()  # the one CoreDNS stopped on
    (f,) = corefile_run(real)
    assert not f.ok and "127.0.0.1:1053: a loopback address" in f.observed
    stub = KUBEADM_COREFILE + "example.org:53 {\n    forward . dns://[::1]:5353\n}\n"
    bad = [f for f in corefile_run(stub) if not f.ok]
    assert [f.subject for f in bad] == ["coredns:example.org:53 forward ."]


def test_no_corefile_fails():
    (f,) = corefile_run(None)
    assert not f.ok and "kubeadm init phase addon coredns" in f.fix
