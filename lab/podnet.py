"""The lab's pod network, laid out as flannel's VXLAN backend lays it out on each node: a
`cni0` bridge for the node's podCIDR, a `flannel.1` VXLAN device (VNI 1, UDP 8472) with a
route, a permanent neighbour and an FDB entry per other node, flannel's MASQUERADE, and the
NAT rules kube-proxy writes for the kube-dns and kubernetes Services."""

from __future__ import annotations

import hashlib
import ipaddress

from .plan import POD_SUBNET, SERVICE_SUBNET, LabHost

VXLAN_PORT = 8472


def gateway(cidr: str) -> str:
    """cni0's address. flannel takes the first; kwok hands pod IPs out from the first, so the
    lab's cni0 takes the last one instead."""
    net = ipaddress.ip_network(cidr)
    return str(net.broadcast_address - 1)


def vtep_mac(host: LabHost) -> str:
    return "0e:6b:" + ":".join(f"{b:02x}" for b in host.index.to_bytes(4, "big"))


def node_script(host: LabHost, cidr: str, peers: list[tuple[LabHost, str]]) -> str:
    """Shell run inside the node: idempotent (the devices are re-created)."""
    net = ipaddress.ip_network(cidr)
    lines = [
        "ip link del cni0 2>/dev/null || true", "ip link del flannel.1 2>/dev/null || true",
        "ip link add cni0 type bridge",
        f"ip addr add {gateway(cidr)}/{net.prefixlen} dev cni0",
        "ip link set cni0 up",
        f"ip link add flannel.1 type vxlan id 1 local {host.ip} dev eth0 "
        f"dstport {VXLAN_PORT} nolearning",
        f"ip link set flannel.1 address {vtep_mac(host)} mtu 1450",
        f"ip addr add {net.network_address}/32 dev flannel.1",
        "ip link set flannel.1 up",
        # A node routes Service addresses by its default route (kube-proxy's NAT happens
        # after routing); the lab's nodes have none, so that nothing leaves the lab.
        f"ip route replace {SERVICE_SUBNET} dev eth0",
    ]
    for peer, peer_cidr in peers:
        pnet = ipaddress.ip_network(peer_cidr)
        mac = vtep_mac(peer)
        lines += [
            f"ip route replace {pnet} via {pnet.network_address} dev flannel.1 onlink",
            f"ip neigh replace {pnet.network_address} lladdr {mac} dev flannel.1 nud permanent",
            f"bridge fdb append {mac} dev flannel.1 dst {peer.ip}",
        ]
    return "set -e\n" + "\n".join(lines) + "\n"


def _chain(prefix: str, key: str) -> str:
    # kube-proxy names its chains by a hash of the service port / endpoint
    return prefix + hashlib.sha256(key.encode()).hexdigest()[:16].upper()


def nat_rules(services: dict[tuple[str, int, str], list[str]]) -> str:
    """iptables-restore input for the nat table. services: (clusterIP, port, proto) ->
    endpoints "IP:PORT"; several endpoints are chosen at random, as kube-proxy does."""
    chains, rules = [":KUBE-SERVICES - [0:0]", ":KUBE-POSTROUTING - [0:0]"], []
    rules += ["-A PREROUTING -m comment --comment \"kubernetes service portals\" "
              "-j KUBE-SERVICES",
              "-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
              "-A POSTROUTING -j KUBE-POSTROUTING",
              f"-A KUBE-POSTROUTING -s {POD_SUBNET} ! -d {POD_SUBNET} -j MASQUERADE",
              f"-A KUBE-POSTROUTING -d {POD_SUBNET} -m addrtype --src-type LOCAL "
              "-j MASQUERADE"]
    for (ip, port, proto), endpoints in sorted(services.items()):
        svc = _chain("KUBE-SVC-", f"{ip}:{port}/{proto}")
        p = proto.lower()
        if not endpoints:
            rules.append(f"-A KUBE-SERVICES -d {ip}/32 -p {p} -m {p} --dport {port} "
                         "-j REJECT --reject-with icmp-port-unreachable")
            continue
        chains.append(f":{svc} - [0:0]")
        rules.append(f"-A KUBE-SERVICES -d {ip}/32 -p {p} -m {p} --dport {port} -j {svc}")
        for i, ep in enumerate(endpoints):
            sep = _chain("KUBE-SEP-", f"{ip}:{port}/{proto}>{ep}")
            chains.append(f":{sep} - [0:0]")
            left = len(endpoints) - i
            stat = (f"-m statistic --mode random --probability {1 / left:.5f} "
                    if left > 1 else "")
            rules.append(f"-A {svc} {stat}-j {sep}")
            rules.append(f"-A {sep} -p {p} -m {p} -j DNAT --to-destination {ep}")
    # the filter table stays as configure() wrote it: only nat is replaced here
    return "*nat\n" + "\n".join(chains + rules) + "\nCOMMIT\n"
