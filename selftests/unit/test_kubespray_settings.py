"""Cluster DNS address and overlay port from a kubespray inventory (and the flags over it)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from kubeaccept.checks import dns
from kubeaccept.inventory.ansible import load_inventory
from kubeaccept.inventory.kubespray import choose_cluster_dns, choose_vxlan_port
from kubeaccept.model.apistate import ApiState
from kubeaccept.model.roles import CONTROL_PLANE
from kubeaccept.model.settings import Settings
from kubeaccept.session import settings_for

from .factory import context, dns_node, facts, host, judge, on_cluster
from .test_api_checks import healthy, lookup, service

FIXTURES = Path(__file__).parent / "fixtures" / "kubespray"
HOSTS = """\
all:
  hosts:
    node1: {ansible_host: 192.0.2.11, ip: 192.0.2.11}
    node2: {ansible_host: 192.0.2.21, ip: 192.0.2.21}
  children:
    kube_control_plane: {hosts: {node1: }}
    kube_node: {hosts: {node2: }}
    etcd: {hosts: {node1: }}
    k8s_cluster: {children: {kube_control_plane: , kube_node: }}
"""


def options(**given) -> SimpleNamespace:
    """config.option as pytest_addoption leaves it when nothing is given."""
    opt = dict(connect_timeout=10.0, command_timeout=60.0, probe_timeout=3.0, probe_sources="auto",
               pod_subnet=None,
               service_subnet=None, vxlan_port=None, kube_version=None, cert_expiry_days=30.0,
               restart_threshold=10, flap_window=60.0, flap_threshold=4,
               dnsutils_image=Settings.dnsutils_image, cluster_dns=None)
    opt.update(given)
    return SimpleNamespace(**opt)


@pytest.fixture
def kubespray_inventory(tmp_path):
    """kubespray's layout: hosts.yaml with group_vars/k8s_cluster/k8s-cluster.yml beside it."""
    inv = tmp_path / "inventory" / "mycluster"
    (inv / "group_vars" / "k8s_cluster").mkdir(parents=True)
    (inv / "hosts.yaml").write_text(HOSTS)
    shutil.copy(FIXTURES / "k8s-cluster.yml", inv / "group_vars" / "k8s_cluster")
    return load_inventory(inv / "hosts.yaml")


def test_kubespray_sample_inventory_gives_its_dns_and_calico_vxlan(kubespray_inventory):
    """kubespray (roles/kubespray_defaults, roles/kubernetes-apps/ansible): the CoreDNS Service
    is kube-system/coredns at skydns_server = the 3rd address of kube_service_addresses
    (10.233.0.3); with enable_nodelocaldns the kubelet's clusterDNS is nodelocaldns_ip
    (169.254.25.10). kube_network_plugin: calico uses VXLAN on calico_vxlan_port, 4789 by
    default (roles/network_plugin/calico_defaults)."""
    cv = kubespray_inventory.cluster_vars
    assert "{{" in cv["skydns_server"]  # a template kubespray renders with its role defaults
    s = settings_for(options(), kubespray_inventory)
    assert (s.service_subnet, s.dns_ip, s.node_local_dns_ip, s.dns_service) == (
        "10.233.0.0/18", "10.233.0.3", "169.254.25.10", "coredns")
    assert s.dns_source == "kubespray's skydns_server: 3rd address of 10.233.0.0/18"
    assert s.pod_dns_servers == ("169.254.25.10", "10.233.0.3")
    assert s.vxlan_port == 4789
    assert s.overlay == ("udp/4789 (overlay: Calico VXLAN, kubespray's calico_vxlan_port "
                         "default for kube_network_plugin: calico)")


def test_flags_override_the_inventory(kubespray_inventory):
    s = settings_for(options(cluster_dns="10.233.0.10", vxlan_port=8472), kubespray_inventory)
    assert (s.dns_ip, s.dns_source) == ("10.233.0.10", "--cluster-dns")
    assert (s.vxlan_port, s.vxlan_source) == (8472, "--vxlan-port")
    assert s.node_local_dns_ip == "169.254.25.10"  # pods still ask NodeLocal DNSCache


