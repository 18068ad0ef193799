"""Read-only by default, proven on the lab: every program the suite starts on a host (traced
under sshd, sessions included) is on kubeaccept.allowlist, and no file on any host changes.
The audit itself catches a write."""

from __future__ import annotations

import subprocess

from kubeaccept.lab import audit

from .suite import run_suite


def test_the_suite_runs_only_allowed_commands_and_changes_no_file(lab, tmp_path):
    before = audit.snapshot(lab)
    with audit.Tracer(lab, tmp_path / "trace") as tracer:
        run = run_suite(str(lab.inventory), tmp_path / "junit.xml", "-n", "2")
    assert run.returncode == 0, run.output[-2000:]
    execs = tracer.execs()
    names = {e.argv[0].rsplit("/", 1)[-1] for e in execs}
    # the trace saw the sessions and the facts script's programs on every host
    assert {e.host for e in execs} == {h.name for h in lab.hosts}
    assert {"bash", "sh", "cat", "ss", "iptables-save", "nft", "ip"} <= names, names
    assert "etcdctl" in names and "dig" in names
    assert audit.violations(execs) == []
    assert audit.changed(before, audit.snapshot(lab)) == []


def test_the_audit_catches_a_command_off_the_list_and_a_written_file(lab, tmp_path):
    host = next(h for h in lab.hosts if h.name == "w1")
    before = audit.snapshot(lab)
    probe = "/etc/kubeaccept-audit-probe"
    ssh = ["ssh", "-F", "none", "-i", str(lab.dir / "ssh" / "id_ed25519"),
           "-o", f"UserKnownHostsFile={lab.dir / 'ssh' / 'known_hosts'}",
           "-o", "BatchMode=yes", f"root@{host.ip}"]
    try:
        with audit.Tracer(lab, tmp_path / "trace") as tracer:
            subprocess.run([*ssh, f"touch {probe}"], check=True, timeout=30,
                           capture_output=True)
        bad = audit.violations(tracer.execs())
        assert any("w1: bash -c 'touch /etc/kubeaccept-audit-probe'" in b for b in bad), bad
        assert any("w1: touch is not on the allow-list" in b for b in bad), bad
        assert audit.changed(before, audit.snapshot(lab)) == \
            ["w1/etc.upper/kubeaccept-audit-probe: created"]
    finally:
        subprocess.run([*ssh, f"rm -f {probe}"], timeout=30, capture_output=True)
