"""Bad input and faults during a run, as tables: each case gives one clear line (naming the
file, host or option, what is wrong and what to do), the right exit code, and a run that
ends within its bound; other hosts are tested normally. The lab supplies the real sshd,
firewall, hung command, dead API and dead DNS."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from kubeaccept.model.roles import WORKER
from lab import power
from lab.faults import HANG_SECONDS as HANG
from lab.faults import SUDO_PASSWORD, SUDO_USER
from lab.plan import BRIDGE, DEFAULT_STATE_DIR, NETNS_PREFIX

from .suite import ROOT, SuiteRun, checks_on, run_suite

FAST = ("--connect-timeout=3", "--command-timeout=5")
W1 = "198.18.1.1"


def _doc(lab) -> dict:
    return yaml.safe_load(lab.inventory.read_text())


def _write(tmp: Path, name: str, text: str) -> str:
    path = tmp / name
    path.write_text(text)
    return str(path)


def _yaml(tmp: Path, doc: dict) -> str:
    return _write(tmp, "hosts.yaml", yaml.safe_dump(doc))


def _w1(doc: dict) -> dict:
    return doc["all"]["children"]["kube_node"]["hosts"]["w1"]


def _own_vars(doc: dict, **extra) -> dict:
    """w1 with its own connection settings (they win over all:vars, as in Ansible)."""
    _w1(doc).update(extra)
    return doc


# --- bad input --------------------------------------------------------------------------
def bad_known_hosts(lab, tmp):
    """w1's address with another host's key: a rebuilt host, or a man in the middle."""
    other = (lab.dir / "hosts" / "cp1" / "ssh_host_ed25519_key.pub").read_text().split()[:2]
    known = _write(tmp, "known_hosts", f"{W1} {' '.join(other)}\n")
    return [f"--hosts={_yaml(tmp, _own_vars(_doc(lab), ansible_ssh_common_args=f'-o UserKnownHostsFile={known}'))}"]


def unknown_host_key(lab, tmp):
    known = _write(tmp, "known_hosts", "")
    return [f"--hosts={_yaml(tmp, _own_vars(_doc(lab), ansible_ssh_common_args=f'-o UserKnownHostsFile={known} -o StrictHostKeyChecking=yes'))}"]


def wrong_key(lab, tmp):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp / "k")],
                   check=True)
    return [f"--hosts={_yaml(tmp, _own_vars(_doc(lab), ansible_ssh_private_key_file=str(tmp / 'k')))}"]


def sudo_user(password: str | None):
    """w1 logged into as the sudo-password fault's user, with ansible_become."""
    def setup(lab, tmp):
        extra = {"ansible_become_password": password} if password else {}
        doc = _own_vars(_doc(lab), ansible_user=SUDO_USER, ansible_become=True, **extra)
        return [f"--hosts={_yaml(tmp, doc)}"]
    return setup


def no_control_plane(lab, tmp):
    doc = _doc(lab)
    del doc["all"]["children"]["kube_control_plane"]
    return [f"--hosts={_yaml(tmp, doc)}"]


def empty_address(lab, tmp):
    return [f"--hosts={_yaml(tmp, _own_vars(_doc(lab), ansible_host=''))}"]


def same_address(lab, tmp):
    return [f"--hosts={_yaml(tmp, _own_vars(_doc(lab), ansible_host='198.18.0.11'))}"]


def duplicate_key(lab, tmp):
    text = lab.inventory.read_text().replace(
        "        w1:\n", "        w1:\n          ansible_host: 198.18.1.1\n        w1:\n", 1)
    return [f"--hosts={_write(tmp, 'hosts.yaml', text)}"]


def kubeconfig(text: str):
    def setup(lab, tmp):
        return [f"--hosts={lab.inventory}", f"--kubeconfig={_write(tmp, 'kubeconfig', text)}"]
    return setup


def dead_server_kubeconfig(lab, tmp):
    text = (lab.dir / "admin.conf").read_text()
    text = "\n".join(ln if "server:" not in ln else "    server: https://198.18.0.250:6443"
                     for ln in text.splitlines())
    return [f"--hosts={lab.inventory}", f"--kubeconfig={_write(tmp, 'dead.conf', text)}"]


BROKEN_YAML = "all:\n  children:\n    kube_node:\n      hosts: [w1\n"
OPEN_SECTION_INI = "[kube_node]\nw1 ansible_host=198.18.1.1\n[kube_control_plane\ncp1\n"