def test_dns_choice_kubeadm_and_kubespray_variants():
    # kubeadm (the lab's inventory: kube_pods_subnet/kube_service_addresses are not enough)
    plain = choose_cluster_dns({"kube_service_addresses": "10.96.0.0/12"}, "10.96.0.0/12")
    assert (plain.ip, plain.node_local_ip, plain.service) == (None, None, "kube-dns")
    assert Settings(dns_source=plain.source).dns_ip == "10.96.0.10"
    rendered = choose_cluster_dns({"skydns_server": "10.233.0.3", "enable_nodelocaldns": "false"},
                                  "10.233.0.0/18")
    assert (rendered.ip, rendered.source, rendered.node_local_ip) == (
        "10.233.0.3", "kubespray skydns_server", None)
    manual = choose_cluster_dns({"dns_mode": "manual", "manual_dns_server": "10.233.0.53"},
                                "10.233.0.0/18")
    assert (manual.ip, manual.node_local_ip) == ("10.233.0.53", "169.254.25.10")
    assert manual.source == "kubespray dns_mode: manual, manual_dns_server"
    own = choose_cluster_dns({"kubeaccept_cluster_dns": "10.96.0.53"}, "10.96.0.0/12")
    assert (own.ip, own.source) == ("10.96.0.53", "inventory kubeaccept_cluster_dns")


@pytest.mark.parametrize("cluster_vars,port,words", [
    ({}, 8472, "flannel's VXLAN port, the default"),
    ({"kube_network_plugin": "flannel"}, 8472,
     "flannel VXLAN, kubespray's flannel_vxlan_port default for kube_network_plugin: flannel"),
    ({"kube_network_plugin": "flannel", "flannel_vxlan_port": 8999}, 8999,
     "flannel VXLAN, flannel_vxlan_port for kube_network_plugin: flannel"),
    ({"kube_network_plugin": "flannel", "flannel_backend_type": "host-gw"}, 8472,
     "flannel_backend_type: host-gw uses no VXLAN tunnel"),
    ({"kube_network_plugin": "calico"}, 4789, "Calico VXLAN, kubespray's calico_vxlan_port"),
    ({"kube_network_plugin": "calico", "calico_vxlan_port": "4790"}, 4790,
     "Calico VXLAN, calico_vxlan_port for kube_network_plugin: calico"),
    ({"kube_network_plugin": "calico", "calico_vxlan_mode": "Never"}, 8472,
     "calico_vxlan_mode: Never uses no VXLAN tunnel"),
    ({"kube_network_plugin": "cilium"}, 8472, "Cilium VXLAN tunnel-port"),
    ({"kube_network_plugin": "cilium", "cilium_tunnel_mode": "geneve"}, 6081,
     "Cilium Geneve tunnel-port"),
    ({"kube_network_plugin": "canal"}, 8472, "Canal's flannel VXLAN"),
    ({"kube_network_plugin": "kube-router"}, 8472, "has no VXLAN port known"),
    ({"kube_network_plugin": "calico", "kubeaccept_vxlan_port": 4800}, 4800,
     "inventory kubeaccept_vxlan_port"),
])
def test_vxlan_port_follows_the_cni(cluster_vars, port, words):
    """Defaults: flannel's VXLAN backend 8472 (kubespray flannel_vxlan_port), Calico's
    FelixConfiguration vxlanPort 4789 (kubespray calico_vxlan_port), Cilium's tunnel-port
    8472 for vxlan and 6081 for geneve (pkg/defaults TunnelPortVXLAN/TunnelPortGeneve), Canal
    runs flannel's VXLAN backend without a port (8472)."""
    got, source = choose_vxlan_port(cluster_vars)
    assert got == port and words in source


CALICO = Settings(service_subnet="10.233.0.0/18", pod_subnet="10.233.64.0/18", vxlan_port=4789,
                  vxlan_source="Calico VXLAN, kubespray's calico_vxlan_port default for "
                  "kube_network_plugin: calico", cluster_dns_ip="10.233.0.3",
                  dns_source="kubespray's skydns_server: 3rd address of 10.233.0.0/18",
                  node_local_dns_ip="169.254.25.10", dns_service="coredns")


def test_firewall_and_dns_texts_name_the_chosen_port_not_8472():
    blocked = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p udp -m udp --dport 4789 -j DROP
