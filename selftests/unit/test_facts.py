"""The facts document: command line, parsing, and what a broken run turns into."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from kubeaccept import facts
from kubeaccept.facts import FactsError, NodeFacts, dnswire, parse

from .factory import host

FIXTURES = Path(__file__).parent / "fixtures"


def test_command_runs_as_is_for_root_and_through_sudo_otherwise():
    line, stdin = facts.command(host(), "tok", 3, ["10.0.0.1:6443"])
    # bounded on the node too: coreutils' timeout ends it 3 s after the runner's own deadline
    # (and KILLs it 5 s later)
    assert line.startswith("timeout -k 5 63 sh -c ")
    assert line.endswith("kubeaccept-facts tok 3 - 10.0.0.1:6443")
    assert facts.command(host(), "tok", 3, [], command_timeout=7.2)[0].startswith(
        "timeout -k 5 11 sh -c ")
    assert stdin == b""
    user = host().__class__(name="n", address="a", user="ops", become=True)
    assert facts.command(user, "t", 3, [])[0].startswith("sudo -n -- timeout -k 5 63 sh -c ")
    pw = host().__class__(name="n", address="a", user="ops", become=True, become_password="s3")
    line, stdin = facts.command(pw, "t", 3, [])
    assert line.startswith("sudo -S -p '' -- ") and stdin == b"s3\n"


def test_gather_script_runs_locally_and_parses():
    """The real script on this machine (no SSH): every section present and parseable."""
    token = facts.new_token()
    line, _ = facts.command(host(), token, 1, ["127.0.0.1:9"])
    out = subprocess.run(line, shell=True, capture_output=True, text=True, timeout=60)
    f = parse("local", token, out.stdout, out.stderr, out.returncode)
    for name in ("hostname", "sysctl", "swaps", "listen-tcp", "addresses", "iptables-save",
                 "probes", "file /etc/fstab"):
        assert name in f.sections, name
    assert f.sysctls["net.ipv4.conf.all.rp_filter"] in "012"
    # bridges: what sysfs says on this machine (a bridge has /sys/class/net/<name>/bridge/)
    assert "bridges" in f.sections
    net = Path("/sys/class/net")
    want = {d.name: sorted(p.name for p in (d / "brif").iterdir())
            for d in sorted(net.iterdir()) if (d / "bridge").is_dir()}
    assert f.bridges == want
    assert f.probes["127.0.0.1:9"].startswith("closed")
    assert ("lo", "127.0.0.1") in f.addresses
    # merged /usr: the units under /lib are those under /usr/lib, read once
    if Path("/lib/systemd/system").is_dir() and Path("/lib/systemd/system").samefile(
            "/usr/lib/systemd/system"):
        assert " /lib/systemd/system/" not in f.sections["swap-boot"]
        assert " /usr/lib/systemd/system/swap.target " in f.sections["swap-boot"]


def test_gather_script_without_probe_targets_starts_no_prober(tmp_path):
    """Most hosts of a large cluster probe nothing (--probe-sources): no xargs, an empty
    section."""
    log = tmp_path / "ran"
    for tool in ("xargs", "grep", "sed"):
        (tmp_path / tool).write_text(f"#!/bin/sh\necho {tool} >> {log}\nexec /usr/bin/{tool} \"$@\"\n")
        (tmp_path / tool).chmod(0o755)
    token = facts.new_token()
    for probes, want in (([], ""), (["127.0.0.1:9"], "xargs")):
        log.unlink(missing_ok=True)
        line, _ = facts.command(host(), token, 1, probes)
        # only the probes section is measured: the script's other sed/grep use run earlier
        out = subprocess.run(line, shell=True, capture_output=True, text=True, timeout=60,
                             env={"PATH": f"{tmp_path}:/usr/bin:/bin", "LC_ALL": "C"})
        f = parse("local", token, out.stdout, out.stderr, out.returncode)
        assert "probes" in f.sections and bool(f.probes) == bool(probes)
        ran = log.read_text().split() if log.exists() else []
        assert ("xargs" in ran) == bool(want), ran


def test_parse_rejects_a_truncated_document_with_the_cause():
    with pytest.raises(FactsError, match="did not complete on n1: sudo: a password is required"):
        parse("n1", "t", "", "sudo: a password is required\n", 1)
    with pytest.raises(FactsError, match="exit status 3$"):
        parse("n1", "t", "\n@@t hostname\nn1\n", "", 3)


def test_a_command_the_node_stopped_says_so():
    """GNU coreutils' timeout exits 124 when it sent TERM to the command, 137 (128 + 9) when it
    had to KILL it after -k; the diagnosis names the cause, not a bare exit status."""
    term = subprocess.run(["timeout", "-k", "5", "0.2", "sleep", "5"], capture_output=True)
    # timeout KILLs itself to pass the status on; a shell reports that as 128 + 9
    kill = subprocess.run("timeout -s CONT -k 0.2 0.1 sleep 5; exit $?", shell=True,
                          capture_output=True)
    assert (term.returncode, kill.returncode) == (124, 137)
    with pytest.raises(FactsError, match=r"did not complete on n1: the node stopped it at "
                       r"its time limit \(timeout sent TERM, exit status 124\): a command on n1 "
                       "hangs"):
        parse("n1", "t", "\n@@t hostname\nn1\n", "", term.returncode)
    # 137 is any SIGKILL: the OOM killer's too
    with pytest.raises(FactsError, match=r"did not complete on n1: it was killed \(exit status "
                       r"137: SIGKILL, from timeout .* or from the kernel's OOM killer\)"):
        parse("n1", "t", "\n@@t hostname\nn1\n", "", kill.returncode)


def test_files_listeners_and_versions():
    doc = ("\n@@t file /a\naGVsbG8K\n@@t file /b\n!missing\n@@t listen-tcp\n"
           'LISTEN 0 4096 [::ffff:127.0.0.1]:10259 [::]:* users:(("kube-scheduler",pid=7,fd=3))\n'
           "LISTEN 0 4096 *:10250 *:*\n@@t kubelet-version\nKubernetes v1.31.4\n@@t end\n")
    f = parse("n1", "t", doc, "", 0)
    assert f.file("/a").text == "hello\n" and not f.file("/b").exists
    assert [(x.address, x.port, x.process, x.pid) for x in f.listeners] == [
        ("::ffff:127.0.0.1", 10259, "kube-scheduler", 7), ("*", 10250, "", None)]
    assert f.kube_version == (1, 31)
    assert facts.NodeFacts.from_json(f.to_json()).sections == f.sections


def test_dns_section_parses_tool_command_status_and_answer():
    f = NodeFacts("w1", {"dns": "!cmd dig +time=3 +tries=1 +short @10.96.0.10 kubernetes.default"
                                ".svc.cluster.local\n10.96.0.1\n!rc 0", "end": ""})
    assert f.dns == {"tool": "dig", "command": f.dns["command"], "rc": 0, "output": "10.96.0.1"}
    assert NodeFacts("w1", {"dns": "", "end": ""}).dns["tool"] == ""
    assert NodeFacts("w1", {"end": ""}).dns is None


def test_gather_script_asks_the_cluster_dns_when_told():
    token = facts.new_token()
    line, _ = facts.command(host(), token, 1, [], "127.0.0.1")
    out = subprocess.run(line, shell=True, capture_output=True, text=True, timeout=60)
    dns = parse("local", token, out.stdout, out.stderr, out.returncode).dns
    assert dns is not None and dns["tool"] in ("udp", "dig", "nslookup", "")
    if dns["tool"]:
        assert "127.0.0.1" in dns["command"] and isinstance(dns["rc"], int)


@pytest.mark.skipif(os.geteuid() != 0, reason="binds UDP port 53")
def test_gather_script_sends_one_well_formed_query_and_reads_the_reply():
    """The shell's side of the DNS query against a responder on 127.0.0.77:53 that checks the
    datagram as a DNS server parses it and answers with CoreDNS's recorded reply."""
    import socket
    import threading

    reply = dnswire.hex_bytes((FIXTURES / "dns" / "coredns-noerror.od").read_text().splitlines())
    got = []
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.77", 53))
    sock.settimeout(10)

    def serve():
        query, peer = sock.recvfrom(4096)
        got.append(query)
        sock.sendto(reply, peer)
    server = threading.Thread(target=serve)
    server.start()
    try:
        token = facts.new_token()
        line, _ = facts.command(host(), token, 3, [], "127.0.0.77")
        out = subprocess.run(line, shell=True, capture_output=True, text=True, timeout=60)
        server.join(10)
    finally:
        sock.close()
    dns = parse("local", token, out.stdout, out.stderr, out.returncode).dns
    # one datagram: header (id 0x6b61, RD, 1 question), the name, type A, class IN
    assert got == [b"\x6b\x61\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
                   b"\x0akubernetes\x07default\x03svc\x07cluster\x05local\x00\x00\x01\x00\x01"]
    assert dns["tool"] == "udp" and dns["rc"] == 0 and dns["output"] == "10.96.0.1"
