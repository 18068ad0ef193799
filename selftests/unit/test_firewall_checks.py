"""node_firewall_input / node_firewall_forward over iptables-save text and firewalld zones."""

from __future__ import annotations

from pathlib import Path

from kubeaccept.checks import firewall
from kubeaccept.model.roles import CONTROL_PLANE

from .factory import context, facts, host, judge

OPEN = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
COMMIT
!exit 0"""

REPORT03 = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -i lo -j ACCEPT
-A FORWARD -j REJECT --reject-with icmp-host-prohibited
-A FORWARD -s 10.244.0.0/16 -j ACCEPT
COMMIT
!exit 0"""


def failed(findings):
    return [f for f in findings if not f.ok]


def cluster(node_sections):
    cp1 = host("cp1", "192.0.2.11", (CONTROL_PLANE,))
    w1 = host("w1", "192.0.2.21")
    me = facts("w1", addresses="2: eth0    inet 192.0.2.21/24 brd x scope global eth0",
               **node_sections)
    return context(me, w1, peers=[(cp1, facts("cp1"))])


def test_open_firewall_passes():
    ctx = cluster({"iptables_save": OPEN})
    assert not failed(judge("node_firewall_input", node=ctx))
    assert not failed(judge("node_firewall_forward", node=ctx))


def test_forward_reject_names_rule_and_report():
    out = failed(judge("node_firewall_forward", node=cluster({"iptables_save": REPORT03})))
    assert len(out) == 3
    assert "REJECT by FORWARD rule 3" in out[0].observed
    assert "admin prohibited" in out[0].why and "iptables -D FORWARD 3" in out[0].fix


def test_forward_policy_drop_without_accepts():
    text = OPEN.replace(":FORWARD ACCEPT", ":FORWARD DROP")
    out = failed(judge("node_firewall_forward", node=cluster({"iptables_save": text})))
    assert out and "policy" in out[0].observed and "-s 10.244.0.0/16 -j ACCEPT" in out[0].fix


def test_input_drop_from_control_plane_names_rule():
    text = OPEN.replace("COMMIT", "-A INPUT -s 192.0.2.11/32 -p tcp --dport 10250 -j DROP\nCOMMIT")
    out = failed(judge("node_firewall_input", node=cluster({"iptables_save": text})))
    assert [f.subject for f in out] == ["w1:tcp/10250"]
    assert "from cp1: DROP by INPUT rule 1" in out[0].observed


def test_unreadable_iptables_is_a_failure_that_says_become():
    out = failed(judge("node_firewall_input", node=cluster({
        "iptables_save": "iptables-save v1.8.9 (nf_tables): Permission denied (you must be root)\n!exit 1"})))
    assert out and "ansible_become=true" in out[0].fix and "Permission denied" in out[0].observed


def test_legacy_backend_rules_count_too():
    legacy = OPEN.replace("COMMIT", "-A INPUT -p udp --dport 8472 -j DROP\nCOMMIT").replace("\n!exit 0", "")
    out = failed(judge("node_firewall_input", node=cluster({"iptables_save": OPEN,
                                                  "iptables_legacy_save": legacy})))
    assert [f.subject for f in out] == ["w1:udp/8472"]
    assert "[iptables-legacy-save]" in out[0].observed


# --- CNI interface names (Calico) -----------------------------------------------------------
CALICO = (Path(__file__).parent / "fixtures" / "firewall" / "calico-ipip.iptables-save")


def test_calico_forward_is_decided_with_the_nodes_own_cali_interfaces():
    """felix dispatches on `-i cali+` / `-o cali+` and per-workload `-o caliXXXX`: evaluated
    with the interfaces the node has (tunl0, cali92d634f8f03), the namespace profile marks
    0x10000 and FORWARD accepts ("Policy explicitly accepted packet."), though FORWARD's
    policy is DROP."""
    ctx = cluster({"iptables_save": CALICO.read_text() + "!exit 0",
                   "links": "1: lo: <LOOPBACK>\n3: tunl0@NONE: <NOARP,UP>\n"
                            "7: cali92d634f8f03@if3: <BROADCAST,UP>"})
    out = judge("node_firewall_forward", node=ctx)
    assert out and all(f.ok for f in out), [f.observed for f in out if not f.ok]
    assert "Policy explicitly accepted packet." in out[0].observed
    assert overlay_and_pod(ctx) == ("tunl0", "cali92d634f8f03")


