"""The files a kubeadm node has, as the lab writes them into each host's own /etc and /var/lib."""

from __future__ import annotations

import json
import os
from pathlib import Path

from kubeaccept.model.roles import CONTROL_PLANE

from . import pki
from .plan import FIRST_CONTROL_PLANE, KUBE_VERSION, POD_SUBNET, SERVICE_SUBNET, VIP, LabHost

DAEMON_JSON = {  # field report 03
    "exec-opts": ["native.cgroupdriver=systemd"],
    "log-driver": "json-file",
    "log-opts": {"max-size": "100m"},
    "storage-driver": "overlay2",
}

CONTAINERD_TOML = """\
version = 2

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "registry.k8s.io/pause:3.10"
    [plugins."io.containerd.grpc.v1.cri".containerd]
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes]
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
          runtime_type = "io.containerd.runc.v2"
          [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
            SystemdCgroup = {systemd}
"""

KUBELET_CONFIG = """\
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: /etc/kubernetes/pki/ca.crt
authorization:
  mode: Webhook
cgroupDriver: {driver}
clusterDNS:
- 10.96.0.10
clusterDomain: cluster.local
healthzBindAddress: 127.0.0.1
healthzPort: 10248
rotateCertificates: true
staticPodPath: /etc/kubernetes/manifests
"""

ENDPOINTS = {
    "containerd": "unix:///run/containerd/containerd.sock",
    "docker": "unix:///var/run/cri-dockerd.sock",
}

FSTAB = """\
# /etc/fstab: static file system information.
UUID=4f0c2d6e-9a51-4f7e-8a2b-1c3d5e7f9a0b /     ext4 errors=remount-ro 0 1
UUID=9b1e2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d /boot ext4 defaults          0 2
#/swap.img      none    swap    sw      0       0
/var/lib/swap-spare.img none swap sw,noauto 0 0
"""

SYSCTL_K8S = """\
net.bridge.bridge-nf-call-iptables = 1
net.bridge.bridge-nf-call-ip6tables = 1
net.ipv4.ip_forward = 1
net.ipv4.conf.all.rp_filter = 1
"""

APISERVER_MANIFEST = """\
apiVersion: v1
kind: Pod
metadata:
  labels:
    component: kube-apiserver
    tier: control-plane
  name: kube-apiserver
  namespace: kube-system
spec:
  containers:
  - command:
    - kube-apiserver
    - --advertise-address={ip}
    - --etcd-servers=https://127.0.0.1:2379
    - --service-cluster-ip-range={service}
    image: registry.k8s.io/kube-apiserver:{version}
    name: kube-apiserver
  hostNetwork: true
"""


def node_files(host: LabHost) -> dict[str, str]:
    """Path -> content for one host (only nodes; the LB keeps the machine's files)."""
    files = {
        "/etc/hostname": host.name + "\n",
        "/etc/fstab": FSTAB,
        # a spare swap file systemd does not activate (noauto): the healthy lab has one
        "/var/lib/swap-spare.img": "\0" * 4096,
        "/etc/sysctl.d/k8s.conf": SYSCTL_K8S,
        "/var/lib/kubelet/config.yaml": KUBELET_CONFIG.format(driver="systemd"),
        "/var/lib/kubelet/kubeadm-flags.env":
            f'KUBELET_KUBEADM_ARGS="--container-runtime-endpoint={ENDPOINTS[host.runtime]} '
            f'--node-ip={host.ip} --pod-infra-container-image=registry.k8s.io/pause:3.10"\n',
        "/etc/containerd/config.toml": CONTAINERD_TOML.replace("{systemd}", "true"),
    }
    if host.runtime == "docker":
        files["/etc/docker/daemon.json"] = json.dumps(DAEMON_JSON, indent=2) + "\n"
    if CONTROL_PLANE in host.roles:
        files["/etc/kubernetes/manifests/kube-apiserver.yaml"] = APISERVER_MANIFEST.format(
            ip=host.ip, service=SERVICE_SUBNET, version=KUBE_VERSION)
    return files


def iptables_rules(host: LabHost, tcp_ports: list[int]) -> str:
    """A firewalld-like INPUT that rejects what it does not allow, a Docker-style FORWARD
    policy DROP, and the chains kube-proxy and flannel add."""
    ports = ",".join(str(p) for p in tcp_ports)
    return f"""\
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:FLANNEL-FWD - [0:0]
:KUBE-FIREWALL - [0:0]
:KUBE-FORWARD - [0:0]
-A INPUT -j KUBE-FIREWALL
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A INPUT -i lo -j ACCEPT
-A INPUT -p icmp -j ACCEPT
-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
-A INPUT -p tcp -m multiport --dports {ports} -j ACCEPT
-A INPUT -p udp -m udp --dport 8472 -j ACCEPT
-A INPUT -p tcp -m tcp --dport 30000:32767 -j ACCEPT
-A INPUT -j REJECT --reject-with icmp-host-prohibited
-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -m comment --comment "flanneld forward" -j FLANNEL-FWD
-A FLANNEL-FWD -s {POD_SUBNET} -m comment --comment "flanneld forward" -j ACCEPT
-A FLANNEL-FWD -d {POD_SUBNET} -m comment --comment "flanneld forward" -j ACCEPT
-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment "block incoming localnet connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
COMMIT
"""


def haproxy_cfg(control_planes: list[LabHost]) -> str:
    servers = "\n".join(f"    server {h.name} {h.ip}:6443 check check-ssl verify none "
                        "inter 2s fall 2 rise 2" for h in control_planes)
    return f"""\
global
    maxconn 4096
    log stderr format short local0 warning

defaults
    mode tcp
    log global
    timeout connect 5s
    timeout client 60s
    timeout server 60s

frontend kube-apiserver
    bind {VIP}:6443
    default_backend kube-apiserver

backend kube-apiserver
    # As kubeadm's HA guide: send traffic only to apiservers whose /readyz says ok.
    option httpchk GET /readyz HTTP/1.0
    http-check expect status 200
    balance roundrobin
{servers}
"""


def host_files(host: LabHost, cas: pki.ClusterCAs) -> dict[str, bytes]:
    """Everything the lab writes into a node: configs, and kubeadm's PKI on control planes."""
    files = {path: text.encode() for path, text in node_files(host).items()}
    files["/var/lib/kubelet/pki/kubelet-client-current.pem"] = pki.kubelet_client_pem(
        cas, host.name)
    # kubeadm 1.37: kubelet.conf names the controlPlaneEndpoint, except on a control plane
    # that joined, whose kubelet talks to its own apiserver (cmd/phases/join/kubelet.go).
    joined = CONTROL_PLANE in host.roles and host.name != FIRST_CONTROL_PLANE
    files["/etc/kubernetes/kubelet.conf"] = pki.kubelet_conf(
        cas, f"https://{host.ip if joined else VIP}:6443")
    if CONTROL_PLANE in host.roles:
        files.update(pki.control_plane_files(cas, host.name, host.ip, VIP))
    return files


def write_tree(root: Path, files: dict[str, bytes]) -> None:
    for path, data in files.items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        secret = path.endswith((".key", ".pem", ".conf"))
        os.chmod(target, 0o600 if secret else 0o644)
