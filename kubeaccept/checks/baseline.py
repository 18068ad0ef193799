"""The pre-upgrade baseline: what matters for an upgrade, recorded per node and for the
cluster (`--save-baseline FILE`), and compared with a later run (`--compare-baseline FILE`):
a port that stopped listening, a changed cgroup driver or sysctl, a member that left, new
container restarts fail; versions and certificate dates that moved are shown, not failed (an
upgrade changes them)."""

from __future__ import annotations

import datetime as dt
import json
import re

from cryptography import x509

from kubeaccept.checks import NodeContext
from kubeaccept.checks.cgroup import detect_runtime, kubelet_driver, read_runtime
from kubeaccept.checks.etcd import member_list
from kubeaccept.facts.config import KUBELET_CONFIG, ConfigError, load
from kubeaccept.model.findings import Finding, passed
from kubeaccept.model.registry import Context, check
from kubeaccept.model.roles import ETCD, LB, NODE

FORMAT = "kubeaccept-baseline/1"
# keys whose change is expected from an upgrade: shown, never failed
INFO = ("version ", "image ", "kernel", "cert ", "listen+")
KUBELET_KEYS = ("cgroupDriver", "failSwapOn", "containerRuntimeEndpoint", "clusterDNS",
                "clusterDomain", "resolvConf", "staticPodPath", "rotateCertificates")
MANIFESTS = {"kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"}


def node_snapshot(ctx: NodeContext) -> dict[str, str]:
    """Flat key -> value of one node, every value a string (diffs read as 'a → b')."""
    f, snap = ctx.facts, {}
    if v := (f.section("kubelet-version") or "").strip():
        snap["version kubelet"] = v
    for program, version in sorted(f.runtime_versions.items()):
        snap[f"version {program}"] = ".".join(map(str, version))
    if v := (f.section("kernel") or "").strip():
        snap["kernel"] = v
    for name in sorted(MANIFESTS):
        text = f.file(f"/etc/kubernetes/manifests/{name}.yaml").text or ""
        if m := re.search(r"^\s*image:\s*[\"']?(\S+?)[\"']?\s*$", text, re.M):
            snap[f"image {name}"] = m.group(1)
    try:
        kubelet = load(f.file(KUBELET_CONFIG)) or {}
    except ConfigError as exc:
        kubelet, snap["kubelet config"] = {}, f"unreadable: {exc}"
    for key in KUBELET_KEYS:
        if key in kubelet:
            snap[f"kubelet {key}"] = json.dumps(kubelet[key], sort_keys=True)
    if kubelet or f.file(KUBELET_CONFIG).exists:
        snap["kubelet cgroup driver"] = kubelet_driver(ctx, kubelet)[0]
        runtime, _ = detect_runtime(ctx, kubelet)
        if runtime:
            try:
                found = read_runtime(ctx, runtime)
                driver = (f"problem: {found.observed}" if isinstance(found, Finding)
                          else found.driver or "unknown")
            except ConfigError as exc:
                driver = f"unreadable: {exc}"
            snap[f"runtime {runtime} cgroup driver"] = str(driver)
    for key, value in sorted(f.sysctls.items()):
        snap[f"sysctl {key}"] = value
    for ln in f.listeners:
        key = f"listen {ln.proto}/{ln.port}"
        snap[key] = ", ".join(sorted({*snap.get(key, "").split(", "), ln.process or "?"} - {""}))
    for path, pem in sorted(f.certificates.items()):
        try:
            cert = x509.load_pem_x509_certificate(pem)
            snap[f"cert {path}"] = cert.not_valid_after_utc.isoformat()
        except ValueError:
            continue
    members = _etcd_members(f.etcd)
    if members:
        snap["etcd members"] = members
    return snap


def _etcd_members(answers: dict | None) -> str:
    listed = member_list(answers or {})
    return ", ".join(sorted(str(m.get("name") or m.get("ID")) for m in
                            (listed or {}).get("members", []) if isinstance(m, dict)))


def cluster_snapshot(api) -> dict[str, str]:
    """Node conditions and versions, and every container's restart count, from the API."""
    snap = {}
    for node in api.nodes:
        name = node.get("metadata", {}).get("name", "?")
        for cond in node.get("status", {}).get("conditions", []) or []:
            snap[f"node {name} {cond.get('type')}"] = str(cond.get("status"))
        info = node.get("status", {}).get("nodeInfo", {}) or {}
        for key in ("kubeletVersion", "containerRuntimeVersion", "kernelVersion"):
            if info.get(key):
                snap[f"version node {name} {key}"] = str(info[key])
    for pod in api.pods:
        meta = pod.get("metadata", {})
        where = f"{meta.get('namespace')}/{meta.get('name')}"
        status = pod.get("status", {})
        for cs in (status.get("initContainerStatuses") or []) + \
                (status.get("containerStatuses") or []):
            snap[f"restarts {where}:{cs.get('name')}"] = str(cs.get("restartCount", 0))
    return snap


WHY = {
    "listen": "a port that stopped listening is a component that no longer runs or moved",
    "sysctl": "a kernel setting changed since the baseline (an upgrade's package or a reboot "
              "reset it); the sysctl checks say whether the new value is safe",
    "kubelet": "kubelet's configuration changed: the upgrade rewrote "
               "/var/lib/kubelet/config.yaml or kubeadm-flags.env",
    "runtime": "the runtime's cgroup driver changed: kubelet and the runtime must agree "
               "(\"kubelet cgroup driver … is different from docker cgroup driver\")",
    "etcd": "the etcd membership changed: a member that left lowers the fault tolerance",
    "node": "a Node's condition changed since the baseline",
    "restarts": "containers restarted since the baseline: the upgrade broke or destabilised "
                "them",
}