def test_calico_without_a_workload_interface_is_not_a_false_failure():
    """No cali* interface yet (no pod on the node): the dispatch rules cannot match, and
    felix's "Unknown interface" DROP is not reached for `-o cali+` either."""
    ctx = cluster({"iptables_save": CALICO.read_text() + "!exit 0",
                   "links": "1: lo: <LOOPBACK>\n3: tunl0@NONE: <NOARP,UP>"})
    assert overlay_and_pod(ctx) == ("tunl0", None)


def overlay_and_pod(ctx):
    overlay, pod, _ = firewall.pod_interfaces(ctx)
    return overlay, pod


def test_forward_with_a_tiny_pod_subnet_says_it_was_not_checked():
    from kubeaccept.model.settings import Settings
    ctx = cluster({"iptables_save": REPORT03})
    ctx = type(ctx)(ctx.host, ctx.facts, ctx.inventory, Settings(pod_subnet="10.244.0.0/24"),
                    ctx.peers)
    out = judge("node_firewall_forward", node=ctx)
    assert [f.ok for f in out] == [True] and "fewer than 512 addresses" in out[0].note


def test_rules_are_parsed_once_per_node_for_both_firewall_checks(monkeypatch):
    """The facts object is shared by every test of the run: the two checks share its parse."""
    calls = []
    real = firewall.parse_iptables_save
    monkeypatch.setattr(firewall, "parse_iptables_save",
                        lambda text, source="iptables-save": calls.append(source) or
                        real(text, source))
    ctx = cluster({"iptables_save": REPORT03})
    forward = failed(judge("node_firewall_forward", node=ctx))
    assert forward and not failed(judge("node_firewall_input", node=ctx))
    assert calls == ["iptables-save"]


def test_input_is_evaluated_once_per_class_of_source(monkeypatch):
    """40 workers send VXLAN to w1: a rule that drops one of them, and one that drops a /28 of
    them, must block exactly those peers, while the rules are walked once per class of
    source (in or out of each -s network), not once per peer."""
    me = host("w1", "192.0.2.21")
    peers = [(host("cp1", "192.0.2.11", (CONTROL_PLANE,)), facts("cp1"))]
    peers += [(host(f"w{i}", f"198.51.100.{i}"), facts(f"w{i}")) for i in range(2, 42)]
    text = OPEN.replace("COMMIT", "-A INPUT -s 198.51.100.7/32 -p udp --dport 8472 -j DROP\n"
                        "-A INPUT -s 198.51.100.32/28 -p udp --dport 8472 -j REJECT\n"
                        "-A INPUT ! -s 127.0.0.0/8 -d 127.0.0.0/8 -j DROP\nCOMMIT")
    ctx = context(facts("w1", addresses="2: eth0    inet 192.0.2.21/24 brd x scope global eth0",
                        iptables_save=text), me, peers=peers)
    walks = []
    real = firewall.evaluate
    monkeypatch.setattr(firewall, "evaluate", lambda *a, **k: walks.append(a[2].src) or
                        real(*a, **k))
    out = failed(judge("node_firewall_input", node=ctx))
    assert [f.subject for f in out] == ["w1:udp/8472"]
    assert "from w7: DROP by INPUT rule 1" in out[0].observed
    assert "from w32, w33, w34, w35, w36, w37, w38, w39, w40, w41: REJECT by INPUT rule 2" \
        in out[0].observed
    # per port: the one source of cp1 (kubelet) or a few classes, never one walk per peer
    assert len(walks) < 3 * len(firewall._inbound(ctx)), len(walks)
    assert walks.count("198.51.100.7") == 1  # 8472 from w7: its own class