def file(name: str, text: str):
    return lambda lab, tmp: [f"--hosts={_write(tmp, name, text)}"]


def args(*a: str):
    return lambda lab, tmp: [a_.format(inv=lab.inventory, tmp=tmp) for a_ in a]


# id: (setup -> pytest args, fault to inject, exit code, {test (or "output"): words}, bound s)
BAD_INPUT = {
    "inventory path missing": (args("--hosts=/nonexistent/hosts.yaml"), None, 4,
                               {"output": ["/nonexistent/hosts.yaml", "is neither an existing "
                                           "inventory file or directory"]}, 20),
    "YAML syntax error (line)": (file("h.yaml", BROKEN_YAML), None, 4,
                                 {"output": ["h.yaml", "line"]}, 20),
    "INI section header not closed (line)": (
        file("h.ini", OPEN_SECTION_INI), None, 4, {"output": ["h.ini", "line 3: section header '[kube_control_plane' is not "
                                       "closed"]}, 20),
    "host without an address": (empty_address, None, 4,
                                {"output": ["host w1 has no address (ansible_host is empty)"]}, 20),
    "same host twice in a group": (duplicate_key, None, 4,
                                   {"output": ["line", "duplicate mapping key 'w1'"]}, 20),
    "two hosts, one address": (same_address, None, 4,
                               {"output": ["hosts cp1 and w1 have the same address "
                                           "198.18.0.11:22"]}, 20),
    "unknown --hosts spec": (args("--hosts=winrm://cp1"), None, 4,
                             {"output": ["unsupported host spec 'winrm://cp1'"]}, 20),
    "bad option value": (args("--hosts={inv}", "--pod-subnet=10.244.0.0/33"), None, 4,
                         {"output": ["10.244.0.0/33"]}, 20),
    "example inventory": (args("--hosts=inventory/examples/kubespray/hosts.yaml"), None, 4,
                          {"output": ["is an example inventory"]}, 20),
    "failover target not a control plane": (args("--hosts={inv}", "--failover=w1"), None, 4,
                                            {"output": ["--failover=w1: not a control plane"]},
                                            20),
    "no control plane in the inventory": (
        no_control_plane, None, 1,
        {"cluster_control_plane": ["has no control-plane host", "kube_control_plane"],
         "node_cluster_ca[no-control_plane-host]": ["has no host in role control_plane"]},
        40),
    "kubeconfig missing": (args("--hosts={inv}", "--kubeconfig={tmp}/none.conf"), None, 1,
                           {"cluster_nodes_ready": ["none.conf", "No such file or directory"]},
                           40),
    # unreadable: root reads any file, so a directory stands in for a permission error
    "kubeconfig unreadable": (args("--hosts={inv}", "--kubeconfig={tmp}"), None, 1,
                              {"cluster_nodes_ready": ["Is a directory"]}, 40),
    "kubeconfig not a kubeconfig": (kubeconfig("just: text\n"), None, 1,
                                    {"cluster_nodes_ready": ["not a usable kubeconfig"]}, 40),
    "kubeconfig's server dead": (dead_server_kubeconfig, None, 0,
                                 {"output": ["dead.conf's server did not answer /readyz",
                                             "198.18.0.250:6443"]}, 40),
    "wrong SSH key": (wrong_key, None, 1,
                      {"node_swap[w1]": [f"unreachable: authentication failed for "
                                         f"root@{W1}:22"]}, 40),
    "host key mismatch": (bad_known_hosts, None, 1,
                          {"node_swap[w1]": [f"host key of {W1} does not match",
                                             "the host was rebuilt or this is not the host"]},
                          40),
    "host key unknown": (unknown_host_key, None, 1,
                         {"node_swap[w1]": [f"host key of {W1} is not in",
                                            f"ssh-keyscan -p 22 {W1}"]}, 40),
    "sudo asks for a password": (sudo_user(None), "sudo-password", 1, {"node_swap[w1]": [
        f"sudo on w1 asks {SUDO_USER} for a password (set ansible_become_password",
        "sudo: a password is required"]}, 40),
    "sudo password wrong": (sudo_user("not-it"), "sudo-password", 1, {"node_swap[w1]": [
        f"sudo on w1 refused ansible_become_password for {SUDO_USER}",
        "incorrect password attempt"]}, 40),
    # the same user with its password: sudo -S runs the facts command as root
    "sudo with its password (passes)": (sudo_user(SUDO_PASSWORD), "sudo-password", 0,
                                        {"output": ["passed"]}, 40),
    "command not installed (ss)": (args("--hosts={inv}"), "command-missing", 1,
                                   {"node_listening_ports[w1]": [
                                       "ss is not installed (package iproute2)",
                                       "node_listening_ports needs it to list the listening "
                                       "sockets"]}, 40),
}