def diff(where: str, before: dict[str, str] | None,
         now: dict[str, str]) -> tuple[list[Finding], list[dict]]:
    """Findings (one per change; upgrade-expected ones pass with a note) and the changes
    for the report's section."""
    if before is None:
        return [Finding(where, False, "not in the baseline",
                        f"{where} recorded by --save-baseline",
                        "a host or cluster missing from the baseline cannot be compared",
                        "save a baseline with this inventory first (--save-baseline)")], []
    findings, changes = [], []
    for key in sorted(set(before) | set(now)):
        old, new = before.get(key), now.get(key)
        if old == new:
            continue
        if key.startswith("restarts "):
            if new is None or old is None and new == "0":
                continue  # pods come and go; only restarts count
            if old is not None and int(new) < int(old):
                continue  # the pod was recreated
        if (old is None or new is None) and _per_interface(key):
            continue  # pod veths come and go with their pods
        kind = key.split(" ", 1)[0]
        info = key.startswith(INFO) or (kind == "listen" and old is None)
        shown_old = "absent" if old is None else old
        shown_new = "absent" if new is None else new
        changes.append({"where": where, "what": key, "before": shown_old, "now": shown_new,
                        "failed": not info})
        subject = f"{where}:{key}"
        if info:
            findings.append(Finding(subject, True, shown_new, shown_old,
                                    note=f"{subject}: {shown_old} → {shown_new}"))
        else:
            findings.append(Finding(
                subject, False, f"{key}: {shown_old} → {shown_new}",
                f"{key}: {shown_old} (as in the baseline)", WHY.get(kind, "changed since the "
                                                                    "baseline"),
                f"on {where}: {key} was {shown_old} in the baseline, now {shown_new}: "
                "restore it, or save a new baseline if the change is intended",
                (f"baseline: {shown_old}", f"now: {shown_new}")))
    if not findings or all(f.ok for f in findings):
        findings.insert(0, passed(where, f"{len(now)} facts, no change that matters",
                                  "as in the baseline", f"{len(now)} facts compared"))
    return findings, changes


def _per_interface(key: str) -> bool:
    m = re.match(r"sysctl net\.ipv[46]\.conf\.(.+)\.[a-z_]+$", key)
    return bool(m) and m.group(1) not in ("all", "default")


def _judge(base, where: str, part: str, now: dict) -> list[Finding]:
    if base.previous is None:  # --save-baseline only
        base.record(part, where, now, [])
        return [passed(where, f"{len(now)} facts recorded", "a baseline",
                       f"{len(now)} facts")]
    findings, changes = diff(where, base.previous.get(part, {}).get(where), now)
    base.record(part, where, now, changes)
    return findings


@check("node_unchanged", "nothing that matters changed on the node since the baseline "
       "(ports, sysctls, kubelet and runtime config, etcd members); versions shown",
       area="baseline", roles=(*NODE, ETCD, LB), needs=("node", "baseline"),
       reads=("the facts of the other node checks", "the --compare-baseline file"),
       asserts="with `--save-baseline FILE`: records versions (kubelet, runtimes, kernel, the "
       "static pods' images), kubelet's config keys and cgroup driver, the runtime's cgroup "
       "driver, every sysctl read, listening ports and their processes, certificate expiry "
       "dates, etcd members. With `--compare-baseline FILE`: fails on a port that stopped "
       "listening, a changed sysctl, kubelet or runtime setting, an etcd member that left; "
       "versions, images, certificate dates and new listeners are shown, not failed",
       prevents="an upgrade that silently changed a node (the cgroup driver, a port, a "
       "sysctl) found only when pods break", only_with=("save_baseline", "compare_baseline"))
def node_unchanged(ctx: Context) -> list[Finding]:
    return _judge(ctx.baseline, ctx.node.host.name, "nodes", node_snapshot(ctx.node))


@check("cluster_unchanged", "no Node condition changed and no container restarted since the "
       "baseline; Node versions shown", area="baseline", needs=("api", "baseline"),
       reads=("Nodes and pods (API)", "the --compare-baseline file"),
       asserts="Node conditions (Ready, pressures), kubelet/runtime/kernel versions per Node, "
       "restart counts per pod container; a container restarted more often than in the "
       "baseline fails (new pods with no restarts and deleted pods are not changes)",
       prevents="an upgrade that leaves pods crash-looping or a Node not Ready",
       only_with=("save_baseline", "compare_baseline"))
def cluster_unchanged(ctx: Context) -> list[Finding]:
    return _judge(ctx.baseline, "cluster", "cluster", cluster_snapshot(ctx.api))


def document(inventory: str, nodes: dict, cluster: dict) -> dict:
    return {"format": FORMAT, "taken": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "inventory": inventory, "nodes": nodes, "cluster": cluster}


def read(path) -> dict:
    """The baseline file, or ValueError with what is wrong with it."""
    try:
        with open(path) as fh:
            data = json.loads(fh.read())
    except OSError as exc:
        raise ValueError(f"--compare-baseline {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ValueError(f"--compare-baseline {path}: not JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"--compare-baseline {path}: not a {FORMAT} file (write one with "
                         "--save-baseline)")
    return data
