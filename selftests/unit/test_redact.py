"""Secrets are masked in every report text; the words around them (and public values such as
the CA certificate hash) stay. Inputs are shaped as the real programs print them."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

from kubeaccept.model.redact import redact

FIX = Path(__file__).parent / "fixtures" / "secrets"
ROOT = Path(__file__).resolve().parents[2]

# `kubeadm init --upload-certs` prints the join command like this (kubeadm docs, "Steps for
# the first control plane node"); the token is "[a-z0-9]{6}.[a-z0-9]{16}".
JOIN = ("kubeadm join 192.168.0.200:6443 --token 9vr73a.a8uxyaju799qwdjv "
        "--discovery-token-ca-cert-hash "
        "sha256:7c2e69131a36ae2a042a339b33381c6d0d43887e2de83720eff5359e26aec866 "
        "--control-plane --certificate-key "
        "f8902e114ef118304e561c3ecd4d0b543adc226b7a07f675f56564185ffe0c07")


def test_kubeadm_join_line_keeps_the_public_parts():
    out = redact(JOIN)
    assert "a8uxyaju799qwdjv" not in out and "f8902e114ef1" not in out
    assert "--token 9vr73a.***" in out and "--certificate-key ***" in out
    # the CA hash is public (it pins the CA; it opens nothing)
    assert "sha256:7c2e69131a36ae2a042a339b33381c6d0d43887e2de83720eff5359e26aec866" in out


def test_kubeadm_config_certificate_key_and_bootstrap_token():
    text = ("apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n"
            "bootstrapTokens:\n- token: abcdef.0123456789abcdef\n"
            'certificateKey: "e6a2eb8581237ab72a4f494f30285ec12a9694d750b9785706a83bfcbbbd2204"\n')
    out = redact(text)
    assert "0123456789abcdef" not in out and "e6a2eb8581237ab7" not in out
    assert "kind: InitConfiguration" in out


def test_a_kubeconfig_as_kubeadm_writes_it():
    conf = (FIX / "admin.conf").read_text()
    key_b64 = next(ln.split(": ", 1)[1] for ln in conf.splitlines() if "client-key-data" in ln)
    out = redact(conf)
    assert key_b64 not in out and "client-key-data: ***" in out
    # the certificates are not secrets; the server stays readable
    assert "client-certificate-data: LS0t" in out and "https://192.168.0.200:6443" in out


def test_private_keys_plain_base64_and_cut_short():
    pem = (FIX / "ec.key").read_text()
    body = pem.splitlines()[1]
    assert body not in redact(f"evidence: {pem}")
    assert body not in redact(f"truncated: {pem[:80]}")  # no END line: masked to the end
    b64 = base64.b64encode(pem.encode()).decode()
    assert b64[40:80] not in redact(f"/etc/kubernetes/pki/sa.key {b64}")
    # a base64 certificate (also starts LS0tLS1CRUdJTi) is kept
    cert = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----")
    assert cert.decode() in redact(cert.decode())


def test_passwords_in_inventories_configs_urls_and_power_commands():
    cases = {
        # Ansible INI host line
        "node1 ansible_host=10.0.0.1 ansible_password=Hunter2! ansible_become_password=s3cr3t":
            ("Hunter2!", "s3cr3t"),
        # containerd registry auth (config.toml) and a proxy URL in a systemd drop-in
        '[plugins."io.containerd.grpc.v1.cri".registry.configs."r.io".auth]\n'
        '  password = "regpass"': ("regpass",),
        'Environment="HTTPS_PROXY=http://proxyuser:proxypass@10.0.0.9:3128"': ("proxypass",),
        # HAProxy stats page (haproxy.cfg)
        "listen stats\n  bind *:8404\n  stats auth admin:haproxypass": ("haproxypass",),
        # a power-on command template
        "'ipmitool -I lanplus -H 10.0.0.21 -U admin -P ipmipass chassis power on'":
            ("ipmipass",),
        "Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.payload": ("eyJhbGciOiJSUzI1NiJ9",),
    }
    for text, secrets in cases.items():
        out = redact(text)
        for secret in secrets:
            assert secret not in out, (text, out)
        assert "***" in out


def test_ordinary_diagnoses_are_untouched():
    for text in ("sudo: a password is required",
                 "Secret kube-system/kubeadm-certs is gone (expected it within 2h)",
                 "net.ipv4.conf.all.rp_filter 2 (expected 0 or 1)",
                 "member cp2 (10.0.0.2:2379) unhealthy: context deadline exceeded",
                 "coredns-687f59d797-w67bb on w2"):
        assert redact(text) == text


def test_reports_are_redacted_in_junit_and_terminal(tmp_path):
    """The pytest hook masks what a test's failure, sections and properties carry."""
    test = tmp_path / "test_leak.py"
    test.write_text(
        "import pytest\n\n"
        "def test_leak(record_property):\n"
        f"    record_property('evidence', {JOIN!r})\n"
        "    print('ansible_password=Hunter2!')\n"
        f"    pytest.fail({JOIN!r}, pytrace=False)\n")
    junit = tmp_path / "j.xml"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-p", "kubeaccept.suite.plugin", "-o", "junit_logging=all",
                           f"--junitxml={junit}", "-rA", str(test)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    out = proc.stdout + proc.stderr + junit.read_text()
    assert proc.returncode == 1 and "--token 9vr73a.***" in out
    for secret in ("a8uxyaju799qwdjv", "f8902e114ef118304e5", "Hunter2!"):
        assert secret not in out, secret
