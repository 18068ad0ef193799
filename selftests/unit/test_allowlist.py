"""The allow-list: the suite's own remote lines are on it in every form it sends them (with
and without sudo), and writers are not."""

from __future__ import annotations

from kubeaccept import facts
from kubeaccept.facts import allowlist
from kubeaccept.model.hosts import Host
from lab.audit import parse, violations


def test_the_facts_line_in_each_form_the_suite_sends_it():
    for host in (Host("cp1", "10.0.0.1"),
                 Host("cp1", "10.0.0.1", user="ubuntu", become=True),
                 Host("cp1", "10.0.0.1", user="ubuntu", become=True, become_password="pw")):
        line, _ = facts.command(host, facts.new_token(), 3.0, ["10.0.0.2:10250",
                                                               "10.0.0.3:6443"], "10.96.0.10")
        assert allowlist.remote_line(line) == "facts", line[:60]
    assert allowlist.remote_line("sudo -n -- cat /etc/kubernetes/admin.conf") == "admin.conf"
    assert allowlist.remote_line("cat /etc/shadow") is None


def test_writers_and_unknown_programs_are_refused():
    assert allowlist.program(["rm", "-rf", "/var/lib/etcd"])
    assert allowlist.program(["sed", "-i", "s/x/y/", "/etc/fstab"])
    assert allowlist.program(["iptables", "-F"]) == "iptables is not on the allow-list"
    assert allowlist.program(["nft", "flush", "ruleset"])
    assert allowlist.program(["bash", "-c", "reboot"])
    assert allowlist.program(["etcdctl", "member", "remove", "8e9e05c52164694d"])
    assert allowlist.program(["iptables-save"]) is None
    assert allowlist.program(["ss", "-Htlnp"]) is None
    assert allowlist.program(["sh", "-c", allowlist.PROBE, "3", "10.0.0.2:10250"]) is None
    # the DNS query: bash's /dev/udp; dd only between pipes and the socket, never to a file
    assert allowlist.program(["bash", "-c", allowlist.UDP, "10.96.0.10", "\\x6b"]) is None
    assert allowlist.program(["dd", "bs=4096", "count=1", "status=none"]) is None
    assert allowlist.program(["od", "-An", "-tx1", "-v"]) is None
    assert allowlist.program(["dd", "if=/dev/zero", "of=/dev/sda", "bs=4096", "count=1"])
    assert allowlist.program(["dd", "bs=4096", "count=1", "status=none", "of=/etc/passwd"])


def test_strace_lines_as_strace_6_prints_them():
    """strace -f: pid prefix, C escapes, a call split by another process's output."""
    log = (
        '101 execve("/bin/bash", ["bash", "-c", "cat /etc/kubernetes/admin.conf"], 0x5 /* 8 vars */) = 0\n'
        '102 execve("/usr/sbin/iptables-save", ["iptables-save"], 0x5 /* 9 vars */ <unfinished ...>\n'
        '103 execve("/usr/local/sbin/touch", ["touch", "/etc/x"], 0x5 /* 9 vars */) = -1 ENOENT (No such file or directory)\n'
        '102 <... execve resumed>) = 0\n'
        '104 execve("/usr/bin/printf", ["printf", "a\\"b\\n\\t\\303\\251"], 0x5 /* 9 vars */) = 0\n')
    execs = parse("w1", log)
    assert [e.argv for e in execs] == [("bash", "-c", "cat /etc/kubernetes/admin.conf"),
                                       ("iptables-save",), ("printf", 'a"b\n\t\xc3\xa9')]
    assert violations(execs) == []
    # the session's line is what the suite sent, or it is refused
    assert violations(parse("w1", log.replace("admin.conf", "../../shadow"))) == [
        "w1: bash -c 'cat /etc/kubernetes/../../shadow': not an allowed script"]
