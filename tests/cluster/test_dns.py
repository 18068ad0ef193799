"""Cluster DNS as a pod sees it (field report 03: dnsutils, nslookup kubernetes.default)."""

from kubeaccept.checks import dns


def cluster_dns(api, dns_lookup, cluster, verdict):
    """CoreDNS Ready, kube-dns on the cluster DNS address, and from the dnsutils pod
    kubernetes.default resolves to the kubernetes Service."""
    verdict(dns.cluster_dns(api, cluster.settings, dns_lookup))
