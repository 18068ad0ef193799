"""The endpoint the cluster uses: kubeadm's controlPlaneEndpoint, as the cluster states it, named
by every node's kubeconfigs and covered by every apiserver's serving certificate."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from cryptography import x509

from kubeaccept.checks import ClusterContext
from kubeaccept.checks.podnet import KUBEADM_CM, cluster_configuration
from kubeaccept.facts import NodeFacts
from kubeaccept.model.apistate import ApiState
from kubeaccept.model.findings import Finding, not_checked, passed
from kubeaccept.model.hosts import node_ip
from kubeaccept.model.registry import Context, check
from kubeaccept.model.roles import CONTROL_PLANE

APISERVER_CRT = "/etc/kubernetes/pki/apiserver.crt"
K = "/etc/kubernetes/"
# Which server kubeadm 1.37 writes into each kubeconfig (phases/kubeconfig/kubeconfig.go
# getKubeConfigSpecsBase; cmd/phases/join/kubelet.go for a joining control plane's kubelet):
# "endpoint" = the controlPlaneEndpoint, "local" = the node's own apiserver.
WRITES = {
    K + "admin.conf": ("endpoint",),
    K + "super-admin.conf": ("endpoint",),
    K + "kubelet.conf": ("endpoint", "local"),  # local: a control plane that joined
    K + "bootstrap-kubelet.conf": ("endpoint", "local"),
    # kubeadm writes their own apiserver; the endpoint also serves them, only less locally
    K + "controller-manager.conf": ("local", "endpoint"),
    K + "scheduler.conf": ("local", "endpoint"),
}
NO_ENDPOINT = ("unable to add a new control plane instance to a cluster that doesn't have a "
               "stable controlPlaneEndpoint address")  # kubeadm 1.37.2 join/preflight.go
SANS_FIX = ("add it to apiServer.certSANs in kubeadm-config (kubectl -n kube-system edit cm "
            "kubeadm-config); on {node}: `kubectl -n kube-system get cm kubeadm-config -o "
            "jsonpath='{{.data.ClusterConfiguration}}' > /root/kubeadm.yaml`, `mv "
            "/etc/kubernetes/pki/apiserver.{{crt,key}} /root/`, `kubeadm init phase certs "
            "apiserver --config /root/kubeadm.yaml`, then restart its kube-apiserver (move "
            "its manifest out of /etc/kubernetes/manifests and back)")


def host_port(text: str, default_port: int = 6443) -> tuple[str, int] | None:
    """"host", "host:port", "[v6]:port" or "https://host:port" -> (host, port)."""
    text = text.strip()
    if not text:
        return None
    try:
        parts = urlsplit(text if "://" in text else f"https://{text}")
        return (parts.hostname or "", parts.port or default_port) if parts.hostname else None
    except ValueError:
        return None


def _fmt(ep: tuple[str, int]) -> str:
    host = f"[{ep[0]}]" if ":" in ep[0] else ep[0]
    return f"{host}:{ep[1]}"


def from_kubeadm(api: ApiState | None) -> tuple[tuple[str, int] | None, str]:
    """(controlPlaneEndpoint of kubeadm-config's ClusterConfiguration, problem)."""
    if not isinstance(api, ApiState):
        return None, f"ConfigMap {KUBEADM_CM} not read"
    conf, problem = cluster_configuration(api)
    if conf is None:
        return None, problem
    ep = host_port(str(conf.get("controlPlaneEndpoint") or ""))
    return ep, "" if ep else "no controlPlaneEndpoint in kubeadm-config"


def from_admin_confs(ctx: ClusterContext) -> tuple[str, int] | None:
    """The server every control plane's admin.conf names, when they all agree (kubeadm writes
    the controlPlaneEndpoint there)."""
    servers = {host_port(f.kubeconfig_servers.get(K + "admin.conf", ""))
               for h in ctx.inventory.by_role(CONTROL_PLANE)
               if isinstance(f := ctx.facts.get(h.name), NodeFacts)
               and f.kubeconfig_servers.get(K + "admin.conf")}
    return next(iter(servers)) if len(servers) == 1 and None not in servers else None


def sans(pem: bytes) -> tuple[list[str], list[str]] | None:
    """(IP SANs, DNS SANs) of a PEM certificate, None when it cannot be read."""
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        return None
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], []
    return ([str(a) for a in ext.get_values_for_type(x509.IPAddress)],
            list(ext.get_values_for_type(x509.DNSName)))


