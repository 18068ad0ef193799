"""What kubespray's inventory variables say about the cluster: the DNS Service address and
the overlay's port (settings the run takes from the inventory when the command line is silent)."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubeaccept.model.settings import DEFAULT_DNS_SOURCE, DEFAULT_VXLAN_PORT, DEFAULT_VXLAN_SOURCE

# Names only kubespray's group_vars use (inventory/sample/group_vars/k8s_cluster/k8s-cluster.yml);
# kube_pods_subnet/kube_service_addresses alone do not count: plain kubeadm inventories use them.
KUBESPRAY_VARS = ("kube_network_plugin", "dns_mode", "skydns_server", "enable_nodelocaldns",
                  "nodelocaldns_ip", "manual_dns_server")
# kubespray's defaults (roles/kubespray_defaults/defaults/main/main.yml)
KUBESPRAY_NODELOCALDNS_IP = "169.254.25.10"
KUBESPRAY_DNS_INDEX = 3  # skydns_server: kube_service_addresses | ipaddr('net') | ipaddr(3)


def is_kubespray(cluster_vars: Mapping[str, Any]) -> bool:
    return any(name in cluster_vars for name in KUBESPRAY_VARS)


def _truthy(value: Any) -> bool:
    """Ansible's truthiness for inventory values: "false"/"no"/"0" are False."""
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"true", "yes", "y", "on", "1", "t"}


def _address(value: Any) -> str | None:
    """An IP address, or None for anything else (e.g. an unrendered `{{ ... }}` template)."""
    try:
        return str(ipaddress.ip_address(str(value).strip()))
    except ValueError:
        return None


def _port(value: Any) -> int | None:
    text = str(value).strip()
    return int(text) if text.isdigit() and 0 < int(text) < 65536 else None


@dataclass(frozen=True)
class DnsChoice:
    ip: str | None   # None: the default (10th address)
    source: str
    node_local_ip: str | None
    service: str


def choose_cluster_dns(cluster_vars: Mapping[str, Any], service_subnet: str,
                       cli: str | None = None) -> DnsChoice:
    """The cluster DNS Service address, where it came from, NodeLocal DNSCache's address and
    the Service's name. --cluster-dns wins; then kubeaccept_cluster_dns; then kubespray's
    skydns_server (its default: the 3rd address of kube_service_addresses, Service
    kube-system/coredns); else kubeadm's 10th address (kube-system/kube-dns)."""
    cv = cluster_vars
    kubespray = is_kubespray(cv)
    service = "coredns" if kubespray else "kube-dns"
    local = None
    if kubespray and _truthy(cv.get("enable_nodelocaldns", True)):
        local = _address(cv.get("nodelocaldns_ip", KUBESPRAY_NODELOCALDNS_IP))
    if cli:
        return DnsChoice(cli, "--cluster-dns", local, service)
    if cv.get("kubeaccept_cluster_dns"):
        return DnsChoice(str(cv["kubeaccept_cluster_dns"]), "inventory kubeaccept_cluster_dns",
                         local, service)
    if not kubespray:
        return DnsChoice(None, DEFAULT_DNS_SOURCE, None, service)
    mode = str(cv.get("dns_mode", "coredns")).strip()
    if mode == "manual" and _address(cv.get("manual_dns_server", "")):
        return DnsChoice(_address(cv["manual_dns_server"]),
                         "kubespray dns_mode: manual, manual_dns_server", local, service)
    given = _address(cv.get("skydns_server", ""))
    if given:
        return DnsChoice(given, "kubespray skydns_server", local, service)
    third = str(ipaddress.ip_network(service_subnet, strict=False)[KUBESPRAY_DNS_INDEX])
    return DnsChoice(third, f"kubespray's skydns_server: 3rd address of {service_subnet}",
                     local, service)


_PLUGINS = {  # kube_network_plugin -> (overlay, its own port variable, default port)
    "flannel": ("flannel VXLAN", "flannel_vxlan_port", 8472),
    "canal": ("Canal's flannel VXLAN", None, 8472),
    "calico": ("Calico VXLAN", "calico_vxlan_port", 4789),
    "cilium": ("Cilium VXLAN tunnel-port", None, 8472),
}


def choose_vxlan_port(cluster_vars: Mapping[str, Any], cli: int | None = None
                      ) -> tuple[int, str]:
    """The overlay's UDP port and what chose it: --vxlan-port, kubeaccept_vxlan_port, then
    kubespray's kube_network_plugin with its variables (flannel 8472, Calico VXLAN 4789,
    Cilium 8472 / Geneve 6081, Canal 8472), else 8472."""
    cv = cluster_vars
    if cli:
        return cli, "--vxlan-port"
    if _port(cv.get("kubeaccept_vxlan_port", "")):
        return _port(cv["kubeaccept_vxlan_port"]), "inventory kubeaccept_vxlan_port"
    plugin = str(cv.get("kube_network_plugin", "")).strip().lower()
    if not plugin:
        return DEFAULT_VXLAN_PORT, DEFAULT_VXLAN_SOURCE
    what = f"kube_network_plugin: {plugin}"
    if plugin not in _PLUGINS:
        return DEFAULT_VXLAN_PORT, (f"{what} has no VXLAN port known to kubeaccept; default "
                                    f"{DEFAULT_VXLAN_PORT} (set --vxlan-port)")
    overlay, var, port = _PLUGINS[plugin]
    tunnel = None  # why there is no VXLAN tunnel, if there is none
    if plugin == "flannel":
        backend = str(cv.get("flannel_backend_type", "vxlan")).strip().lower()
        tunnel = None if backend == "vxlan" else f"flannel_backend_type: {backend}"
    elif plugin == "calico":
        mode = str(cv.get("calico_vxlan_mode", "Always")).strip()
        tunnel = None if mode.lower() != "never" else f"calico_vxlan_mode: {mode}"
    elif plugin == "cilium":
        mode = str(cv.get("cilium_tunnel_mode", "vxlan")).strip().lower()
        if mode == "geneve":
            overlay, port = "Cilium Geneve tunnel-port", 6081
        elif mode != "vxlan":
            tunnel = f"cilium_tunnel_mode: {mode}"
    if tunnel:
        return DEFAULT_VXLAN_PORT, (f"{what} with {tunnel} uses no VXLAN tunnel; default "
                                    f"{DEFAULT_VXLAN_PORT} kept (set --vxlan-port)")
    if var and var in cv:
        if _port(cv[var]):
            return _port(cv[var]), f"{overlay}, {var} for {what}"
        return port, f"{overlay}, {var} unreadable ({cv[var]!r}): {plugin}'s default for {what}"
    default = f"{var} default" if var else "default"
    return port, f"{overlay}, kubespray's {default} for {what}"