def _assert_case(run: SuiteRun, rc: int, expect: dict, bound: float, took: float) -> None:
    assert run.returncode == rc, run.output[-2500:]
    assert took < bound, f"took {took:.1f}s, bound {bound}s"
    assert "Traceback" not in run.output, run.output[-2500:]
    for test, words in expect.items():
        text = run.output if test == "output" else run.messages.get(test, "")
        for w in words:
            assert w in text, (test, w, text[-1500:])


@pytest.mark.parametrize("case", BAD_INPUT)
def test_bad_input(lab, tmp_path, case):
    setup, fault, rc, expect, bound = BAD_INPUT[case]
    extra = setup(lab, tmp_path)
    if fault:
        lab.inject(fault)
    try:
        start = time.monotonic()
        run = run_suite(extra[0].removeprefix("--hosts="), tmp_path / "junit.xml", *extra[1:],
                        *FAST)
        _assert_case(run, rc, expect, bound, time.monotonic() - start)
        if rc == 1 and "[w1]" in "".join(expect):
            # the host's tests error, the other hosts' tests run and pass
            mine = {t: o for t, o in run.outcomes.items() if t.endswith("[w1]")}
            assert set(mine.values()) == {"error"} or fault, mine
            others = {t: o for t, o in run.outcomes.items()
                      if t.endswith("]") and not t.endswith("[w1]")}
            assert "passed" in others.values(), others
    finally:
        if fault:
            lab.heal()


# --- faults during a run ----------------------------------------------------------------
UNREACHABLE = {
    "sshd down": ("sshd-down", f"unreachable: connection refused by root@{W1}:22"),
    "SSH black-holed (no SYN-ACK)": ("ssh-blackhole",
                                     f"unreachable: connection to root@{W1}:22 timed out "
                                     "after 3s"),
    "SSH rejected (icmp-host-prohibited)": ("ssh-reject", f"unreachable: cannot connect to "
                                            f"root@{W1}:22: No route to host"),
    "a fact command hangs": ("command-hangs", "cannot gather facts on w1: remote command did "
                             "not finish within 5s"),
}


@pytest.mark.parametrize("case", UNREACHABLE)
def test_a_host_that_cannot_be_asked_errors_alone(lab, tmp_path, case):
    """Its tests ERROR with the cause within the timeouts (-n 2), every other host is tested,
    cluster checks that needed it say so, and the summary lists it apart."""
    fault, cause = UNREACHABLE[case]
    lab.inject(fault)
    try:
        start = time.monotonic()
        run = run_suite(str(lab.inventory), tmp_path / "junit.xml", *FAST, "-n", "2")
        took = time.monotonic() - start
    finally:
        lab.heal()
    mine = {t: o for t, o in run.outcomes.items() if t.endswith("[w1]")}
    assert len(mine) == len(checks_on(WORKER)) and set(mine.values()) == {"error"}, mine
    for test in mine:
        assert cause in run.messages[test], run.messages[test]
    bad = {t: o for t, o in run.outcomes.items() if o != "passed" and t not in mine}
    # kubectl exec into the dnsutils pod on w1 goes through w1's kubelet port: only the
    # firewall cases cut it
    assert set(bad) <= {"cluster_dns"}, bad
    if fault in ("sshd-down", "ssh-blackhole", "ssh-reject"):
        assert "kubeaccept: unreachable hosts (their tests ERROR)" in run.output
    assert took < 45, took
    if fault == "command-hangs":
        _gone(f"sleep {HANG}", 15)


def _gone(pattern: str, within: float) -> None:
    """Nothing matching `pattern` runs any more (lab hosts share this machine's PIDs)."""
    deadline = time.monotonic() + within
    while subprocess.run(["pgrep", "-f", pattern], capture_output=True).returncode == 0:
        assert time.monotonic() < deadline, f"still running after {within}s: {pattern}"
        time.sleep(0.5)


