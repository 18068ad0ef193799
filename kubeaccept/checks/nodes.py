"""Nodes as the API sees them: every node registered and Ready, none flapping."""

from __future__ import annotations

import json
from datetime import datetime

from kubeaccept.model.apistate import ApiState, parse_time
from kubeaccept.model.findings import Finding, passed
from kubeaccept.model.hosts import node_ip
from kubeaccept.model.registry import Context, check
from kubeaccept.model.roles import NODE

PLEG_WHY = (
    "the kubelet's PLEG (pod lifecycle event generator) relists the containers every second; "
    "when a relist has not finished for 3m the node goes NotReady. Relists hang when "
    "container-runtime calls hang: in field report 02 a CNI bug (containernetworking/cni#567, "
    "lock held on timeout during sandbox setup) left fluentd sandboxes `Created` / `Removal In "
    "Progress`, the node flapped (NodeReady x8929 / NodeNotReady x8932) and its pods were "
    "evicted and its DaemonSet pods crash-looped")
UNKNOWN_WHY = (
    "the node controller no longer hears from the kubelet: the kubelet is down or the node cannot "
    "reach the apiserver; its pods are marked not ready and evicted after the eviction timeout "
    "(taint node.kubernetes.io/unreachable)")
NOT_READY_WHY = (
    "the scheduler places no new pods there (taint node.kubernetes.io/not-ready) and its pods "
    "are evicted; report 03: a node stays NotReady (and CoreDNS Pending) until the pod network "
    "add-on runs on it")
FLAP_WHY = (
    "field report 02: the node flips NotReady and back (\"NodeReady (x8929 over 45d)\" / "
    "\"NodeNotReady (x8932 over 24d)\"); each time its pods are evicted or rescheduled and its "
    "DaemonSet pods crash-loop, so whatever runs there keeps failing")

REASONS = ("NodeReady", "NodeNotReady")


def human(seconds: float) -> str:
    """kubectl-style short durations: 90s, 5m, 3h, 45d."""
    s = max(0, int(seconds))
    if s < 120:
        return f"{s}s"
    if s < 120 * 60:
        return f"{s // 60}m"
    if s < 48 * 3600:
        return f"{s // 3600}h"
    return f"{s // 86400}d"


def event_last(ev: dict) -> datetime | None:
    return parse_time(ev.get("lastTimestamp")
                      or (ev.get("series") or {}).get("lastObservedTime")
                      or ev.get("eventTime"))


def event_first(ev: dict) -> datetime | None:
    return parse_time(ev.get("firstTimestamp") or ev.get("eventTime")) or event_last(ev)


def event_count(ev: dict) -> int:
    return int(ev.get("count") or (ev.get("series") or {}).get("count") or 1)


def event_summary(events: list[dict]) -> str:
    """Like kubectl describe's Age column: "(x123314 over 23d)" or "(once)"."""
    count = sum(event_count(e) for e in events)
    firsts = [t for t in map(event_first, events) if t]
    lasts = [t for t in map(event_last, events) if t]
    if count <= 1 or not firsts or not lasts:
        return f"(x{count})" if count > 1 else "(once)"
    return f"(x{count} over {human((max(lasts) - min(firsts)).total_seconds())})"


def condition(obj: dict, kind: str) -> dict | None:
    return next((c for c in obj.get("status", {}).get("conditions") or []
                 if c.get("type") == kind), None)


def internal_ips(node: dict) -> list[str]:
    return [a.get("address", "") for a in node.get("status", {}).get("addresses") or []
            if a.get("type") == "InternalIP"]


def _name(node: dict) -> str:
    return node.get("metadata", {}).get("name", "?")


def _ready_text(cond: dict, now: datetime) -> str:
    text = f"Ready={cond.get('status')}"
    if cond.get("reason"):
        text += f" ({cond['reason']})"
    if cond.get("message"):
        text += f": {cond['message']}"
    since = parse_time(cond.get("lastTransitionTime"))
    if since:
        text += f"; for {human((now - since).total_seconds())} (since {cond['lastTransitionTime']})"
    return text


