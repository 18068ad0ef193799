"""Pods and DaemonSets: no container crash-looping or restarting without end."""

from __future__ import annotations

from kubeaccept.checks.nodes import condition, event_last, event_summary
from kubeaccept.model.apistate import ApiState
from kubeaccept.model.findings import Finding, passed
from kubeaccept.model.registry import Context, check

BAD_WAITING = {"CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "CreateContainerError",
               "RunContainerError", "ContainerCannotRun"}
CANNOT_RUN_WHY = (
    "the container runtime cannot create the container (field report 02: fluentd "
    "\"ContainerCannotRun ... OCI runtime create failed: container_linux.go:348\", 1,000-3,000 "
    "restarts over 28 days, \"FailedSync ... context deadline exceeded\"); runtime calls hang, "
    "the kubelet reports \"PLEG is not healthy\" and the node flaps NotReady")
IMAGE_WHY = "the image cannot be pulled: the container never starts and what it serves is down"
GENERIC_WHY = "the container keeps dying; what it serves is down or degraded"
MAX_EVENTS = 5


def _meta(obj: dict) -> tuple[str, str]:
    m = obj.get("metadata", {})
    return m.get("namespace", ""), m.get("name", "?")


def owner(pod: dict) -> tuple[str, str] | None:
    """(kind, name) of the controller; a ReplicaSet's Deployment by its pod-template-hash."""
    refs = pod.get("metadata", {}).get("ownerReferences") or []
    ref = next((r for r in refs if r.get("controller")), refs[0] if refs else None)
    if ref is None:
        return None
    kind, name = ref.get("kind", "?"), ref.get("name", "?")
    hash_ = pod.get("metadata", {}).get("labels", {}).get("pod-template-hash")
    if kind == "ReplicaSet" and hash_ and name.endswith(f"-{hash_}"):
        return "Deployment", name.removesuffix(f"-{hash_}")
    return kind, name


def warning_events(state: ApiState, ns: str, name: str) -> list[str]:
    """The pod's Warning events, newest first, kubectl style."""
    evs = [e for e in state.events if e.get("type") == "Warning"
           and (e.get("involvedObject") or {}).get("kind") == "Pod"
           and (e.get("involvedObject") or {}).get("namespace") == ns
           and (e.get("involvedObject") or {}).get("name") == name]
    evs.sort(key=lambda e: event_last(e) or state.now, reverse=True)
    return [f"{e.get('reason', '?')} {event_summary([e])}: {e.get('message', '').strip()}"
            for e in evs[:MAX_EVENTS]]


def _terminated(cs: dict) -> str:
    term = (cs.get("lastState") or {}).get("terminated") or \
        (cs.get("state") or {}).get("terminated")
    if not term:
        return ""
    text = f"{term.get('reason', '?')} (exit code {term.get('exitCode', '?')})"
    return text + (f": {term['message'].strip()}" if term.get("message") else "")


def _statuses(pod: dict):
    status = pod.get("status", {})
    for key in ("initContainerStatuses", "containerStatuses"):
        yield from status.get(key) or []


def _container_finding(state: ApiState, pod: dict, cs: dict, threshold: int) -> Finding | None:
    waiting = (cs.get("state") or {}).get("waiting") or {}
    reason, restarts = waiting.get("reason", ""), int(cs.get("restartCount") or 0)
    if reason not in BAD_WAITING and restarts <= threshold:
        return None
    ns, name = _meta(pod)
    container = cs.get("name", "?")
    state_text = reason or ("running" if "running" in (cs.get("state") or {}) else "not running")
    if reason and reason != "CrashLoopBackOff" and waiting.get("message"):
        state_text += f" ({waiting['message'].strip()})"
    observed = f"{state_text}, {restarts} restarts"
    last = _terminated(cs)
    if last:
        observed += f"; last terminated: {last}"
    node = pod.get("spec", {}).get("nodeName") or "(not scheduled)"
    own = owner(pod)
    evidence = [f"node: {node}", f"owner: {own[0]} {ns}/{own[1]}" if own else "owner: none",
                *warning_events(state, ns, name)]
    fix = (f"`kubectl -n {ns} describe pod {name}`; "
           f"`kubectl -n {ns} logs {name} -c {container} --previous`")
    text = f"{reason} {last}"
    if "ContainerCannotRun" in text or "OCI runtime create failed" in text \
            or reason in ("CreateContainerError", "RunContainerError"):
        why = CANNOT_RUN_WHY
        fix += (f"; on {node}: `crictl ps -a --name {container}` / `docker ps -a` (containers "
                "stuck Created / Removal In Progress), `journalctl -u kubelet | grep -i -e pleg "
                f"-e {name}`; remove the stuck containers and recreate the pod, or `systemctl "
                "restart kubelet`; upgrade the runtime's libcni (containernetworking/cni#567)")
    elif reason in ("ImagePullBackOff", "ErrImagePull"):
        why = IMAGE_WHY
        fix += f"; on {node}: `crictl pull {cs.get('image', 'IMAGE')}` to see the registry's error"
    else:
        why = GENERIC_WHY
    return Finding(f"{ns}/{name}:{container}", False, observed,
                   f"not crash-looping, at most {threshold} restarts", why, fix, tuple(evidence))


