"""The certificates kubeadm makes, made for the lab: real x509, kubeadm's paths and names.
ECDSA P-256 keys (kubeadm's `encryptionAlgorithm: ECDSA-P256`) keep generation instant."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
from dataclasses import dataclass

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PKI = "/etc/kubernetes/pki"
SERVER, CLIENT = ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH


@dataclass(frozen=True)
class Pair:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def pem(self) -> tuple[bytes, bytes]:
        return (self.cert.public_bytes(serialization.Encoding.PEM),
                self.key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.TraditionalOpenSSL,
                                       serialization.NoEncryption()))


def _name(cn: str, orgs=()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    return x509.Name(attrs + [x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def issue(cn: str, issuer: Pair | None = None, *, orgs=(), usages=(), dns=(), ips=(),
          days: float = 365, ca: bool = False, not_before: dt.datetime | None = None) -> Pair:
    key = ec.generate_private_key(ec.SECP256R1())
    start = not_before or dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    subject = _name(cn, orgs)
    b = (x509.CertificateBuilder().subject_name(subject)
         .issuer_name(issuer.cert.subject if issuer else subject)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(start).not_valid_after(start + dt.timedelta(days=days))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
         .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=not ca,
                                      key_cert_sign=ca, crl_sign=ca, content_commitment=False,
                                      data_encipherment=False, key_agreement=False,
                                      encipher_only=False, decipher_only=False), critical=True))
    if usages:
        b = b.add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
    sans = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    signer = issuer.key if issuer else key
    return Pair(b.sign(signer, hashes.SHA256()), key)


@dataclass(frozen=True)
class ClusterCAs:
    ca: Pair
    etcd: Pair
    front_proxy: Pair
    sa: ec.EllipticCurvePrivateKey

    @classmethod
    def new(cls) -> ClusterCAs:
        return cls(issue("kubernetes", ca=True, days=3650),
                   issue("etcd-ca", ca=True, days=3650),
                   issue("front-proxy-ca", ca=True, days=3650),
                   ec.generate_private_key(ec.SECP256R1()))


def kubeconfig(server: str, ca: Pair, user: Pair, name: str) -> bytes:
    b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
    cert, key = user.pem()
    doc = {
        "apiVersion": "v1", "kind": "Config", "current-context": f"{name}@kubernetes",
        "clusters": [{"name": "kubernetes", "cluster": {
            "server": server, "certificate-authority-data": b64(ca.pem()[0])}}],
        "contexts": [{"name": f"{name}@kubernetes",
                      "context": {"cluster": "kubernetes", "user": name}}],
        "users": [{"name": name, "user": {"client-certificate-data": b64(cert),
                                          "client-key-data": b64(key)}}],
    }
    return yaml.safe_dump(doc, sort_keys=False).encode()


def control_plane_files(cas: ClusterCAs, hostname: str, ip: str, vip: str,
                        service_ip: str = "10.96.0.1") -> dict[str, bytes]:
    """Path -> content of everything kubeadm writes under /etc/kubernetes on a control plane."""
    files: dict[str, bytes] = {}

    def put(path: str, pair: Pair) -> None:
        files[f"{PKI}/{path}.crt"], files[f"{PKI}/{path}.key"] = pair.pem()

    for path, ca in (("ca", cas.ca), ("etcd/ca", cas.etcd), ("front-proxy-ca", cas.front_proxy)):
        put(path, ca)
    api_dns = [hostname, "kubernetes", "kubernetes.default", "kubernetes.default.svc",
               "kubernetes.default.svc.cluster.local"]
    put("apiserver", issue("kube-apiserver", cas.ca, usages=[SERVER], dns=api_dns,
                           ips=[service_ip, ip, vip, "127.0.0.1"]))
    put("apiserver-kubelet-client", issue("kube-apiserver-kubelet-client", cas.ca,
                                          orgs=["kubeadm:cluster-admins"], usages=[CLIENT]))
    put("front-proxy-client", issue("front-proxy-client", cas.front_proxy, usages=[CLIENT]))
    put("apiserver-etcd-client", issue("kube-apiserver-etcd-client", cas.etcd, usages=[CLIENT]))
    etcd_names = dict(dns=[hostname, "localhost"], ips=[ip, "127.0.0.1", "::1"])
    put("etcd/server", issue(hostname, cas.etcd, usages=[SERVER, CLIENT], **etcd_names))
    put("etcd/peer", issue(hostname, cas.etcd, usages=[SERVER, CLIENT], **etcd_names))
    put("etcd/healthcheck-client", issue("kube-etcd-healthcheck-client", cas.etcd,
                                         usages=[CLIENT]))
    files[f"{PKI}/sa.key"] = cas.sa.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption())
    files[f"{PKI}/sa.pub"] = cas.sa.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    local = f"https://{ip}:6443"
    for conf, cn, orgs in (("admin.conf", "kubernetes-admin", ["system:masters"]),
                           ("controller-manager.conf", "system:kube-controller-manager", []),
                           ("scheduler.conf", "system:kube-scheduler", [])):
        user = issue(cn, cas.ca, orgs=orgs, usages=[CLIENT])
        server = f"https://{vip}:6443" if conf == "admin.conf" else local
        files[f"/etc/kubernetes/{conf}"] = kubeconfig(server, cas.ca, user, cn)
    return files


def kubelet_conf(cas: ClusterCAs, server: str) -> bytes:
    """/etc/kubernetes/kubelet.conf as kubeadm's kubelet-finalize phase leaves it: the rotated
    client certificate by path (kubelet-client-current.pem), not inline."""
    pem = "/var/lib/kubelet/pki/kubelet-client-current.pem"
    doc = {
        "apiVersion": "v1", "kind": "Config", "current-context": "system:node@kubernetes",
        "clusters": [{"name": "kubernetes", "cluster": {
            "server": server,
            "certificate-authority-data": base64.b64encode(cas.ca.pem()[0]).decode()}}],
        "contexts": [{"name": "system:node@kubernetes",
                      "context": {"cluster": "kubernetes", "user": "system:node"}}],
        "users": [{"name": "system:node", "user": {"client-certificate": pem,
                                                   "client-key": pem}}],
    }
    return yaml.safe_dump(doc, sort_keys=False).encode()


def kubelet_client_pem(cas: ClusterCAs, hostname: str, days: float = 365) -> bytes:
    """/var/lib/kubelet/pki/kubelet-client-current.pem: certificate and key in one file."""
    cert, key = issue(f"system:node:{hostname}", cas.ca, orgs=["system:nodes"],
                      usages=[CLIENT], days=days).pem()
    return cert + key
