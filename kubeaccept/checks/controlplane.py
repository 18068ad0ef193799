"""Control plane: each apiserver ready, the controlPlaneEndpoint answering through the load
balancer, and the load balancer's backends = the control planes."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from kubeaccept.checks import ClusterContext
from kubeaccept.checks.endpoint import from_admin_confs
from kubeaccept.facts import NodeFacts
from kubeaccept.model.apistate import Answer
from kubeaccept.model.findings import Finding, not_checked, passed
from kubeaccept.model.hosts import node_ip
from kubeaccept.model.registry import CannotCheck, Context, check
from kubeaccept.model.roles import CONTROL_PLANE, LB

COMPONENTS = {6443: "kube-apiserver", 10257: "kube-controller", 10259: "kube-scheduler",
              2379: "etcd"}  # ss shows 15-character process names


def endpoint(ctx: ClusterContext) -> tuple[str, int] | None:
    """The controlPlaneEndpoint as the cluster names it: the server of the control planes'
    admin.conf (kubeadm writes the controlPlaneEndpoint there), else kubespray's
    loadbalancer_apiserver; never a guess from an inventory host and a fixed port
    (cluster_api_endpoint compares it with kubeadm-config's)."""
    if ep := from_admin_confs(ctx):
        return ep
    lb = ctx.inventory.cluster_vars.get("loadbalancer_apiserver") or {}
    if isinstance(lb, dict) and lb.get("address"):
        return str(lb["address"]), int(lb.get("port") or 6443)
    return None


def readyz_urls(ctx: ClusterContext) -> list[str]:
    cps = ctx.inventory.by_role(CONTROL_PLANE)
    urls = [f"https://{node_ip(h)}:6443/readyz?verbose" for h in cps]
    ep = endpoint(ctx)
    return urls + ([f"https://{ep[0]}:{ep[1]}/readyz?verbose"] if ep else [])


def haproxy_backends(cfg: str, port: int) -> list[tuple[str, str]]:
    """(name, address) of the servers of the backends that serve frontends bound to `port`."""
    sections, current = {}, None
    for raw in cfg.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.match(r"^(frontend|backend|listen|defaults|global)\b\s*(\S*)", line)
        if m and not raw[0].isspace():
            current = (m.group(1), m.group(2))
            sections[current] = []
        elif current:
            sections[current].append(line)
    wanted = set()
    for (kind, name), lines in sections.items():
        binds = any(re.match(rf"bind\s+\S*:{port}\b", ln) for ln in lines)
        if kind == "listen" and binds:
            wanted.add(("listen", name))
        elif kind == "frontend" and binds:
            for ln in lines:
                if ln.startswith(("default_backend ", "use_backend ")):
                    wanted.add(("backend", ln.split()[1]))
    return [(ln.split()[1], ln.split()[2].rsplit(":", 1)[0])
            for key in wanted for ln in sections.get(key, []) if ln.startswith("server ")]


def _failed_checks(body: str) -> list[str]:
    return [ln.strip() for ln in body.splitlines() if ln.startswith("[-]")]


@check("cluster_control_plane",
       ("every control plane runs its 4 components and is ready; the endpoint answers through"
        " the LB; LB backends = control planes"),
       area="control plane",
       needs=('cluster', 'readyz'),
       reads=("static pod manifests and processes",
              "each apiserver's and the endpoint's /readyz?verbose",
              "haproxy.cfg"),
       asserts=("every control plane runs kube-apiserver, controller-manager, scheduler and "
                "etcd; each apiserver's `/readyz?verbose` is 200 (TLS verified against the "
                "cluster CA; the `[-]` lines are quoted); the controlPlaneEndpoint "
                "(the control planes' admin.conf server, else kubespray's "
                "`loadbalancer_apiserver`) answers through the LB; the LB's HAProxy backends "
                "are exactly the control planes"),
       prevents=("`The connection to the server …:6443 was refused` whenever the LB picks the"
                 " broken one"))
def cluster_control_plane(ctx: Context) -> list[Finding]:
    if not ctx.cluster.inventory.by_role(CONTROL_PLANE):
        raise CannotCheck(f"{ctx.cluster.inventory.source} has no control-plane host: put the "
                          "control planes in kube_control_plane (or masters)")
    cluster = ctx.cluster
    answers = ctx.readyz
    findings = []
    cps = cluster.inventory.by_role(CONTROL_PLANE)
    for h in cps:
        facts = cluster.facts.get(h.name)
        if isinstance(facts, NodeFacts):
            names = {ln.process for ln in facts.listeners if ln.port in COMPONENTS}
            missing = [c for p, c in COMPONENTS.items()
                       if not any(ln.port == p and ln.process == c for ln in facts.listeners)]
            subject = f"{h.name}:components"
            if missing:
                findings.append(Finding(
                    subject, False, f"not running: {', '.join(missing)}",
                    "kube-apiserver, kube-controller-manager, kube-scheduler and etcd",
                    "a control plane without all four is not a control plane: the LB may send "
                    "clients to a broken apiserver, leader election has fewer candidates",
                    f"crictl ps -a on {h.name}; check /etc/kubernetes/manifests/*.yaml and "
                    "journalctl -u kubelet", tuple(f"listening: {n}" for n in sorted(names))))
            else:
                findings.append(passed(subject, "all four components listening", ""))
        elif isinstance(facts, str):
            findings.append(not_checked(f"{h.name}:components", h.name, facts))
        url = f"https://{node_ip(h)}:6443/readyz?verbose"
        findings.append(_ready(f"{h.name}:readyz", answers.get(url), url))
    ep = endpoint(cluster)
    if ep:
        url = f"https://{ep[0]}:{ep[1]}/readyz?verbose"
        findings.append(_ready(f"endpoint {ep[0]}:{ep[1]}", answers.get(url), url))
    for lb in cluster.inventory.by_role(LB):
        facts = cluster.facts.get(lb.name)
        if isinstance(facts, str):
            findings.append(not_checked(f"{lb.name}:backends", lb.name, facts))
            continue
        cfg = facts.file("/etc/haproxy/haproxy.cfg") if isinstance(facts, NodeFacts) else None
        if not cfg or not cfg.exists:
            continue
        servers = haproxy_backends(cfg.text or "", ep[1] if ep else 6443)
        ips = {a for _, a in servers}
        cp_ips = {node_ip(h): h.name for h in cps}
        missing = sorted(n for ip, n in cp_ips.items() if ip not in ips)
        strangers = sorted(f"{n} ({a})" for n, a in servers if a not in cp_ips)
        subject = f"{lb.name}:backends"
        observed = "backends " + ", ".join(f"{n} {a}" for n, a in servers)
        if missing or strangers:
            findings.append(Finding(
                subject, False, observed + (f"; missing {', '.join(missing)}" if missing
                                                 else "") +
                (f"; not control planes: {', '.join(strangers)}" if strangers else ""),
                "exactly the control planes", "a control plane missing from the LB takes no "
                "load and is not there when another fails; a stranger gets API traffic",
                "edit /etc/haproxy/haproxy.cfg (server lines of the apiserver backend) and "
                "reload haproxy", (f"/etc/haproxy/haproxy.cfg on {lb.name}",)))
        else:
            findings.append(passed(subject, observed, "exactly the control planes"))
    return findings


def _ready(subject: str, answer: Answer | None, url: str) -> Finding:
    if answer is not None and answer.status == 200:
        return passed(subject, "readyz ok", "200 ok", f"GET {url}: 200")
    if answer is None:
        observed = "not probed"
    elif answer.status is None:
        observed = f"no answer: {answer.body}"
    else:
        bad = _failed_checks(answer.body)
        observed = f"HTTP {answer.status}" + (f": {'; '.join(bad)}" if bad else "")
    why, fix = readyz_diagnosis(answer)
    return Finding(subject, False, observed, "200 ok", why, fix, (f"GET {url}",))


LB_WHY = ("clients sent here fail; through the LB, requests fail whenever it picks this "
          "apiserver")


def readyz_diagnosis(answer: Answer | None) -> tuple[str, str]:
    """(why, fix) for a /readyz that is not 200, from what actually happened: an HTTP answer
    with failing checks, a TLS verification error (which one), a refusal, a timeout."""
    body = answer.body if answer is not None else ""
    host = urlsplit(answer.url).hostname if answer is not None else "?"
    if answer is not None and answer.status is not None:
        return (f"{LB_WHY} (\"The connection to the server … was refused\" / \"etcdserver: "
                "request timed out\")", "crictl logs <kube-apiserver container>; the [-] lines "
                "name the failing check (etcd: see cluster_etcd)")
    if "mismatch" in body or "not valid for" in body:
        # OpenSSL's hostname check, as Python's ssl words it ("IP address mismatch, ...")
        return (f"its serving certificate does not cover {host}: {LB_WHY} with \"x509: "
                f"certificate is valid for …, not {host}\"",
                "see cluster_api_endpoint: add the address to apiServer.certSANs and "
                "regenerate the certificate (kubeadm init phase certs apiserver)")
    if "certificate verify failed" in body or "CERTIFICATE_VERIFY_FAILED" in body:
        return (f"its certificate is not signed by the cluster CA: {LB_WHY} with \"x509: "
                "certificate signed by unknown authority\"",
                "see node_cluster_ca: every control plane needs the same "
                "/etc/kubernetes/pki/ca.crt (copy it with `kubeadm join --control-plane "
                "--certificate-key`, then regenerate that node's certificates)")
    if "refused" in body.lower():
        return (f"nothing listens on {host}:6443: kube-apiserver is not running there; "
                f"{LB_WHY}", "crictl ps -a --name kube-apiserver; crictl logs <its id>; "
                "check /etc/kubernetes/manifests/kube-apiserver.yaml")
    if "timed out" in body or "timeout" in body.lower():
        return (f"{host}:6443 did not answer in time: a firewall drops 6443, the host is "
                f"down, or the apiserver hangs; {LB_WHY}",
                f"from another node: nc -vz -w 3 {host} 6443 (see node_firewall and "
                "node_listening_ports); on the node: crictl logs <kube-apiserver container>")
    if "No route to host" in body or "unreachable" in body.lower():
        return (f"{host} is not reachable (no route): host down, or a firewall rejects with "
                f"icmp-host-prohibited; {LB_WHY}", f"ping {host}; firewall-cmd --list-all")
    return (LB_WHY, "crictl logs <kube-apiserver container> on that control plane")
