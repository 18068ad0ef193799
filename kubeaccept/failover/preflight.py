"""The interlock: the gate powers nothing off unless the cluster is healthy now and the loss
of the chosen control plane is survivable. Pure functions over facts and API state."""

from __future__ import annotations

import json

from kubeaccept.checks import ClusterContext
from kubeaccept.checks.all import load
from kubeaccept.facts import NodeFacts
from kubeaccept.model.apistate import ApiState
from kubeaccept.model.findings import Finding
from kubeaccept.model.hosts import Host
from kubeaccept.model.registry import run

load()  # the checks the interlock reuses are registered


def _failed(findings: list[Finding]) -> list[str]:
    return [f"{f.subject}: {f.observed}" for f in findings if not f.ok]


def etcd_view(ctx: ClusterContext) -> dict:
    """{"members": {hex id: name}, "endpoints": {client URL: name}, "leader": name|None,
    "term": int|None} from the control planes' facts."""
    out = {"members": {}, "endpoints": {}, "leader": None, "term": None}
    for f in ctx.facts.values():
        if not isinstance(f, NodeFacts) or not f.etcd:
            continue
        try:
            listed = json.loads(f.etcd.get("member list") or "{}")
            statuses = json.loads(f.etcd.get("endpoint status --cluster") or "[]")
        except ValueError:
            continue
        for m in listed.get("members", []):
            out["members"][f"{m['ID']:x}"] = m.get("name", "?")
            for url in m.get("clientURLs", []):
                out["endpoints"][url] = m.get("name", "?")
        for st in statuses:
            s = st.get("Status", {})
            if s.get("leader"):
                out["leader"] = f"{s['leader']:x}"
                out["term"] = max(out["term"] or 0, int(s.get("raftTerm") or 0))
        if out["members"] and out["leader"]:
            break
    if out["leader"]:
        out["leader"] = out["members"].get(out["leader"], out["leader"])
    return out


def coredns_survives(state: ApiState, target: str) -> str | None:
    """Why cluster DNS would not survive the loss of `target`, or None."""
    pods = [p for p in state.pods if p["metadata"].get("labels", {}).get("k8s-app") == "kube-dns"
            and p["metadata"].get("namespace") == "kube-system"]
    ready = [p for p in pods if any(c.get("type") == "Ready" and c.get("status") == "True"
                                    for c in p.get("status", {}).get("conditions", []))]
    if not ready:
        return "CoreDNS: no Ready replica (cluster DNS is down already)"
    elsewhere = [p for p in ready if p["spec"].get("nodeName") != target]
    if not elsewhere:
        return (f"CoreDNS: every Ready replica ({len(ready)}) runs on {target}: cluster DNS "
                f"fails while {target} is down, until the pods are evicted and rescheduled "
                "(5 minutes by default; field report 03 saw them move to master2) — spread "
                "them: kubectl -n kube-system scale deployment coredns --replicas=2 with a "
                "topologySpreadConstraint or podAntiAffinity on kubernetes.io/hostname")
    return None


def check(ctx: ClusterContext, readyz: dict, state: ApiState | str, target: Host) -> list[str]:
    """Every condition that refuses the failover, each naming what is wrong."""
    refusals = []
    view = etcd_view(ctx)
    if len(view["members"]) < 3:
        names = ", ".join(sorted(view["members"].values())) or "none listed"
        refusals.append(f"etcd has {len(view['members'])} member(s) ({names}): with fewer "
                        "than 3, losing one member loses quorum and every write stops")
    refusals += [f"etcd: {r}" for r in _failed(run("cluster_etcd", cluster=ctx, readyz=readyz))]
    refusals += [f"control plane: {r}" for r in _failed(run("cluster_control_plane",
                                                            cluster=ctx, readyz=readyz))]
    if isinstance(state, str):
        refusals.append(f"Kubernetes API: {state}")
    else:
        refusals += [f"nodes: {r}" for r in _failed(run("cluster_nodes_ready", cluster=ctx,
                                                        api=state))]
        dns = coredns_survives(state, target.name)
        if dns:
            refusals.append(dns)
    down = [f"{n}: {f}" for n, f in ctx.facts.items() if isinstance(f, str)]
    refusals += [f"host {d}" for d in down]
    return refusals