@check("cluster_pods_healthy",
       ("no container in CrashLoopBackOff or with runaway restarts, with its last termination"
        " reason, exit code, message and warning events"),
       area="node",
       needs=('api', 'cluster'),
       reads=("pods and their warning events (API)",),
       asserts=("no container (init containers too) waiting in CrashLoopBackOff, "
                "ImagePullBackOff, ErrImagePull, CreateContainerError, RunContainerError, "
                "ContainerCannotRun, or restarted more than `--restart-threshold` (10) times;"
                " names namespace/pod:container, node, owner, restarts, last termination "
                "reason, exit code and message, and the pod's warning events; kube-system "
                "first, then DaemonSet pods"),
       prevents=("report 02's fluentd: `ContainerCannotRun … OCI runtime create failed`, "
                 "1,000–3,000 restarts"))
def cluster_pods_healthy(ctx: Context) -> list[Finding]:
    state = ctx.api
    settings = ctx.cluster.settings
    pods = [p for p in state.pods if p.get("status", {}).get("phase") != "Succeeded"]
    if not pods:
        return [Finding("pods", False, f"the API at {state.endpoint} lists no pods",
                        "the kube-system pods at least", "a kubeadm cluster always runs "
                        "kube-system pods (control-plane mirrors, kube-proxy, CoreDNS): the "
                        "answer is wrong or the credentials see nothing",
                        "`kubectl get pods -A -o wide`; check the kubeconfig's user and RBAC")]
    failing = []
    for pod in pods:
        for cs in _statuses(pod):
            f = _container_finding(state, pod, cs, settings.restart_threshold)
            if f:
                failing.append((pod, f))
    if failing:
        def order(item: tuple[dict, Finding]) -> tuple:
            pod, f = item
            ds = (owner(pod) or ("", ""))[0] == "DaemonSet"
            return (_meta(pod)[0] != "kube-system", not ds, f.subject)
        return [f for _, f in sorted(failing, key=order)]
    by_ns: dict[str, list[dict]] = {}
    for pod in pods:
        by_ns.setdefault(_meta(pod)[0], []).append(pod)
    findings = []
    for ns, group in sorted(by_ns.items()):
        most, where = 0, ""
        for pod in group:
            for cs in _statuses(pod):
                if int(cs.get("restartCount") or 0) > most:
                    most = int(cs["restartCount"])
                    where = f"{ns}/{_meta(pod)[1]}:{cs.get('name', '?')}"
        restarts = f"most restarts {most} ({where})" if most else "no restarts"
        findings.append(passed(ns, f"{len(group)} pods, none crash-looping, {restarts}",
                               f"not crash-looping, at most {settings.restart_threshold} "
                               "restarts"))
    return findings


def _not_ready(pod: dict) -> str:
    """"w2 (kube-flannel-ds-abcde: CrashLoopBackOff)"."""
    ns, name = _meta(pod)
    reasons = [((cs.get("state") or {}).get("waiting") or {}).get("reason", "")
               for cs in _statuses(pod)]
    reason = next((r for r in reasons if r), pod.get("status", {}).get("phase", "?"))
    return f"{pod.get('spec', {}).get('nodeName') or '(unscheduled)'} ({name}: {reason})"


@check("cluster_daemonsets",
       "every DaemonSet ready where it is scheduled, naming the nodes where it is not",
       area="node",
       needs=('api',),
       reads=("DaemonSets and their pods (API)",),
       asserts=("every DaemonSet: desired = ready = updated, none misscheduled; names the "
                "nodes whose pod is not ready and why"),
       prevents="a node without its CNI/proxy/log agent")
def cluster_daemonsets(ctx: Context) -> list[Finding]:
    state = ctx.api
    findings = []
    for ds in sorted(state.daemonsets, key=_meta):
        ns, name = _meta(ds)
        st = ds.get("status", {})
        desired, ready = st.get("desiredNumberScheduled", 0), st.get("numberReady", 0)
        mis, updated = st.get("numberMisscheduled", 0), st.get("updatedNumberScheduled")
        pods = [p for p in state.pods if _meta(p)[0] == ns and any(
            r.get("kind") == "DaemonSet" and r.get("name") == name
            for r in p.get("metadata", {}).get("ownerReferences") or [])]
        bad = sorted((p for p in pods if (condition(p, "Ready") or {}).get("status") != "True"),
                     key=lambda p: p.get("spec", {}).get("nodeName") or "")
        observed = f"{ready} of {desired} ready"
        if bad:
            observed += "; not ready on " + ", ".join(map(_not_ready, bad))
        if mis:
            observed += f"; {mis} misscheduled"
        if updated is not None and updated != desired:
            observed += f"; {updated} of {desired} updated"
        subject = f"{ns}/{name}"
        evidence = (f"kubectl -n {ns} get ds {name} -> desired {desired}, ready {ready}, "
                    f"updated {updated}, misscheduled {mis}",)
        if ready == desired and not mis and (updated is None or updated == desired):
            findings.append(passed(subject, observed, "all scheduled pods ready and "
                                   "updated", *evidence))
            continue
        pods_named = " ".join(_meta(p)[1] for p in bad)
        findings.append(Finding(
            subject, False, observed, f"{desired} of {desired} ready and updated, none "
            "misscheduled",
            "a DaemonSet runs a node-level service (pod network, kube-proxy, log shipping like "
            "fluentd in field report 02) on each node: where its pod is not ready, that node "
            "lacks the service",
            f"`kubectl -n {ns} rollout status ds/{name}`"
            + (f"; `kubectl -n {ns} describe pod {pods_named}` and `kubectl -n {ns} logs POD "
               "--previous`" if bad else f"; `kubectl -n {ns} describe ds {name}`"),
            evidence))
    return findings
