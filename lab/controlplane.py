"""The lab's control plane, run as kubeadm's static pods run it: on every control-plane host a
member of a 3-node etcd (TLS, peers on 2380, clients on 2379), a kube-apiserver on 6443,
a kube-controller-manager and a kube-scheduler (leader-elected), with kubeadm's flags and
certificate paths. Real binaries, built by lab.build."""

from __future__ import annotations

import ssl
import time
import urllib.request
from pathlib import Path

from .build import DEFAULT_CACHE_DIR, ensure
from .plan import POD_SUBNET, SERVICE_SUBNET, LabHost
from .system import LabError

PKI = "/etc/kubernetes/pki"
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")


def binaries(cache_dir: Path = DEFAULT_CACHE_DIR) -> dict[str, Path]:
    """Paths of the control-plane binaries, building them the first time (minutes)."""
    return {name: ensure(name, cache_dir) for name in (*COMPONENTS, "etcdctl", "kwok",
                                                        "coredns")}


def etcd_argv(binary: Path, host: LabHost, cps: list[LabHost], state: str = "new") -> list[str]:
    """`state`: "new" when the cluster is first made; "existing" afterwards, so that a member
    started with an empty data dir (re-added after `etcdctl member remove`) joins it. A member
    with data ignores both, as etcd does."""
    cluster = ",".join(f"{c.name}=https://{c.ip}:2380" for c in cps)
    return [str(binary), f"--name={host.name}", "--data-dir=/var/lib/etcd",
            f"--listen-client-urls=https://127.0.0.1:2379,https://{host.ip}:2379",
            f"--advertise-client-urls=https://{host.ip}:2379",
            f"--listen-peer-urls=https://{host.ip}:2380",
            f"--initial-advertise-peer-urls=https://{host.ip}:2380",
            f"--initial-cluster={cluster}", f"--initial-cluster-state={state}",
            "--initial-cluster-token=kubeaccept-lab",
            "--listen-metrics-urls=http://127.0.0.1:2381", "--snapshot-count=10000",
            f"--cert-file={PKI}/etcd/server.crt", f"--key-file={PKI}/etcd/server.key",
            "--client-cert-auth=true", f"--trusted-ca-file={PKI}/etcd/ca.crt",
            f"--peer-cert-file={PKI}/etcd/peer.crt", f"--peer-key-file={PKI}/etcd/peer.key",
            "--peer-client-cert-auth=true", f"--peer-trusted-ca-file={PKI}/etcd/ca.crt",
            "--log-level=warn"]


def apiserver_argv(binary: Path, host: LabHost) -> list[str]:
    return [str(binary), f"--advertise-address={host.ip}", "--secure-port=6443",
            "--allow-privileged=true", "--authorization-mode=Node,RBAC",
            f"--client-ca-file={PKI}/ca.crt", "--enable-admission-plugins=NodeRestriction",
            "--enable-bootstrap-token-auth=true",
            f"--etcd-cafile={PKI}/etcd/ca.crt",
            f"--etcd-certfile={PKI}/apiserver-etcd-client.crt",
            f"--etcd-keyfile={PKI}/apiserver-etcd-client.key",
            "--etcd-servers=https://127.0.0.1:2379",
            f"--kubelet-client-certificate={PKI}/apiserver-kubelet-client.crt",
            f"--kubelet-client-key={PKI}/apiserver-kubelet-client.key",
            "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
            f"--proxy-client-cert-file={PKI}/front-proxy-client.crt",
            f"--proxy-client-key-file={PKI}/front-proxy-client.key",
            "--requestheader-allowed-names=front-proxy-client",
            f"--requestheader-client-ca-file={PKI}/front-proxy-ca.crt",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-username-headers=X-Remote-User",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={PKI}/sa.pub",
            f"--service-account-signing-key-file={PKI}/sa.key",
            f"--service-cluster-ip-range={SERVICE_SUBNET}",
            f"--tls-cert-file={PKI}/apiserver.crt",
            f"--tls-private-key-file={PKI}/apiserver.key"]


def controller_manager_argv(binary: Path) -> list[str]:
    conf = "/etc/kubernetes/controller-manager.conf"
    return [str(binary), f"--authentication-kubeconfig={conf}",
            f"--authorization-kubeconfig={conf}", "--bind-address=127.0.0.1",
            f"--client-ca-file={PKI}/ca.crt", "--cluster-name=kubernetes",
            f"--cluster-signing-cert-file={PKI}/ca.crt",
            f"--cluster-signing-key-file={PKI}/ca.key",
            "--controllers=*,bootstrapsigner,tokencleaner", f"--kubeconfig={conf}",
            "--leader-elect=true", f"--requestheader-client-ca-file={PKI}/front-proxy-ca.crt",
            f"--root-ca-file={PKI}/ca.crt", f"--service-account-private-key-file={PKI}/sa.key",
            "--use-service-account-credentials=true", "--allocate-node-cidrs=true",
            f"--cluster-cidr={POD_SUBNET}", f"--service-cluster-ip-range={SERVICE_SUBNET}"]


def scheduler_argv(binary: Path) -> list[str]:
    conf = "/etc/kubernetes/scheduler.conf"
    return [str(binary), f"--authentication-kubeconfig={conf}",
            f"--authorization-kubeconfig={conf}", "--bind-address=127.0.0.1",
            f"--kubeconfig={conf}", "--leader-elect=true"]


def argvs(bins: dict[str, Path], host: LabHost, cps: list[LabHost],
          etcd_state: str = "new") -> dict[str, list[str]]:
    return {"etcd": etcd_argv(bins["etcd"], host, cps, etcd_state),
            "kube-apiserver": apiserver_argv(bins["kube-apiserver"], host),
            "kube-controller-manager": controller_manager_argv(bins["kube-controller-manager"]),
            "kube-scheduler": scheduler_argv(bins["kube-scheduler"])}


def wait_ready(ca_pem: bytes, address: str, timeout: float = 120) -> None:
    """GET https://ADDRESS:6443/readyz until it says ok (anonymous: system:public-info-viewer)."""
    ctx = ssl.create_default_context(cadata=ca_pem.decode())
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"https://{address}:6443/readyz", context=ctx,
                                        timeout=3) as resp:
                body = resp.read().decode()
                if resp.status == 200 and body.strip() == "ok":
                    return
                last = f"{resp.status} {body[:200]}"
        except OSError as exc:
            last = str(getattr(exc, "reason", exc))
        time.sleep(1)
    raise LabError(f"kube-apiserver on {address} not ready after {timeout:g}s: {last}")