def _diagnosis(name: str, cond: dict) -> tuple[str, str]:
    message = cond.get("message", "")
    if "PLEG is not healthy" in message:
        return PLEG_WHY, (
            f"on {name}: `journalctl -u kubelet | grep -i pleg`; `crictl pods` / `docker ps -a` "
            "for sandboxes stuck Created or Removal In Progress; start or remove the stuck "
            "sandbox (crictl rmp -f ID / docker rm -f ID) and recreate its pod (kubectl delete "
            "pod), or `systemctl restart kubelet`; lasting fix: upgrade the runtime's libcni / "
            "CNI plugins past containernetworking/cni#567")
    if cond.get("status") == "Unknown":
        return UNKNOWN_WHY, (
            f"on {name}: `systemctl status kubelet`, `journalctl -u kubelet -n 200`; check the "
            "node reaches the apiserver (the controlPlaneEndpoint, 6443/tcp) and that "
            "/var/lib/kubelet/pki/kubelet-client-current.pem has not expired; if the node is "
            "down, bring it up or `kubectl drain` and `kubectl delete node` it")
    return NOT_READY_WHY, (
        f"on {name}: `journalctl -u kubelet -n 200`; `crictl info` (RuntimeReady / "
        "NetworkReady); `systemctl status containerd` (or docker/cri-docker); "
        "`ls /etc/cni/net.d` - empty means the pod network add-on has not run there: check its "
        f"DaemonSet pod on {name} (`kubectl get pods -A -o wide --field-selector "
        f"spec.nodeName={name}`)")


@check("cluster_nodes_ready",
       ("every Node Ready, every inventory node registered; `PLEG is not healthy` recognised "
        "and explained (field report 02)"),
       area="node",
       needs=('api', 'cluster'),
       reads=("Nodes (API)",),
       asserts=("every Node's Ready condition is True (status, reason, message and since when"
                " otherwise); `PLEG is not healthy` explained (runtime calls hanging; report "
                "02's CNI lock bug) with the commands to find the stuck sandbox; every "
                "inventory node has a Node (by name or InternalIP)"),
       prevents="NotReady nodes: pods evicted, nothing scheduled there")
def cluster_nodes_ready(ctx: Context) -> list[Finding]:
    hosts = [(h.name, node_ip(h)) for h in ctx.cluster.inventory.by_role(*NODE)]
    state = ctx.api
    if not state.nodes:
        return [Finding("nodes", False, f"the API at {state.endpoint} lists no Node objects",
                        "a Ready Node per kubelet", "no kubelet has registered: nothing can be "
                        "scheduled", "on each node: `systemctl status kubelet`, "
                        "`journalctl -u kubelet`; join it with the command from "
                        "`kubeadm token create --print-join-command`",
                        ("kubectl get nodes -o wide",))]
    findings = []
    for node in sorted(state.nodes, key=_name):
        name = _name(node)
        cond = condition(node, "Ready")
        jsonpath = (f"kubectl get node {name} -o jsonpath="
                    "'{.status.conditions[?(@.type==\"Ready\")]}'")
        if cond is None:
            findings.append(Finding(name, False, "no Ready condition", "Ready=True",
                                    UNKNOWN_WHY, _diagnosis(name, {"status": "Unknown"})[1],
                                    (jsonpath + " -> (none)",)))
            continue
        observed = _ready_text(cond, state.now)
        evidence = (f"{jsonpath} -> {json.dumps(cond, sort_keys=True)}",)
        if cond.get("status") == "True":
            findings.append(passed(name, observed, "Ready=True", *evidence))
        else:
            why, fix = _diagnosis(name, cond)
            findings.append(Finding(name, False, observed, "Ready=True", why, fix, evidence))
    names = {_name(n) for n in state.nodes}
    ips = {ip for n in state.nodes for ip in internal_ips(n)}
    for host, ip in hosts:
        if host in names or ip in ips:
            continue
        findings.append(Finding(
            host, False, f"no Node object (name {host} or InternalIP {ip})",
            "a Node for every inventory node",
            "its kubelet never registered (kubeadm join not run, or the kubelet cannot reach the "
            "apiserver): no pod is scheduled there",
            f"on {host}: `systemctl status kubelet`, `journalctl -u kubelet -n 200`; join it "
            "with the command from `kubeadm token create --print-join-command` (add "
            "--control-plane --certificate-key for a control plane)",
            ("kubectl get nodes -o wide -> " + ", ".join(
                f"{_name(n)} {'/'.join(internal_ips(n))}" for n in state.nodes),)))
    return findings