def test_a_host_that_dies_mid_run(lab, tmp_path):
    """w1 is powered off while its facts command runs: its tests error within the command
    timeout, the run goes on."""
    lab.inject("command-hangs")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", f"--hosts={lab.inventory}", "-q", "-p",
         "no:cacheprovider", f"--junitxml={tmp_path / 'junit.xml'}", "--connect-timeout=3",
         "--command-timeout=8"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    start = time.monotonic()
    try:
        time.sleep(2)
        power.power_off(lab, "w1")
        out, _ = proc.communicate(timeout=60)
        took = time.monotonic() - start
    finally:
        proc.kill()
        lab.reload()
        if lab.state.get("powered_off", {}).get("w1"):
            power.power_on(lab, "w1")
        lab.heal()
    assert proc.returncode == 1, out[-2000:]
    assert "cannot gather facts on w1" in out or "unreachable" in out, out[-2000:]
    # a dnsutils pod on the dead node: the exec's silence is cut at the read timeout and
    # said as such, not read as an empty DNS answer
    assert "empty answer" not in out, out[-2000:]
    assert took < 40, took


def test_the_api_gone(lab, tmp_path):
    """Every apiserver and the load balancer down: each API check errors with one line saying
    which servers were tried; the node checks run; bounded."""
    for fault, host in (("lb-down", None), ("apiserver-down", "cp1"), ("apiserver-down", "cp2"),
                        ("apiserver-down", "cp3")):
        lab.inject(fault, host)
    try:
        start = time.monotonic()
        run = run_suite(str(lab.inventory), tmp_path / "junit.xml", *FAST)
        took = time.monotonic() - start
    finally:
        lab.heal()
    for test in ("cluster_nodes_ready", "cluster_pods_healthy", "cluster_dns"):
        assert run.outcomes[test] == "error", (test, run.outcomes[test])
        assert "cannot read the Kubernetes API" in run.messages[test] or \
            "cannot use the Kubernetes API" in run.messages[test], run.messages[test]
        assert "no apiserver answered /readyz" in run.messages[test]
    assert run.outcomes["node_swap[w1]"] == "passed"
    assert took < 60, took


def test_cluster_dns_timing_out(lab, tmp_path):
    """DNS packets to CoreDNS dropped: every lookup (dig +time=2, nslookup in the pod) ends
    with "timed out", reported per node; the run is bounded."""
    lab.inject("dns-blackhole")
    try:
        start = time.monotonic()
        # the default command timeout: nslookup in the pod needs ~15 s to give up
        run = run_suite(str(lab.inventory), tmp_path / "junit.xml", FAST[0])
        took = time.monotonic() - start
    finally:
        lab.heal()
    for test in ("node_cluster_dns[w1]", "node_cluster_dns[cp1]", "cluster_dns"):
        assert run.outcomes[test] == "failed", (test, run.outcomes[test])
        assert "10.96.0.10#53: timed out" in run.messages[test], run.messages[test]
    assert run.outcomes["node_swap[w1]"] == "passed"
    assert took < 60, took


def test_ctrl_c_leaves_nothing_running(lab, tmp_path):
    """SIGINT while a fact command hangs: pytest stops (exit 2) within seconds, its xdist
    workers and connections end, and the node ends the hung command at the command timeout
    (the facts script runs under coreutils' timeout there)."""
    lab.inject("command-hangs")
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pytest", f"--hosts={lab.inventory}", "-q", "-p",
             "no:cacheprovider", f"--junitxml={tmp_path / 'junit.xml'}", "-n", "2",
             "--command-timeout=8"], cwd=ROOT, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, start_new_session=True)
        time.sleep(4)
        start = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole group
        out, _ = proc.communicate(timeout=30)
        assert time.monotonic() - start < 15
        assert proc.returncode == 2, out[-2000:]
        _gone(f"--hosts={lab.inventory}", 10)
        _gone(f"sleep {HANG}", 20)
    finally:
        lab.heal()


@pytest.mark.parametrize("after", [3.0, 9.0])
def test_ctrl_c_during_lab_up_leaves_no_lab_behind(_session_lab, after):
    """SIGINT while the lab is being built (namespaces made, control plane starting): `up`
    removes what it made and exits 130; no namespace, link, bridge or process of the lab is
    left. The next test's `lab` fixture builds it again."""
    _session_lab.down()
    proc = subprocess.Popen([sys.executable, "-m", "lab", "up", "--control-plane"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    time.sleep(after)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out[-2000:]
    assert "interrupted: removing what was made" in out
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert NETNS_PREFIX not in netns, netns
    links = [n for n in os.listdir("/sys/class/net") if n.startswith("kl-") or n == BRIDGE]
    assert not links, links
    _gone(str(DEFAULT_STATE_DIR), 10)
    assert not DEFAULT_STATE_DIR.exists()
