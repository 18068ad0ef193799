"""Read-only by default, proven on the lab: every program the suite starts on a host (traced
under sshd, sessions included) is on kubeaccept.facts.allowlist, and no file on any host changes.
The audit itself catches a write."""

from __future__ import annotations

import subprocess

from lab import audit, faults

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
    # the DNS query: bash's /dev/udp with dd and od, not dig (13 ms of node CPU)
    assert "etcdctl" in names and {"dd", "od"} <= names and "dig" not in names
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


def _lab_secrets(lab) -> list[str]:
    """The lab's real secrets the suite could meet: admin.conf's client key (the suite reads
    admin.conf over SSH for the API checks) and the body of every private key on cp1."""
    files = lab.dir / "hosts" / "cp1" / "files" / "etc" / "kubernetes"
    admin = (files / "admin.conf").read_text()
    out = [ln.split(":", 1)[1].strip() for ln in admin.splitlines() if "client-key-data" in ln]
    for key in (files / "pki").rglob("*.key"):
        lines = [ln for ln in key.read_text().splitlines() if ln and not ln.startswith("-----")]
        out += lines[:2]
    assert len(out) >= 5, out
    return out


def test_no_secret_reaches_any_report(lab, tmp_path):
    """A crash-looping pod's termination message holds a kubeadm join line (token,
    certificate key), a private key and a password: the failure says what it is, masked;
    neither they nor the lab's real keys appear in JUnit, the terminal (serial and -n 2) or
    any file the run wrote."""
    lab.inject("secrets-in-evidence")
    try:
        secrets = [*faults.SECRETS, *_lab_secrets(lab)]
        for extra in ((), ("-n", "2")):
            reports = tmp_path / f"reports{len(extra)}"
            reports.mkdir()
            run = run_suite(str(lab.inventory), reports / "junit.xml", "-rA", *extra)
            assert run.outcomes["cluster_pods_healthy"] == "failed"
            assert "--certificate-key ***" in run.messages["cluster_pods_healthy"]
            texts = {"output": run.output}
            texts.update({str(p): p.read_text(errors="replace") for p in reports.rglob("*")
                          if p.is_file()})
            for where, text in texts.items():
                leaked = [s[:12] for s in secrets if s in text]
                assert not leaked, f"{where}: {leaked}"
    finally:
        lab.heal()