def covers(ips: list[str], names: list[str], host: str) -> bool:
    """Go's crypto/x509 VerifyHostname: an IP matches an IP SAN only; a name a DNS SAN, with
    a wildcard standing for exactly one leftmost label."""
    try:
        want = ipaddress.ip_address(host)
        return any(ipaddress.ip_address(i) == want for i in ips)
    except ValueError:
        pass
    host = host.lower().rstrip(".")
    for n in (n.lower().rstrip(".") for n in names):
        if n == host or (n.startswith("*.") and "." in host and host.split(".", 1)[1] == n[2:]):
            return True
    return False


def go_hostname_error(ips: list[str], names: list[str], host: str) -> str:
    """The words Go's crypto/x509 HostnameError gives clients (kubectl, kubelet) for it
    (go1.26 src/crypto/x509/verify.go)."""
    try:
        ipaddress.ip_address(host)
        if not ips:
            return (f"x509: cannot validate certificate for {host} because it doesn't "
                    "contain any IP SANs")
        valid = ", ".join(ips)
    except ValueError:
        valid = ", ".join(names)
    if not valid:
        return f"x509: certificate is not valid for any names, but wanted to match {host}"
    return f"x509: certificate is valid for {valid}, not {host}"


@check("cluster_api_endpoint",
       ("every node's kubeconfigs name the cluster's controlPlaneEndpoint (or, where kubeadm "
        "writes it so, the node's own apiserver); every apiserver's certificate covers it"),
       area="control plane",
       needs=('api', 'cluster'),
       reads=("kubeadm-config's controlPlaneEndpoint (API)",
              "the server of admin.conf, super-admin.conf, kubelet.conf, controller-manager.conf "
              "and scheduler.conf on every node",
              "each control plane's /etc/kubernetes/pki/apiserver.crt SANs"),
       asserts=("the endpoint is kubeadm-config's controlPlaneEndpoint (never a guess from the "
                "inventory); admin.conf and super-admin.conf name it; kubelet.conf names it "
                "or, on a control plane, its own apiserver; controller-manager.conf and "
                "scheduler.conf name their own apiserver or it; every apiserver's serving "
                "certificate has it as an IP or DNS SAN"),
       prevents=("a node tied to one control plane goes NotReady when that one is down; "
                 "`x509: certificate is valid for …, not <endpoint>` whenever the LB picks an "
                 "apiserver whose certificate lacks the endpoint"))
def cluster_api_endpoint(ctx: Context) -> list[Finding]:
    cluster = ctx.cluster
    ep, problem = from_kubeadm(ctx.api)
    source = f"controlPlaneEndpoint in {KUBEADM_CM}"
    findings = []
    cps = cluster.inventory.by_role(CONTROL_PLANE)
    if ep is None:
        admin = from_admin_confs(cluster)
        if problem.startswith("no controlPlaneEndpoint") and len(cps) > 1:
            findings.append(Finding(
                "endpoint", False, f"{problem}: {len(cps)} control planes without a shared "
                "endpoint" + (f"; admin.conf names {_fmt(admin)}" if admin else ""),
                "a controlPlaneEndpoint (the load balancer's address or DNS name)",
                "nodes and clients are tied to the control plane kubeadm init ran on; kubeadm "
                f"itself refuses the next control-plane join (\"{NO_ENDPOINT}\")",
                "set controlPlaneEndpoint to the load balancer in kubeadm-config, add it to "
                "apiServer.certSANs and regenerate each apiserver certificate, then point every "
                "kubeconfig at it (kubeadm docs: Reconfiguring a kubeadm cluster)",
                (f"{KUBEADM_CM}: ClusterConfiguration",)))
            return findings
        if admin is None:
            return [Finding("endpoint", False, f"the endpoint is not known: {problem}, and the "
                            "control planes' admin.conf files do not agree on one server",
                            "one endpoint the cluster names", "what every node must reach "
                            "cannot be checked", "kubectl -n kube-system get cm kubeadm-config "
                            "-o yaml (controlPlaneEndpoint); grep server: "
                            "/etc/kubernetes/*.conf on each node")]
        ep, source = admin, "the server of the control planes' admin.conf"
    findings.append(passed("endpoint", f"{_fmt(ep)} ({source})", "the cluster's endpoint"))
    findings += _kubeconfigs(cluster, ep)
    findings += _certificates(cluster, ep)
    return findings


