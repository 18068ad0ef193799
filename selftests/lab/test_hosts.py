"""The lab's hosts and the suite's transport: reachability errors, SSH logins, no way out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

from kubeaccept.model.roles import CONTROL_PLANE, WORKER
from lab.lab import Lab

from .suite import CHECKS, ROOT, checks_on, run_suite


def test_up_is_idempotent(lab):
    pids = dict(lab.state["pids"])
    workers = len([h for h in lab.hosts if h.name.startswith("w")])
    assert lab.up(workers, control_plane=True) == 0.0
    assert lab.state["pids"] == pids and not lab.problems()
    # And from the command line, a new process reading lab.json:
    out = subprocess.run([sys.executable, "-m", "lab", "up", "--control-plane",
                          "--workers", str(workers)], capture_output=True, text=True,
                         timeout=120, cwd=ROOT).stdout
    assert out.startswith("lab already up"), out
    assert Lab(lab.dir).state["pids"] == pids


def test_hosts_have_their_own_identity(lab):
    for h in lab.hosts:
        rt = lab.runtime(h)
        assert rt.sh("hostname").strip() == h.name
        assert rt.sh("ip -4 -o addr show dev eth0").split()[3].startswith(h.ip)
    w1 = lab.runtime(lab.host("w1"))
    assert "native.cgroupdriver=systemd" in w1.sh("cat /etc/docker/daemon.json")
    assert "daemon.json" not in lab.runtime(lab.host("w2")).sh("ls /etc/docker 2>/dev/null; true")


def test_hosts_have_their_own_processes(lab):
    """A node's /proc shows its own processes only, as a real node's does (`ss -p` reads every
    process's fds: with the whole machine's it costs a lab node 5x), and the lab knows each pod
    sandbox by the machine's pid, which `down` and power-off kill by."""
    machine = sum(1 for d in Path("/proc").iterdir() if d.name.isdigit())
    for h in lab.hosts:
        rt = lab.runtime(h)
        names = rt.sh("cat /proc/[0-9]*/comm").split()
        assert "sshd" in names and len(names) < 40 < machine, (h.name, names)
        assert rt.sh("cat /proc/1/cmdline | tr '\\0' ' '").startswith("sh -c while"), h.name
    records = [json.loads(f.read_text()) for f in (lab.dir / "pods").glob("*.json")]
    assert records
    for r in records:
        anchor = lab.state["pids"][r["node"]]["anchor"]
        assert Path(f"/proc/{r['pid']}/cmdline").read_bytes() == b"sleep\0infinity\0"
        assert (os.readlink(f"/proc/{r['pid']}/ns/pid") == os.readlink(f"/proc/{anchor}/ns/pid")
                != os.readlink("/proc/self/ns/pid"))
        node_view = lab.runtime(lab.host(r["node"])).sh(f"cat /proc/{r['node_pid']}/cmdline")
        assert node_view == "sleep\0infinity\0"


def test_no_route_out_of_the_lab(lab):
    for h in lab.hosts:
        rt = lab.runtime(h)
        assert rt.sh("ip -4 route show default").strip() == ""
        out = rt.sh("ip route get 192.0.2.2 2>&1; ip route get 8.8.8.8 2>&1", check=False)
        assert out.count("Network is unreachable") == 2, f"{h.name}: {out}"