def _node_events(state: ApiState, name: str, window: float) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for ev in state.events:
        inv = ev.get("involvedObject") or {}
        if inv.get("kind") != "Node" or inv.get("name") != name:
            continue
        if ev.get("reason") not in REASONS:
            continue
        last = event_last(ev)
        if last and (state.now - last).total_seconds() <= window * 60:
            out.setdefault(ev["reason"], []).append(ev)
    return out


@check("cluster_nodes_not_flapping",
       "no NodeReady/NodeNotReady event storm in the window (report 02's x8929/x8932)",
       area="node",
       needs=('api', 'cluster'),
       reads=("NodeReady/NodeNotReady events (API)",),
       asserts=("per Node, NodeReady/NodeNotReady events seen within `--flap-window` (60 "
                "min): NotReady at least once and at least `--flap-threshold` (4) occurrences"
                " in all = flapping, shown kubectl-style (`NodeReady (x8929 over 45d)`)"),
       prevents="report 02's node flapping for weeks")
def cluster_nodes_not_flapping(ctx: Context) -> list[Finding]:
    state = ctx.api
    settings = ctx.cluster.settings
    window, threshold = settings.flap_window_minutes, settings.flap_threshold
    expected = (f"fewer than {threshold} NodeReady/NodeNotReady occurrences in "
                f"{window:g} min")
    findings = []
    for node in sorted(state.nodes, key=_name):
        name = _name(node)
        events = _node_events(state, name, window)
        if not events:
            findings.append(passed(name, "no NodeReady/NodeNotReady events in the last "
                                   f"{window:g} min", expected))
            continue
        counts = {r: sum(event_count(e) for e in events.get(r, [])) for r in REASONS}
        last = max(t for evs in events.values() for t in map(event_last, evs) if t)
        observed = (", ".join(f"{r} {event_summary(events[r])}" for r in REASONS if r in events)
                    + f", last {human((state.now - last).total_seconds())} ago")
        evidence = [f"kubectl get events -A --field-selector involvedObject.kind=Node,"
                    f"involvedObject.name={name}"]
        evidence += [f"{e.get('type', 'Normal')} {r} {event_summary([e])}: {e.get('message', '')}"
                     for r in REASONS for e in events.get(r, [])]
        cond = condition(node, "Ready")
        if cond:
            evidence.append(f"now: {_ready_text(cond, state.now)}")
        if counts["NodeNotReady"] >= 1 and sum(counts.values()) >= threshold:
            findings.append(Finding(
                name, False, observed, expected, FLAP_WHY,
                f"on {name}: `journalctl -u kubelet | grep -i -e pleg -e 'not ready'` (PLEG "
                "messages mean runtime/CNI calls hang: `crictl pods`, `docker ps -a` for "
                "sandboxes stuck Created / Removal In Progress); check the kubelet reaches the "
                "apiserver steadily (6443/tcp, load balancer health checks) and the node's "
                "memory/CPU pressure",
                tuple(evidence)))
        else:
            findings.append(passed(name, observed, expected, *evidence))
    return findings