def _kubeconfigs(cluster: ClusterContext, ep: tuple[str, int]) -> list[Finding]:
    findings = []
    cp_ips = {node_ip(h): h.name for h in cluster.inventory.by_role(CONTROL_PLANE)}
    for h in cluster.inventory.hosts:
        facts = cluster.facts.get(h.name)
        if isinstance(facts, str) and CONTROL_PLANE in h.roles:
            findings.append(not_checked(f"{h.name}:kubeconfigs", h.name, facts))
            continue
        if not isinstance(facts, NodeFacts):
            continue  # an unreachable node: its own tests say so (as cluster_control_plane)
        own = (node_ip(h), ep[1]) if CONTROL_PLANE in h.roles else None
        ok_targets = {"endpoint": ep, "local": own}
        for path, server in sorted(facts.kubeconfig_servers.items()):
            allowed = WRITES.get(path)
            if allowed is None:
                continue
            named = host_port(server)
            fine = [k for k in allowed if ok_targets.get(k) and named == ok_targets[k]]
            subject = f"{h.name}:{path.rsplit('/', 1)[1]}"
            if fine:
                findings.append(passed(subject, f"server {server}", "the endpoint"
                                       if fine[0] == "endpoint" else "its own apiserver"))
                continue
            pinned = cp_ips.get(named[0]) if named else None
            what = (f"server {server or '(none)'}" + (f": control plane {pinned} only" if pinned
                                                      else ""))
            expect = "the endpoint " + _fmt(ep) + (
                f" or its own apiserver {_fmt(own)}" if own and "local" in allowed else "")
            if pinned:
                why = (f"{h.name}'s {path.rsplit('/', 1)[1]} client talks to {pinned} alone: "
                       f"when {pinned} is down or its apiserver restarts, it loses the API"
                       + (f" and {h.name} goes NotReady (its pods are evicted)"
                          if path.endswith("kubelet.conf") else ""))
            else:
                why = (f"{h.name}'s clients of {path} use another endpoint than the cluster's: "
                       "if it is not the load balancer they fail with it, and its certificate "
                       "may not cover the name")
            restart = ("systemctl restart kubelet" if "kubelet" in path else
                       "restart the static pod (move its manifest out and back)"
                       if "manager" in path or "scheduler" in path else "nothing to restart")
            findings.append(Finding(
                subject, False, what, expect, why,
                f"on {h.name}: `kubectl config set-cluster kubernetes --kubeconfig={path} "
                f"--server=https://{_fmt(ep)}`; then {restart}",
                (f"{path} on {h.name}: server: {server}",)))
    return findings


def _certificates(cluster: ClusterContext, ep: tuple[str, int]) -> list[Finding]:
    findings = []
    for h in cluster.inventory.by_role(CONTROL_PLANE):
        facts = cluster.facts.get(h.name)
        if not isinstance(facts, NodeFacts):
            continue  # the kubeconfig findings already said why
        pem = facts.certificates.get(APISERVER_CRT)
        subject = f"{h.name}:apiserver.crt"
        if pem is None:
            continue  # not kubeadm's layout here: cluster_certificates says what it found
        got = sans(pem)
        if got is None:
            findings.append(Finding(subject, False, f"{APISERVER_CRT} is not a PEM "
                                    "certificate", "a certificate", "its SANs cannot be "
                                    "checked", f"openssl x509 -noout -text -in {APISERVER_CRT}"))
            continue
        ips, names = got
        listed = ", ".join([*names, *ips])
        if covers(ips, names, ep[0]):
            findings.append(passed(subject, f"covers {ep[0]}", "covers the endpoint",
                                   f"SANs: {listed}"))
            continue
        findings.append(Finding(
            subject, False, f"kube-apiserver's certificate on {h.name} does not cover "
            f"{ep[0]} (SANs: {listed})", f"{ep[0]} among its SANs",
            f"clients of {_fmt(ep)} whom the load balancer sends to {h.name} fail TLS: "
            f"\"{go_hostname_error(ips, names, ep[0])}\"", SANS_FIX.format(node=h.name),
            (f"{APISERVER_CRT} on {h.name}",)))
    return findings
