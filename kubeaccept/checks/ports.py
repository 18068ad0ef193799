"""Ports: the role's components listen, and other nodes can connect to them."""

from __future__ import annotations

from kubeaccept.model.findings import Finding, needs_tool, passed
from kubeaccept.model.ports import Port, probers, served
from kubeaccept.model.registry import Context, check
from kubeaccept.model.roles import ETCD, NODE

DOWN_WHY = {
    "kube-apiserver": "kubectl and kubelets using this control plane get \"The connection to the "
                      "server <host>:6443 was refused\"; the load balancer loses a backend",
    "etcd client": "the kube-apiservers using this etcd member (on a stacked control plane, the "
                   "local one) lose their datastore and fail /readyz",
    "etcd peer": "this etcd member drops out of the cluster; one more failure loses quorum",
    "kubelet": "the node goes NotReady; kubectl exec/logs to its pods fail",
    "kube-controller-manager": "Deployments, DaemonSets and node lifecycle stop being reconciled",
    "kube-scheduler": "new pods stay Pending",
}


def _why(port: Port) -> str:
    return DOWN_WHY.get(port.component.split(" (")[0], "the component is not serving")


@check("node_listening_ports",
       ("the role's ports listen (control plane 6443 10250 10257 10259; etcd member 2379 "
        "2380; worker 10250), naming the process"),
       area="network",
       roles=(*NODE, ETCD),
       reads=("ss -Htulnp",
              "kube-apiserver manifest, kubelet --version"),
       asserts=("control plane: 6443, 10250, 10257, 10259 (+10251/10252 before v1.19, version"
                " read from the kube-apiserver manifest or `kubelet --version`, or "
                "`--kube-version`); etcd member: 2379, 2380 (the control planes with "
                "kubeadm's stacked etcd — also when the inventory has no etcd group —, the "
                "etcd hosts when etcd runs apart, as in kubespray's `ha-separate-etcd`); "
                "worker: 10250; names the listening process or says none listens"),
       prevents="component down")
def node_listening_ports(ctx: Context) -> list[Finding]:
    node = ctx.node
    if tool := node.facts.missing("listen-tcp"):
        return [needs_tool(ctx.check_id, node.host.name, tool, "to list the listening sockets")]
    findings = []
    version = node.version
    for port in served(node.host.roles, version):
        subject = f"{node.host.name}:{port.proto}/{port.number}"
        owners = sorted({f"{ln.process or '?'} on {ln.address}" for ln in node.facts.listeners
                         if ln.proto == port.proto and ln.port == port.number})
        if owners:
            findings.append(passed(subject, f"{port.label}: {', '.join(owners)}",
                                   f"{port.component} listening", f"ss -tlnp: {owners[0]}"))
        else:
            findings.append(Finding(
                subject, False, f"nothing listens on {port.label}",
                f"{port.component} listening", _why(port),
                f"start {port.component.split(' (')[0]} on {node.host.name}: "
                "crictl ps -a | grep <component>; journalctl -u kubelet",
                (f"ss -Htlnp shows no socket on port {port.number}",)))
    if version is None:
        findings.append(passed(f"{node.host.name}:version", "Kubernetes version unknown",
                               "", "assumed >= v1.19: insecure ports 10251/10252 not expected"))
    return findings


@check("node_ports_reachable",
       ("those ports accept connections from the nodes that need them, probed from those "
        "nodes"),
       area="network",
       roles=(*NODE, ETCD),
       reads=("TCP connects from the peers that use each port (their facts command)",),
       peers=lambda host, inventory, settings: {
           name for port in served(host.roles, None) if port.reach_from
           for name in probers(host, port, inventory, settings.probe_sources)},
       asserts=("each port is reachable *from the nodes that use it*, probed from those nodes"
                " over SSH with a bounded timeout: 6443 from every node, 2379 from control "
                "planes and etcd members, 2380 from etcd members, 10250 from control planes "
                "(10257/10259 are local-only in kubeadm); a port no other inventory host uses"
                " (a worker-only inventory's 10250) passes as `<host>:unchecked` with a note "
                "saying what was not checked and why. The probes are only the role pairs that "
                "must connect (O(nodes) per control plane, not O(nodes²)); `--probe-sources N` "
                "probes each port from N of its users (picked by a stable hash that spreads "
                "them), `all` from every one; the default `auto` is all below 100 hosts, else "
                "1 — every port of every host is still probed, and node_firewall_input still "
                "evaluates the rules for every peer"),
       prevents="open locally, closed to the cluster")
def node_ports_reachable(ctx: Context) -> list[Finding]:
    node = ctx.node
    findings, unchecked = [], []
    for port in served(node.host.roles, None):
        if not port.reach_from:
            continue
        key = f"{node.ip}:{port.number}"
        results, unprobed = {}, []
        picked = probers(node.host, port, node.inventory, node.settings.probe_sources)
        for peer in node.inventory.hosts:
            if peer.name not in picked:
                continue
            facts = node.peers.get(peer.name)
            if facts is None or isinstance(facts, str):
                unprobed.append(f"{peer.name} ({facts or 'not gathered'})")
            else:
                results[peer.name] = facts.probes.get(key, "not probed")
        subject = f"{node.host.name}:{port.proto}/{port.number}"
        bad = {p: r for p, r in results.items() if r != "open"}
        evidence = tuple(f"from {p}: connect {key} -> {r}" for p, r in sorted(results.items()))
        evidence += tuple(f"from {u}: not probed" for u in unprobed)
        if not results and not unprobed:
            unchecked.append(port)
            continue
        if bad:
            detail = ", ".join(f"{p} ({r})" for p, r in sorted(bad.items()))
            findings.append(Finding(
                subject, False, f"{port.label} not reachable from {detail}",
                f"reachable from every {'/'.join(port.reach_from)} node", _why(port),
                f"open {port.proto}/{port.number} on {node.host.name} to the other nodes "
                "(firewall INPUT rules, security groups) and make sure it listens on "
                f"{node.ip}, not only 127.0.0.1", evidence))
        elif results:
            users = len(probers(node.host, port, node.inventory, 0))
            sampled = (f" (of {users} that use it: --probe-sources "
                       f"{node.settings.probe_sources})" if users > len(picked) else "")
            findings.append(passed(subject, f"{port.label} reachable from "
                                   f"{len(results)} node(s){sampled}", "reachable", *evidence))
        else:
            findings.append(Finding(subject, False, f"{port.label}: no peer could probe it",
                                    "reachable", fix="make the other nodes reachable over SSH",
                                    evidence=evidence))
    if unchecked:
        # Nothing to probe from is not a pass by silence: say which ports went unchecked.
        labels = ", ".join(p.label for p in unchecked)
        roles = "/".join(sorted({r for p in unchecked for r in p.reach_from}))
        findings.append(Finding(
            f"{node.host.name}:unchecked", True, f"not checked: {labels}",
            "reachability from the nodes that use these ports",
            note=f"not checked: {labels} on {node.host.name}: the inventory has no other "
                 f"{roles} host to probe from"))
    if not findings:
        findings.append(Finding(node.host.name, True, "no port of its roles is used by "
                                "other hosts", "", note=f"not checked: no port of "
                                f"{node.host.name}'s roles is reached from other hosts"))
    return findings