def test_unreachable_hosts_error_alone(lab, tmp_path):
    """Refused, rejected and timed-out hosts error with `unreachable: <cause>` within the
    connect timeout and no traceback; the real hosts' tests pass."""
    doc = yaml.safe_load(lab.inventory.read_text())
    doc["all"]["children"]["kube_node"]["hosts"].update({
        "refused": {"ansible_host": "198.18.0.10", "ansible_port": 2222},
        "rejected": {"ansible_host": "198.18.0.11", "ansible_port": 2222},
        "silent": {"ansible_host": "198.18.0.250"},
    })
    inventory = tmp_path / "hosts.yaml"
    inventory.write_text(yaml.safe_dump(doc))
    start = time.monotonic()
    run = run_suite(str(inventory), tmp_path / "junit.xml", "--connect-timeout=2")
    took = time.monotonic() - start
    causes = {"refused": "unreachable: connection refused by root@198.18.0.10:2222",
              "rejected": "unreachable: cannot connect to root@198.18.0.11:2222: No route to host",
              "silent": "unreachable: connection to root@198.18.0.250:22 timed out after 2s"}
    for name, cause in causes.items():
        mine = {t: o for t, o in run.outcomes.items() if t.endswith(f"[{name}]")}
        assert mine and set(mine.values()) == {"error"}, mine
        for test in mine:
            assert cause in run.messages[test], run.messages[test]
            assert "Traceback" not in run.messages[test] and ".py:" not in run.messages[test]
    # The API knows no Node for hosts that are not nodes: cluster_nodes_ready names them
    # ("rejected" borrows cp1's address, so it matches that Node). A wrong key on a real host:
    # test_trust.py (two inventory hosts on one address and port are refused).
    assert run.outcomes["cluster_nodes_ready"] == "failed"
    message = run.messages["cluster_nodes_ready"]
    assert "- refused: no Node object" in message and "- silent: no Node object" in message
    assert "2 of 7 finding(s) failed" in message
    others = {t: o for t, o in run.outcomes.items() if t != "cluster_nodes_ready"
              and not any(t.endswith(f"[{name}]") for name in causes)}
    assert others and set(others.values()) == {"passed"}, run.output[-3000:]
    assert took < 30, f"suite took {took:.1f}s with three unreachable hosts"


def test_one_login_per_host(lab, tmp_path):
    for extra in ((), ("-n", "2")):
        before = lab.logins()
        run = run_suite(str(lab.inventory), tmp_path / "junit.xml", *extra)
        assert run.returncode == 0, run.output[-2000:]
        after = lab.logins()
        delta = {h: after[h] - before[h] for h in after}
        # One facts command per host per run, shared by xdist workers; the API credentials
        # come over a connection already open. Under xdist the controller holds the logins
        # and runs the workers' commands on them (kubeaccept.remote.broker).
        assert set(delta.values()) == {1}, f"logins per host {delta} with {extra}"


def test_bad_inventory_is_one_line(lab, tmp_path):
    bad = tmp_path / "hosts.yaml"
    bad.write_text("all:\n  children:\n    kube_node:\n      hosts: [oops\n")
    run = run_suite(str(bad), tmp_path / "junit.xml")
    assert run.returncode == 4
    assert "Traceback" not in run.output
    assert str(bad) in run.output


def test_plain_ssh_specs_reach_lab_hosts(lab, tmp_path):
    """testinfra-style --hosts=ssh://… specs work; host keys come from ~/.ssh/known_hosts."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "known_hosts").write_text((lab.dir / "ssh" / "known_hosts").read_text())
    key = lab.dir / "ssh" / "id_ed25519"
    specs = (f"ssh://root@198.18.1.1?ssh_identity_file={key},"
             f"paramiko://root@198.18.0.11:22?ssh_identity_file={key}&roles=control_plane")
    # Two of the six hosts: the cluster-wide checks would rightly miss cp2 and cp3.
    proc = subprocess.run([sys.executable, "-m", "pytest", f"--hosts={specs}", "-q",
                           "-k", "not cluster_etcd and not cluster_control_plane",
                           "-p", "no:cacheprovider", "--junitxml", str(tmp_path / "j.xml")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={"HOME": str(home), "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"})
    assert proc.returncode == 0, proc.stdout[-3000:]
    names = {c.get("name") for c in ET.parse(tmp_path / "j.xml").getroot().iter("testcase")}
    assert {"node_rp_filter[198.18.1.1]", "node_cluster_ca[198.18.0.11]",
            "lb_listening[no-lb-host]"} <= names
    # each host its role's checks; the lb's skipped once; the cluster checks not deselected
    cluster = [c for c in CHECKS if not c.per_host
               and c.id not in ("cluster_etcd", "cluster_control_plane")]
    assert len(names) == len(checks_on(WORKER)) + len(checks_on(CONTROL_PLANE)) + 1 + \
        len(cluster), sorted(names)