# --- health beyond Ready: the other conditions, cordons, node.kubernetes.io taints ----------
# Names as k8s.io/api v0.37.2 core/v1 declares them (types.go NodeConditionType,
# well_known_taints.go); the node lifecycle controller adds the *-pressure, unschedulable and
# network-unavailable taints (NoSchedule) from the conditions and spec.unschedulable
# (pkg/controller/nodelifecycle doNoScheduleTaintingPass), not-ready/unreachable (NoExecute)
# from Ready.
PRESSURE = {
    "MemoryPressure": (
        "node.kubernetes.io/memory-pressure",
        "the kubelet evicts pods to reclaim memory and the scheduler places no new pod there "
        "(taint node.kubernetes.io/memory-pressure:NoSchedule)",
        "`kubectl describe node {n}` (Allocated resources); `kubectl top pods -A --sort-by="
        "memory` for the pods on {n}; lower their memory use or limits or move them; the "
        "threshold is the kubelet's evictionHard memory.available"),
    "DiskPressure": (
        "node.kubernetes.io/disk-pressure",
        "the kubelet evicts pods and deletes unused images to reclaim disk, and the scheduler "
        "places no new pod there (taint node.kubernetes.io/disk-pressure:NoSchedule)",
        "on {n}: `df -h /var/lib/kubelet /var/lib/containerd /var/log`; `crictl rmi --prune`; "
        "free the filesystem (container logs, images, emptyDirs); the thresholds are the "
        "kubelet's evictionHard nodefs.available / imagefs.available"),
    "PIDPressure": (
        "node.kubernetes.io/pid-pressure",
        "the kubelet evicts pods to free process IDs and the scheduler places no new pod "
        "there (taint node.kubernetes.io/pid-pressure:NoSchedule)",
        "on {n}: `ps -eLf | wc -l` against `cat /proc/sys/kernel/pid_max`; find the pod that "
        "forks without end; cap pods with the kubelet's podPidsLimit"),
    "NetworkUnavailable": (
        "node.kubernetes.io/network-unavailable",
        "the node's pod network is not set up (the CNI or the route controller did not mark it "
        "ready): the scheduler places no new pod there (taint node.kubernetes.io/network-"
        "unavailable:NoSchedule) and its pods cannot reach the other nodes' pods",
        "check the pod network add-on's pod on {n} (`kubectl get pods -A -o wide "
        "--field-selector spec.nodeName={n}`) and its logs; Calico and Cilium set this "
        "condition to False once their agent runs there"),
}
# The taints that follow from Ready (cluster_nodes_ready reports them) or from a cordon.
READY_TAINTS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")
UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
EFFECT = {
    "NoSchedule": "the scheduler places no new pod there without a toleration",
    "PreferNoSchedule": "the scheduler avoids placing pods there",
    "NoExecute": "pods without a toleration for it are evicted (after their "
                 "tolerationSeconds)",
}
OUT_OF_SERVICE_WHY = (
    "node.kubernetes.io/out-of-service (non-graceful node shutdown, KEP-2268): the pods "
    "there are force-deleted and their volumes detached; left after the node is back, "
    "nothing without a toleration runs there again")


def _since(stamp: str | None, now: datetime) -> str:
    when = parse_time(stamp)
    return f" for {human((now - when).total_seconds())} (since {stamp})" if when else ""


def _taint_text(t: dict, now: datetime) -> str:
    text = f"taint {t.get('key')}" + (f"={t['value']}" if t.get("value") else "")
    return text + f":{t.get('effect')}" + _since(t.get("timeAdded"), now)


def _expected_status(kind: str) -> str:
    """Ready and other *Ready conditions say True when well; every other node condition
    (the kubelet's pressures, NetworkUnavailable, node-problem-detector's KernelDeadlock,
    ReadonlyFilesystem, …) says True when its problem is there."""
    return "True" if kind.endswith("Ready") else "False"


@check("cluster_node_health",
       "beyond Ready: no Node condition reporting a problem, none cordoned, no "
       "node.kubernetes.io taint left",
       area="node",
       needs=("api",),
       reads=("Nodes: conditions, spec.unschedulable, taints (API)",),
       asserts=("per Node: MemoryPressure, DiskPressure, PIDPressure, NetworkUnavailable and "
                "any custom condition (node-problem-detector's) not True (a *Ready condition "
                "True), each failure with since when and what it stops; not cordoned "
                "(spec.unschedulable); no node.kubernetes.io/* taint besides the ones "
                "cluster_nodes_ready explains (not-ready, unreachable)"),
       prevents="pods evicted or never scheduled on a node that looks Ready")