COMMIT
!exit 0"""
    cp1, w1 = host("cp1", "192.0.2.11", (CONTROL_PLANE,)), host("w1", "192.0.2.21")
    me = facts("w1", addresses="2: eth0    inet 192.0.2.21/24 brd x scope global eth0",
               iptables_save=blocked)
    out = [f for f in judge("node_firewall_input", node=context(me, w1, peers=[(cp1, facts("cp1"))],
                                                      settings=CALICO)) if not f.ok]
    assert [f.subject for f in out] == ["w1:udp/4789"]
    assert out[0].observed.startswith("udp/4789 (overlay: Calico VXLAN, kubespray's "
                                      "calico_vxlan_port default")
    assert "tunnel packets (udp/4789 (overlay: Calico VXLAN" in out[0].why
    assert "8472" not in out[0].why + out[0].observed
    timeout = [f for f in judge("node_cluster_dns", node=dns_node("w1", dns.NodeDnsAnswer(
        "dig", "dig +time=3 +tries=1 +short @10.233.0.3 kubernetes.default.svc.cluster.local",
        9, ";; connection timed out; no servers could be reached"), CALICO)) if not f.ok][0]
    assert "check udp/4789 (overlay: Calico VXLAN" in timeout.fix and "8472" not in timeout.fix


def kubespray_state(**changes) -> ApiState:
    coredns = json.loads((FIXTURES / "coredns-svc.json").read_text())
    return healthy(**{"services": [service("default", "kubernetes", "10.233.0.1"), coredns],
                      **changes})


def test_cluster_dns_accepts_kubesprays_coredns_service_and_nodelocaldns():
    """kubespray names the Service kube-system/coredns (coredns_svc_name) and, with
    enable_nodelocaldns, pods ask NodeLocal DNSCache (169.254.25.10), which forwards to it."""
    answer = (FIXTURES / "nslookup-nodelocaldns.txt").read_text()
    out = judge("cluster_dns", api=kubespray_state(), cluster=on_cluster(settings=CALICO), dns_lookup=lookup(answer))
    assert [(f.subject, f.ok) for f in out] == [
        ("coredns", True), ("kube-system/coredns", True), ("lookup from default/dnsutils", True)]
    svc = out[1]
    assert svc.observed == "clusterIP 10.233.0.3"
    assert "Service kube-system/coredns (looked for coredns, kube-dns): clusterIP 10.233.0.3" \
        in svc.evidence
    assert ("cluster DNS address 10.233.0.3: kubespray's skydns_server: 3rd address of "
            "10.233.0.0/18") in svc.evidence
    assert out[2].observed == "kubernetes.default -> 10.233.0.1 from 169.254.25.10"
    assert out[2].expected == "10.233.0.1 from 169.254.25.10 or 10.233.0.3"
    assert any("NodeLocal DNSCache 169.254.25.10" in e for e in out[2].evidence)
    # without NodeLocal DNSCache, 169.254.25.10 is not the cluster DNS
    plain = Settings(**{**CALICO.__dict__, "node_local_dns_ip": None})
    wrong = [f for f in judge("cluster_dns", api=kubespray_state(), cluster=on_cluster(settings=plain), dns_lookup=lookup(answer)) if not f.ok]
    assert wrong[0].observed.startswith("asked 169.254.25.10, not the cluster DNS 10.233.0.3")
    # a kubeadm-named Service is accepted too; the kubeadm default settings look for either
    other = healthy(services=[service("default", "kubernetes", "10.96.0.1"),
                              service("kube-system", "coredns", "10.96.0.10")])
    found = judge("cluster_dns", api=other, cluster=on_cluster(settings=Settings()), dns_lookup=lookup(answer.replace("169.254.25.10", "10.96.0.10")
                                                      .replace("10.233.0.1", "10.96.0.1")))
    assert [(f.subject, f.ok) for f in found][1] == ("kube-system/coredns", True)
    # neither name: the failure names both
    none = judge("cluster_dns", api=kubespray_state(services=[]), cluster=on_cluster(settings=CALICO), dns_lookup=None)[1]
    assert not none.ok and none.observed == ("no Service kube-system/coredns or "
                                             "kube-system/kube-dns")
    assert "169.254.25.10 or 10.233.0.3" in none.why


def test_coredns_service_on_another_address_says_which_and_where_from():
    state = kubespray_state()
    state.services[1]["spec"]["clusterIP"] = "10.233.0.10"
    bad = [f for f in judge("cluster_dns", api=state, cluster=on_cluster(settings=CALICO), dns_lookup=None) if not f.ok and
           f.subject.startswith("kube-system/")][0]
    assert (bad.subject, bad.observed, bad.expected) == (
        "kube-system/coredns", "clusterIP 10.233.0.10", "clusterIP 10.233.0.3")
    assert "NodeLocal DNSCache 169.254.25.10, which forwards to 10.233.0.3" in bad.why
    assert "--cluster-dns 10.233.0.10" in bad.fix
