"""Certificates: kubeadm's PKI valid and not about to expire; one cluster CA on every master."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from kubeaccept.facts import NodeFacts
from kubeaccept.model.findings import Finding, passed
from kubeaccept.model.registry import Context, check
from kubeaccept.model.roles import CONTROL_PLANE, NODE

CA = "/etc/kubernetes/pki/ca.crt"
EXPIRED_WHY = {
    "kubelet": "kubelet cannot authenticate to the API: the node goes NotReady "
               "(\"x509: certificate has expired or is not yet valid\")",
    "default": "components using it fail TLS with \"x509: certificate has expired or is not "
               "yet valid\": the API, etcd or kubectl stop working on this control plane",
}


def _fix(path: str) -> str:
    if "kubelet" in path:
        return ("kubelet rotates it when rotateCertificates is on: check "
                "`journalctl -u kubelet | grep -i certificate`; or re-join the node")
    return ("kubeadm certs check-expiration; kubeadm certs renew all (then restart the "
            "control-plane static pods); keep the cluster upgraded: upgrades renew them")


def issuer_path(path: str) -> str | None:
    """The CA kubeadm signs this certificate with (None for the CAs themselves)."""
    name = path.rsplit("/", 1)[-1]
    if name.endswith("ca.crt"):
        return None
    if "/pki/etcd/" in path or name == "apiserver-etcd-client.crt":
        return "/etc/kubernetes/pki/etcd/ca.crt"
    if name == "front-proxy-client.crt":
        return "/etc/kubernetes/pki/front-proxy-ca.crt"
    return CA


def _signed_by(cert: x509.Certificate, ca_pem: bytes | None) -> bool | None:
    ca = _load(ca_pem) if ca_pem else None
    if ca is None or isinstance(ca, str):
        return None
    try:
        cert.verify_directly_issued_by(ca)
        return True
    except (ValueError, TypeError, InvalidSignature):
        return False


def _load(pem: bytes) -> x509.Certificate | str:
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        return f"unreadable certificate: {exc}"


@check("node_certificates",
       ("kubeadm's and kubelet's certificates valid > 30 days and signed by the right kubeadm"
        " CA"),
       area="node",
       roles=NODE,
       reads=("/etc/kubernetes/pki/**.crt",
              "kubeconfigs' client certificates",
              "kubelet-client-current.pem (certificate only)"),
       asserts=("every kubeadm certificate (`/etc/kubernetes/pki/**.crt`, the kubeconfigs' "
                "client certificates, kubelet's `kubelet-client-current.pem`) is valid for "
                "longer than `--cert-expiry-days` (30) and signed by the CA kubeadm signs it "
                "with (`ca.crt`, `etcd/ca.crt`, `front-proxy-ca.crt`); only certificates "
                "leave the node, never keys"),
       prevents=("`x509: certificate has expired or is not yet valid`; `signed by unknown "
                 "authority`"))
def node_certificates(ctx: Context) -> list[Finding]:
    node = ctx.node
    now = dt.datetime.now(dt.UTC)
    window = dt.timedelta(days=node.settings.cert_expiry_days)
    certs = node.facts.certificates
    findings = []
    if CONTROL_PLANE in node.host.roles and CA not in certs:
        findings.append(Finding(f"{node.host.name}:{CA}", False, f"{CA} not found",
                                "kubeadm's PKI under /etc/kubernetes/pki",
                                "a control plane without the cluster CA cannot serve or join",
                                "kubeadm join --control-plane with --certificate-key, or copy "
                                "the PKI from another control plane"))
    for path, pem in sorted(certs.items()):
        cert = _load(pem)
        subject = f"{node.host.name}:{path}"
        if isinstance(cert, str):
            findings.append(Finding(subject, False, cert, "a valid certificate",
                                    EXPIRED_WHY["default"], _fix(path)))
            continue
        left = cert.not_valid_after_utc - now
        observed = (f"expires {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC, in "
                    f"{left.days} days" if left.total_seconds() > 0 else
                    f"EXPIRED {-left.days} days ago ({cert.not_valid_after_utc:%Y-%m-%d})")
        if cert.not_valid_before_utc > now:
            observed = f"not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
        evidence = (f"{path}: subject {cert.subject.rfc4514_string()}, "
                    f"issuer {cert.issuer.rfc4514_string()}",)
        expected = f"valid for more than {node.settings.cert_expiry_days:g} days"
        ok = cert.not_valid_before_utc <= now and left > window
        why, fix = EXPIRED_WHY["kubelet" if "kubelet" in path else "default"], _fix(path)
        ca_path = issuer_path(path)
        if ok and _signed_by(cert, certs.get(ca_path)) is False:
            ok, observed = False, f"not signed by {ca_path} (issuer {cert.issuer.rfc4514_string()})"
            expected = f"signed by {ca_path}"
            why = ("peers and clients that trust the cluster's CA reject it: \"x509: "
                   "certificate signed by unknown authority\" / \"remote error: tls: bad "
                   "certificate\"")
            fix = (f"re-issue it from {ca_path}: kubeadm certs renew <name>, or kubeadm init "
                   "phase certs <name> after moving the bad one away")
        findings.append(Finding(subject, ok, observed, expected,
                                "" if ok else why, "" if ok else fix, evidence))
    if not findings:
        findings.append(passed(node.host.name, "no kubeadm certificates on this node", ""))
    return findings


def _ca_fingerprint(facts: NodeFacts) -> str | None:
    cert = _load(facts.certificates.get(CA, b""))
    if isinstance(cert, str):
        return None
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


@check("node_cluster_ca",
       "every control plane has the same cluster CA",
       area="control plane",
       roles=(CONTROL_PLANE,),
       reads=("/etc/kubernetes/pki/ca.crt on every control plane",),
       peers=lambda host, inventory, settings: [h.name for h in
                                                inventory.by_role(CONTROL_PLANE)],
       asserts=("`/etc/kubernetes/pki/ca.crt` is the same on every control plane (the "
                "majority's is the cluster's; a tie fails all)"),
       prevents="clients sent to the odd master by the LB fail TLS")
def node_cluster_ca(ctx: Context) -> list[Finding]:
    """Every control plane holds the same CA; the majority's is taken as the cluster's."""
    node = ctx.node
    prints = {node.host.name: _ca_fingerprint(node.facts)}
    for peer in node.inventory.by_role(CONTROL_PLANE):
        facts = node.peers.get(peer.name)
        if peer.name != node.host.name and isinstance(facts, NodeFacts):
            prints[peer.name] = _ca_fingerprint(facts)
    mine = prints[node.host.name]
    counts = Counter(p for p in prints.values() if p)
    majority = counts.most_common(1)[0][0] if counts else None
    tie = len(counts) > 1 and len(set(counts.values())) == 1
    evidence = tuple(f"{h}: {CA} sha256 {p[:16] if p else 'missing'}"
                     for h, p in sorted(prints.items()))
    if mine is None:
        return [Finding(node.host.name, False, f"{CA} missing or unreadable",
                        "the cluster CA", "this control plane cannot verify the others",
                        "copy the cluster's PKI (kubeadm join --control-plane)", evidence)]
    others = [h for h, p in prints.items() if p == mine and h != node.host.name]
    if mine == majority and not tie:
        return [passed(node.host.name, f"same CA as {len(others)} other control plane(s)",
                       "the CA the other control planes have", *evidence)]
    differ = ", ".join(h for h, p in sorted(prints.items()) if p != mine)
    return [Finding(
        node.host.name, False, f"{CA} differs from the CA of {differ}",
        "the CA the other control planes have",
        "certificates issued on this control plane are not trusted by the others: kubelets "
        "and clients fail with \"x509: certificate signed by unknown authority\" when the LB "
        "sends them here",
        "copy /etc/kubernetes/pki/{ca,front-proxy-ca,sa}.* and etcd/ca.* from a healthy control "
        "plane (kubeadm init phase upload-certs --upload-certs; kubeadm join --control-plane), "
        "then regenerate this node's certificates", evidence)]
