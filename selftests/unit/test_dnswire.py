"""The node's DNS query: real CoreDNS replies (fixtures/dns) decoded, and each outcome judged
as the dig path judges it."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubeaccept.checks import dns
from kubeaccept.facts import dnswire, parse
from kubeaccept.model.settings import Settings

from .factory import dns_node, judge

FIXTURES = Path(__file__).parent / "fixtures" / "dns"
SETTINGS = Settings()


def od(name: str) -> list[str]:
    return (FIXTURES / name).read_text().splitlines()


def section(lines: list[str], rc: int) -> dns.NodeDnsAnswer:
    """What the facts document makes of gather.sh's dns section."""
    doc = "\n@@t dns\n" + "\n".join(["!cmd udp 10.96.0.10 kubernetes.default.svc.cluster.local 3",
                                     *lines, f"!rc {rc}"]) + "\n@@t end\n"
    return dns.NodeDnsAnswer(**parse("w1", "t", doc, "", 0).dns)


def test_coredns_answer_is_decoded_and_passes():
    assert dnswire.decode(dnswire.hex_bytes(od("coredns-noerror.od"))) == ("NOERROR", ["10.96.0.1"])
    answer = section(od("coredns-noerror.od"), 0)
    assert answer.tool == "udp" and answer.output == "10.96.0.1"
    assert answer.command.startswith("A kubernetes.default.svc.cluster.local to 10.96.0.10:53/udp")
    [f] = judge("node_cluster_dns", node=dns_node("w1", answer, SETTINGS))
    assert f.ok and f.observed == "kubernetes.default -> 10.96.0.1 from 10.96.0.10"


def test_coredns_nxdomain_is_the_corefile_diagnosis():
    assert dnswire.decode(dnswire.hex_bytes(od("coredns-nxdomain.od")))[0] == "NXDOMAIN"
    [f] = judge("node_cluster_dns", node=dns_node("w1", section(od("coredns-nxdomain.od"), 0), SETTINGS))
    assert not f.ok and f.observed == ";; status: NXDOMAIN from 10.96.0.10#53"
    assert f.why == dns.NXDOMAIN_WHY and "Corefile" in f.fix


def test_timeout_firewall_reject_and_refused():
    # timeout(1) ended the query (exit 124): no reply at all, as in report 03
    [f] = judge("node_cluster_dns", node=dns_node("w1", section([], 124), SETTINGS))
    assert "10.96.0.10#53: timed out after 3 s" in f.observed and f.why == dns.UNREACHABLE_WHY
    # a REJECT with icmp-host-prohibited on the path (dd's read gets EHOSTUNREACH)
    reject = ["dd: error reading 'standard input': No route to host"]
    [f] = judge("node_cluster_dns", node=dns_node("w1", section(reject, 1), SETTINGS))
    assert "No route to host" in f.observed and "iptables -L FORWARD" in f.fix
    # ICMP port unreachable: nothing listens behind the address
    refused = ["dd: error reading 'standard input': Connection refused"]
    [f] = judge("node_cluster_dns", node=dns_node("w1", section(refused, 1), SETTINGS))
    assert "Connection refused" in f.observed and f.why == dns.REFUSED_WHY


def test_wrong_address_and_rcodes():
    msg = bytearray(dnswire.hex_bytes(od("coredns-noerror.od")))
    msg[-4:] = bytes([10, 96, 0, 99])  # the A record's address
    lines = [" ".join(f"{b:02x}" for b in msg)]
    [f] = judge("node_cluster_dns", node=dns_node("w1", section(lines, 0), SETTINGS))
    assert not f.ok and "10.96.0.99" in f.observed and f.why == dns.WRONG_WHY
    msg = bytearray(dnswire.hex_bytes(od("coredns-noerror.od")))
    msg[3] = (msg[3] & 0xF0) | 5  # REFUSED
    [f] = judge("node_cluster_dns", node=dns_node("w1", section([" ".join(f"{b:02x}" for b in msg)], 0), SETTINGS))
    assert f.observed == ";; status: REFUSED from 10.96.0.10#53" and f.why == dns.REFUSED_WHY


def test_compressed_names_as_bind_and_dnsmasq_send_them():
    """RFC 1035 4.1.4: the answer's owner is a pointer to the question's name (0xc00c)."""
    question = (b"\x0akubernetes\x07default\x03svc\x07cluster\x05local\x00" + b"\x00\x01\x00\x01")
    answer = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x05\x00\x04" + bytes([10, 96, 0, 1])
    cname = (b"\xc0\x0c\x00\x05\x00\x01\x00\x00\x00\x05\x00\x02\xc0\x0c")
    msg = b"\x6b\x61\x81\x80\x00\x01\x00\x02\x00\x00\x00\x00" + question + cname + answer
    assert dnswire.decode(msg) == ("NOERROR", ["10.96.0.1"])


@pytest.mark.parametrize("msg, why", [
    (b"\x6b\x61\x81", "shorter than a DNS header"),
    (b"\x00\x01\x81\x80" + b"\x00" * 8, "is not the query's"),
    (b"\x6b\x61\x01\x00" + b"\x00" * 8, "not a response"),
    (b"\x6b\x61\x81\x80\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c", "bad compression pointer"),
    (b"\x6b\x61\x81\x80\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x01", "past the end"),
])
def test_malformed_replies_say_what_is_wrong(msg, why):
    with pytest.raises(dnswire.Malformed, match=why):
        dnswire.decode(msg)
    lines = dnswire.tell([" ".join(f"{b:02x}" for b in msg)], 0, "10.96.0.10", "3")
    assert lines[0].startswith(";; error: malformed reply from 10.96.0.10#53: ")