def cluster_node_health(ctx: Context) -> list[Finding]:
    state = ctx.api
    findings = []
    for node in sorted(state.nodes, key=_name):
        name = _name(node)
        taints = {t.get("key"): t for t in node.get("spec", {}).get("taints") or []}
        evidence = (f"kubectl get node {name} -o jsonpath='{{.status.conditions}}"
                    f"{{.spec.unschedulable}}{{.spec.taints}}'",)
        bad = []
        ready = condition(node, "Ready") or {}
        for cond in node.get("status", {}).get("conditions") or []:
            kind, status = cond.get("type", "?"), cond.get("status")
            if kind == "Ready" or status == _expected_status(kind):
                continue
            if status == "Unknown" and ready.get("status") != "True":
                continue  # the kubelet stopped posting: cluster_nodes_ready says why
            text = f"{kind}={status}" + (f" ({cond['reason']})" if cond.get("reason") else "")
            text += (f": {cond['message']}" if cond.get("message") else "")
            text += _since(cond.get("lastTransitionTime"), state.now)
            taint_key, why, fix = PRESSURE.get(kind, (None, (
                f"the node reports the problem {kind} (a condition set by "
                f"{cond.get('reason') or 'a node agent'}, e.g. node-problem-detector): "
                "nothing evicts because of it, but what it names is wrong on the node"),
                f"`kubectl describe node {{n}}`: condition {kind}; fix what it reports on "
                "{n} (node-problem-detector's: `journalctl -k`, its monitors' logs)"))
            if taint_key in taints:
                text += "; " + _taint_text(taints.pop(taint_key), state.now)
            bad.append(Finding(f"{name}:{kind}", False, text, f"{kind}="
                               f"{_expected_status(kind)}", why, fix.format(n=name),
                               evidence))
        if node.get("spec", {}).get("unschedulable"):
            text = "cordoned (spec.unschedulable=true)"
            if UNSCHEDULABLE in taints:
                text += "; " + _taint_text(taints.pop(UNSCHEDULABLE), state.now)
            bad.append(Finding(
                f"{name}:cordoned", False, text, "schedulable",
                "the scheduler places no new pod there (DaemonSet pods still run): the "
                "cluster has a node less than it seems, and a drain left half-done stays so",
                f"`kubectl uncordon {name}` once its maintenance is over (or `kubectl drain "
                f"{name} --ignore-daemonsets` and `kubectl delete node {name}` to retire it)",
                evidence))
        for key, t in sorted(taints.items()):
            if not str(key).startswith("node.kubernetes.io/") or key in READY_TAINTS:
                continue
            why = (OUT_OF_SERVICE_WHY if key == "node.kubernetes.io/out-of-service" else
                   f"{EFFECT.get(t.get('effect'), 'the scheduler honours it')}; no condition "
                   "or cordon explains it any more")
            bad.append(Finding(f"{name}:{key}", False, _taint_text(t, state.now),
                               f"no {key} taint", why,
                               f"if {name} is healthy again: `kubectl taint nodes {name} "
                               f"{key}-`", evidence))
        if bad:
            findings += bad
        else:
            conds = ", ".join(f"{c.get('type')}={c.get('status')}"
                              for c in node.get("status", {}).get("conditions") or []
                              if c.get("type") != "Ready") or "no condition besides Ready"
            findings.append(passed(name, f"{conds}; schedulable; no node.kubernetes.io taint",
                                   "no problem condition, not cordoned", *evidence))
    if not state.nodes:
        findings.append(Finding("nodes", False, f"the API at {state.endpoint} lists no Node",
                                "Nodes to judge", "nothing can be scheduled",
                                "see cluster_nodes_ready", ("kubectl get nodes",)))
    return findings
