"""firewalld as Debian's firewalld 1.3.3 (bookworm) and 2.3.1 (trixie) really run: the zones,
policies and service files gather.sh printed on a node running them, judged against the
nftables ruleset the same firewalld built (fixtures/firewalld/README.md says how)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubeaccept.facts import NodeFacts, nftables, parse
from kubeaccept.facts.firewalld import Firewalld, parse_zones
from kubeaccept.facts.iptables import Packet
from kubeaccept.model.roles import CONTROL_PLANE

from .factory import context, facts, host, judge

D = Path(__file__).parent / "fixtures" / "firewalld"
NODE = "192.0.2.21"  # the node's eth0 in the fixtures
OPEN = ("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"
        "!exit 0")


def read_facts(name: str, **changes) -> NodeFacts:
    f = parse("w1", "TOKEN", (D / name).read_text(), "", 0)
    sections = {**f.sections, **changes}
    return NodeFacts("w1", {k: v for k, v in sections.items() if v is not None})


def model(name: str) -> Firewalld:
    return Firewalld.from_facts(read_facts(name))


PACKETS = [("tcp", "192.0.2.11", p) for p in (22, 6443, 2379, 2380, 10250, 10251, 10252, 10255,
                                               10257, 10259, 9100, 30000, 30999, 31000, 32767)]
PACKETS += [("udp", "192.0.2.11", 8472), ("tcp", "192.0.2.99", 10250),
            ("tcp", "192.0.2.99", 6443), ("tcp", "203.0.113.5", 10250),
            ("tcp", "10.1.2.3", 12345), ("udp", "10.1.2.3", 4789),
            ("tcp", "198.51.100.7", 12345), ("tcp", "192.0.2.98", 9100)]


@pytest.mark.parametrize("fixture", ["1.3.3-kube.facts", "2.3.1-kube.facts",
                                     "1.3.3-stock.facts", "2.3.1-stock.facts",
                                     "2.3.1-rich-order.facts"])
def test_the_model_agrees_with_the_rules_firewalld_itself_built(fixture):
    """firewalld 1.3.3 and 2.3.1 (Debian's packages, their own daemon) turned these zones,
    policies and services into `table inet firewalld`; for every packet the model's verdict
    from firewall-cmd's listing and the service XML is the one nft's ruleset gives."""
    f = read_facts(fixture)
    fw = Firewalld.from_facts(f)
    rules = nftables.parse(f.section("nft").rpartition("!exit")[0])
    verdicts = {}
    for proto, src, port in PACKETS:
        d = fw.decide(proto, port, src, "eth0", NODE)
        v = nftables.evaluate(rules, "input", Packet(proto, src, NODE, port, in_iface="eth0"))
        assert d.action == v.action, (proto, src, port, d, v.describe())
        verdicts[(proto, src, port)] = d.action
    # both kinds of verdict occur: the comparison could fail
    assert {"ACCEPT", "REJECT"} <= set(verdicts.values())


@pytest.mark.parametrize("fixture", ["1.3.3-kube.facts", "2.3.1-kube.facts"])
def test_service_definitions_are_the_nodes_own(fixture):
    """firewalld.service(5): kube-control-plane of 1.3.3 and 2.3.1 includes etcd-client,
    etcd-server, kube-apiserver, kube-controller-manager (10252) and kube-scheduler (10251),
    not the secure ports 10257/10259 nor the kubelet; kube-api includes kubelet (10250); a
    file in /etc/firewalld/services overrides the shipped one (here NodePorts 30000-30999)."""
    fw = model(fixture)
    assert fw.services["kube-nodeport-services"].path == \
        "/etc/firewalld/services/kube-nodeport-services.xml"
    by = {p: fw.decide("tcp", p, "192.0.2.11", "eth0", NODE) for p in
          (6443, 2379, 2380, 10251, 10252, 10257, 10259, 10250, 30999, 31000)}
    assert by[6443].by == ("zone public (interface eth0) service kube-control-plane "
                           "(kube-apiserver: 6443/tcp)")
    assert all(by[p].action == "ACCEPT" for p in (2379, 2380, 10251, 10252, 30999))
    assert by[10250].by.endswith("service kube-api (kubelet: 10250/tcp)")
    for closed in (10257, 10259, 31000):
        assert by[closed].action == "REJECT"
        assert f"has no port, service, protocol or rich rule for {closed}/tcp" in by[closed].by
        assert by[closed].fix.startswith(
            f"firewall-cmd --permanent --zone=public --add-port={closed}/tcp")


def test_rich_rules_sources_and_policies():
    """firewalld.richlanguage(5): a rule with only a source accepts all from it; at priority 0
    a reject rule is walked before the zone's services (zone_deny before zone_allow).
    firewall-cmd(1) --set-priority: a policy of priority < 0 runs before every zone (policy
    deny-kubelet, -10, drops 203.0.113.0/24; nodes-in, -1, ingress ANY egress HOST, admits
    kube-custom: 9100 and, by its include, kubelet-readonly 10255)."""
    fw = model("2.3.1-kube.facts")
    src_only = fw.decide("tcp", 12345, "10.1.2.3", "eth0", NODE)
    assert src_only.action == "ACCEPT"
    assert src_only.by.endswith('rich rule: rule family="ipv4" source address="10.0.0.0/8" accept')
    deny = fw.decide("tcp", 10250, "192.0.2.99", "eth0", NODE)
    assert deny.action == "REJECT" and "--zone=public --remove-rich-rule='rule family" in deny.fix
    dropped = fw.decide("tcp", 10250, "203.0.113.5", "eth0", NODE)
    assert dropped.action == "DROP" and dropped.by.startswith("policy deny-kubelet rich rule")
    assert "--policy=deny-kubelet --remove-rich-rule=" in dropped.fix
    assert fw.decide("tcp", 10255, "192.0.2.11", "eth0", NODE).by == \
        "policy nodes-in service kube-custom (kubelet-readonly: 10255/tcp)"
    trusted = fw.decide("tcp", 12345, "198.51.100.7", "eth0", NODE)
    assert trusted.action == "ACCEPT" and trusted.by == \
        "zone trusted (source 198.51.100.7) target ACCEPT"


def test_rich_rules_by_priority_then_deny_before_accept():
    """firewalld.richlanguage(5) "Information about logging and actions": priority < 0 in
    zone_pre, then at priority 0 every reject/drop (zone_deny) before any accept
    (zone_allow), whatever order firewall-cmd lists them in (2.3.1 lists the /24 accept
    first); the nft ruleset 2.3.1 built agrees (test above)."""
    fw = model("2.3.1-rich-order.facts")
    assert fw.decide("tcp", 10250, "192.0.2.99", "eth0", NODE).action == "REJECT"
    assert fw.decide("tcp", 6443, "192.0.2.99", "eth0", NODE).action == "ACCEPT"
    assert fw.decide("tcp", 6443, "192.0.2.98", "eth0", NODE).by == (
        'zone public (interface eth0) rich rule: rule priority="-5" family="ipv4" source '
        'address="192.0.2.98" drop')


def test_the_default_zone_takes_the_unbound_interface():
    """firewalld 1.3.3 without NetworkManager: `--get-active-zones` printed nothing (the
    default zone binds no interface) and `--list-all-zones` marks no zone active, yet the
    default zone public takes eth0; 2.3.1 prints `public (default)` (firewall-cmd's
    get_active_zones branch) and `public (default, active)` in --list-all-zones."""
    assert (D / "1.3.3-stock.get-active-zones").read_text() == "!exit 0\n"
    assert (D / "2.3.1-stock.get-active-zones").read_text() == "public (default)\n!exit 0\n"
    assert (D / "2.3.1-kube.get-active-zones").read_text().splitlines()[0] == "public (default)"
    for fixture in ("1.3.3-stock.facts", "2.3.1-stock.facts"):
        fw = model(fixture)
        zone, how = fw.zone_for("eth0", "192.0.2.11")
        assert (zone.name, how) == ("public", "default zone")
        assert fw.decide("tcp", 22, "192.0.2.11", "eth0", NODE).action == "ACCEPT"
        assert fw.decide("tcp", 10250, "192.0.2.11", "eth0", NODE).action == "REJECT"


def test_a_zone_listing_that_failed_is_not_a_zone():
    """What firewall-cmd 2.3.1 printed for `--list-all --zone=(default)` (a facts script that
    took `(default)` of --get-active-zones for a zone name): an error, not a zone."""
    text = (D / "2.3.1-list-all-zone-default.txt").read_text()
    assert parse_zones(text)[0] == []
    d = Firewalld(text, None, None).decide("tcp", 10250, "192.0.2.11", "eth0", NODE)
    assert d.action is None and "Error: INVALID_ZONE: (default)" in d.unknown


def test_a_definition_that_cannot_be_read_is_undecidable():
    """kube-custom.xml removed after firewalld loaded it (firewall-cmd --info-service still
    shows it): gather.sh printed `kube-custom !missing`. The policy using it runs first, so
    no port's fate is known from the settings: undecidable, never closed."""
    fw = model("2.3.1-removed-service.facts")
    d = fw.decide("tcp", 6443, "192.0.2.11", "eth0", NODE)
    assert d.action is None and d.run == "firewall-cmd --info-service=kube-custom"
    assert "service kube-custom's definition could not be read (no kube-custom.xml" in d.unknown


def on_cluster(f: NodeFacts):
    cp1 = host("cp1", "192.0.2.11", (CONTROL_PLANE,))
    return context(f, host("w1", NODE), peers=[(cp1, facts("cp1"))])


def failed(findings):
    return [x for x in findings if not x.ok]


def test_input_check_names_the_zone_and_the_firewall_cmd_fix():
    out = failed(judge("node_firewall_input", node=on_cluster(read_facts(
        "2.3.1-kube.facts", **{"iptables-save": OPEN}))))
    assert [x.subject for x in out] == ["w1:tcp/32767"]
    assert "firewalld REJECT: zone public (interface eth0; services: dhcpv6-client kube-api" \
        in out[0].observed
    assert out[0].fix.startswith("firewall-cmd --permanent --zone=public --add-port=32767/tcp")


def test_unreadable_definition_defers_to_firewalld_rules_or_says_undecidable():
    """With nft's ruleset of table inet firewalld the kernel's rules decide (and a note says
    the settings did not); with firewalld's rules not read, the finding says it cannot decide
    and what to run."""
    f = read_facts("2.3.1-removed-service.facts", **{"iptables-save": OPEN})
    out = judge("node_firewall_input", node=on_cluster(f))
    assert [x.subject for x in failed(out)] == ["w1:tcp/32767"]
    kubelet = next(x for x in out if x.subject == "w1:tcp/10250")
    assert kubelet.ok and any("kube-custom's definition could not be read" in e
                              for e in kubelet.evidence)
    # firewalld on its iptables backend, its chains not in this iptables-save: not walked
    zones = f.section("firewalld").replace("!backend nftables", "!backend iptables")
    f2 = NodeFacts("w1", {**{k: v for k, v in f.sections.items() if k != "nft"},
                          "firewalld": zones})
    out = failed(judge("node_firewall_input", node=on_cluster(f2)))
    assert out and all("cannot be decided from firewalld's settings" in x.observed for x in out)
    assert "run `firewall-cmd --info-service=kube-custom`" in out[0].fix


@pytest.mark.parametrize("check", ["node_firewall_input", "node_firewall_forward"])
def test_without_the_nft_program_firewalld_rules_are_unreadable(check):
    """firewalld.conf(5): FirewallBackend=nftables (the default) writes through libnftables;
    the nft program may be absent, and iptables-save does not show table inet firewalld."""
    f = read_facts("1.3.3-kube.facts", nft=None, **{"iptables-save": OPEN})
    out = failed(judge(check, node=on_cluster(f)))
    assert len(out) == 1 and "FirewallBackend=nftables" in out[0].observed
    assert "could not be read (run: nft list table inet firewalld)" in out[0].observed
    assert out[0].fix.startswith("install nftables' nft on w1")
