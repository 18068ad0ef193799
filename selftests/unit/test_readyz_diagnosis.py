"""cluster_control_plane's diagnosis follows what happened to the /readyz request: the answers
are made by the real client (apiprobe.get: Python's ssl over OpenSSL, urllib) against real
local servers — a closed port, a listener that never answers, TLS servers whose certificate
misses the address or comes from another CA."""

from __future__ import annotations

import socket
import ssl

import pytest

from kubeaccept.api import apiprobe
from kubeaccept.checks.controlplane import readyz_diagnosis

from . import localserver


def _tls_server(tmp_path, ca, ips):
    from lab import pki
    pair = pki.issue("kube-apiserver", ca, usages=[pki.SERVER], ips=ips)
    cert, key = pair.pem()
    (tmp_path / "s.crt").write_bytes(cert)
    (tmp_path / "s.key").write_bytes(key)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "s.crt", tmp_path / "s.key")

    def handshake(conn):
        with ctx.wrap_socket(conn, server_side=True) as tls:
            tls.recv(1024)
    return localserver.serve(handshake)


@pytest.fixture
def ca():
    from lab import pki
    return pki.issue("kubernetes", ca=True)


def diagnose(url, ca_pem, timeout=2.0):
    answer = apiprobe.get(url, ca_pem, timeout)
    assert answer.status is None, answer
    return answer, *readyz_diagnosis(answer)


def test_a_certificate_without_the_address(tmp_path, ca):
    port, stop = _tls_server(tmp_path, ca, ["10.96.0.1"])
    try:
        answer, why, fix = diagnose(f"https://127.0.0.1:{port}/readyz", ca.pem()[0])
    finally:
        stop()
    assert "IP address mismatch" in answer.body  # OpenSSL's words, through Python's ssl
    assert "does not cover 127.0.0.1" in why and "apiServer.certSANs" in fix


def test_a_certificate_from_another_ca(tmp_path, ca):
    from lab import pki
    port, stop = _tls_server(tmp_path, pki.issue("rogue", ca=True), ["127.0.0.1"])
    try:
        answer, why, fix = diagnose(f"https://127.0.0.1:{port}/readyz", ca.pem()[0])
    finally:
        stop()
    assert "certificate verify failed" in answer.body
    assert "not signed by the cluster CA" in why and "node_cluster_ca" in fix


def test_a_closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    answer, why, fix = diagnose(f"https://127.0.0.1:{port}/readyz", None)
    assert "Connection refused" in answer.body
    assert "nothing listens on 127.0.0.1:6443" in why and "crictl ps -a" in fix


def test_a_listener_that_never_answers():
    port, stop = localserver.serve(lambda conn: None)  # accepts, never answers
    try:
        answer, why, fix = diagnose(f"https://127.0.0.1:{port}/readyz", None, timeout=0.5)
    finally:
        stop()
    assert "timed out" in answer.body
    assert "did not answer in time" in why and "nc -vz" in fix


def test_an_http_answer_keeps_the_readyz_diagnosis():
    from kubeaccept.model.apistate import Answer
    why, fix = readyz_diagnosis(Answer("https://192.0.2.1:6443/readyz", 500, "[-]etcd failed"))
    assert "the [-] lines" in fix
