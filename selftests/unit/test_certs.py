"""node_certificates / node_cluster_ca over certificates as gather.sh reports them."""

from __future__ import annotations

import base64
import datetime as dt

from kubeaccept.checks import certs
from kubeaccept.model.roles import CONTROL_PLANE
from kubeaccept.model.settings import Settings
from lab import pki

from .factory import context, facts, host, judge

CPS = (CONTROL_PLANE,)


def cert_section(pairs: dict[str, pki.Pair]) -> str:
    return "\n".join(f"{p} {base64.b64encode(pair.pem()[0]).decode()}" for p, pair in pairs.items())


def failed(findings):
    return [f for f in findings if not f.ok]


def test_expiry_window_and_expired_and_not_yet_valid():
    ca = pki.issue("kubernetes", ca=True, days=3650)
    now = dt.datetime.now(dt.UTC)
    section = cert_section({
        "/etc/kubernetes/pki/ca.crt": ca,
        "/etc/kubernetes/pki/apiserver.crt": pki.issue("kube-apiserver", ca, days=20),
        "/etc/kubernetes/pki/front-proxy-client.crt": pki.issue("fp", ca, days=1,
                                                                 not_before=now - dt.timedelta(days=3)),
        "/var/lib/kubelet/pki/kubelet-client-current.pem": pki.issue(
            "system:node:n1", ca, not_before=now + dt.timedelta(days=2)),
    })
    out = failed(judge("node_certificates", node=context(facts(certificates=section), host(roles=CPS))))
    by_path = {f.subject.split(":", 1)[1]: f for f in out}
    assert set(by_path) == {"/etc/kubernetes/pki/apiserver.crt",
                            "/etc/kubernetes/pki/front-proxy-client.crt",
                            "/var/lib/kubelet/pki/kubelet-client-current.pem"}
    assert "in 19 days" in by_path["/etc/kubernetes/pki/apiserver.crt"].observed
    assert "EXPIRED" in by_path["/etc/kubernetes/pki/front-proxy-client.crt"].observed
    assert "not valid before" in by_path["/var/lib/kubelet/pki/kubelet-client-current.pem"].observed
    ok = judge("node_certificates", node=context(facts(certificates=section), host(roles=CPS),
                                    settings=Settings(cert_expiry_days=10)))
    assert "/etc/kubernetes/pki/apiserver.crt" not in {f.subject.split(":", 1)[1] for f in failed(ok)}


def test_control_plane_without_ca_fails():
    out = failed(judge("node_certificates", node=context(facts(certificates=""), host(roles=CPS))))
    assert out and "ca.crt not found" in out[0].observed


def test_cluster_ca_majority_and_tie():
    a, b = pki.issue("kubernetes", ca=True), pki.issue("kubernetes", ca=True)
    f = {n: facts(n, certificates=cert_section({certs.CA: ca})) for n, ca in
         (("cp1", a), ("cp2", a), ("cp3", b))}
    h = {n: host(n, f"10.0.0.{i}", CPS) for i, n in enumerate(f, 1)}

    def ctx(name, names):
        return context(f[name], h[name], peers=[(h[p], f[p]) for p in names if p != name])

    assert not failed(judge("node_cluster_ca", node=ctx("cp1", f)))
    out = failed(judge("node_cluster_ca", node=ctx("cp3", f)))
    assert out and "differs from the CA of cp1, cp2" in out[0].observed
    assert failed(judge("node_cluster_ca", node=ctx("cp2", ["cp2", "cp3"])))  # 1:1, nobody is right


def test_certificate_must_be_signed_by_its_kubeadm_ca():
    ca, etcd_ca, other = (pki.issue(n, ca=True) for n in ("kubernetes", "etcd-ca", "rogue"))
    section = cert_section({
        certs.CA: ca, "/etc/kubernetes/pki/etcd/ca.crt": etcd_ca,
        "/etc/kubernetes/pki/apiserver.crt": pki.issue("kube-apiserver", ca),
        "/etc/kubernetes/pki/apiserver-etcd-client.crt": pki.issue("c", etcd_ca),
        "/etc/kubernetes/pki/etcd/peer.crt": pki.issue("cp3", other),
    })
    out = failed(judge("node_certificates", node=context(facts(certificates=section), host(roles=CPS))))
    assert [f.subject for f in out] == ["n1:/etc/kubernetes/pki/etcd/peer.crt"]
    assert "not signed by /etc/kubernetes/pki/etcd/ca.crt (issuer CN=rogue)" in out[0].observed
    assert "signed by unknown authority" in out[0].why
