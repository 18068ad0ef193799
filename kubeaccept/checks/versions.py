"""Version skew between the control planes' apiservers and every kubelet, as Kubernetes'
version skew policy allows it (kubernetes.io/releases/version-skew-policy): what an upgrade
left half done, or a node joined with the wrong packages, breaks."""

from __future__ import annotations

import re

from kubeaccept.facts import NodeFacts
from kubeaccept.model.findings import Finding, not_checked, passed
from kubeaccept.model.registry import CannotCheck, Context, check
from kubeaccept.model.roles import CONTROL_PLANE

MANIFEST = "/etc/kubernetes/manifests/kube-apiserver.yaml"
POLICY = "https://kubernetes.io/releases/version-skew-policy/"
# kubelet may be up to three minors older than kube-apiserver; a kubelet older than 1.25 up
# to two (the policy's note on kubelet < 1.25)
KUBELET_BEHIND, OLD_KUBELET_BEHIND, OLD_KUBELET_BELOW = 3, 2, (1, 25)


def minor_of(text: str) -> tuple[int, int] | None:
    """(major, minor) of `v1.37.2`, `1.36`, `v1.35.0-rc.1+k3s1`; None for anything else."""
    m = re.match(r"v?(\d+)\.(\d+)(?:\.\d+)?(?:[-+][0-9A-Za-z.+-]*)?$", text.strip())
    return (int(m.group(1)), int(m.group(2))) if m else None


def apiserver_image(facts: NodeFacts) -> tuple[str | None, str]:
    """(the tag of the kube-apiserver static pod's image, or None; what was read)."""
    manifest = facts.file(MANIFEST)
    if not manifest.exists or manifest.text is None:
        return None, f"{MANIFEST}: {manifest.error or 'missing'}"
    m = re.search(r"^\s*(?:-\s+)?image:\s*['\"]?\S*kube-apiserver:([^\s'\"@]+)", manifest.text,
                  re.M)
    return (m.group(1), f"{MANIFEST}: image kube-apiserver:{m.group(1)}") if m else \
        (None, f"{MANIFEST}: no kube-apiserver image")


def _fmt(v: tuple[int, int]) -> str:
    return f"{v[0]}.{v[1]}"


@check("cluster_version_skew",
       ("the apiservers within one minor of each other, every kubelet not newer than the "
        "oldest apiserver and at most three minors older (the version skew policy)"),
       area="control plane",
       needs=("api", "cluster"),
       reads=("/etc/kubernetes/manifests/kube-apiserver.yaml on every control plane (its "
              "image tag)", "Nodes' status.nodeInfo.kubeletVersion (API)"),
       asserts=("the kube-apiserver static pods' image tags on the control planes are within "
                "one minor version of each other; every Node's `kubeletVersion` is not newer "
                "than the oldest kube-apiserver and at most three minor versions older (two "
                "for a kubelet older than 1.25), as kubernetes.io/releases/version-skew-policy "
                "states them"),
       prevents=("a half-done upgrade: a control plane left a minor behind, or a node joined "
                 "with newer or much older kubelet packages, which the API may not serve"))
def cluster_version_skew(ctx: Context) -> list[Finding]:
    cluster = ctx.cluster
    cps = cluster.inventory.by_role(CONTROL_PLANE)
    if not cps:
        raise CannotCheck(f"{cluster.inventory.source} has no control-plane host: put the "
                          "control planes in kube_control_plane (or masters)")
    findings, apiservers = [], {}
    for h in cps:
        facts = cluster.facts.get(h.name)
        if not isinstance(facts, NodeFacts):
            findings.append(not_checked(f"{h.name}:kube-apiserver", h.name,
                                        facts or "no facts"))
            continue
        tag, evidence = apiserver_image(facts)
        version = minor_of(tag) if tag else None
        if version is None:
            findings.append(Finding(
                f"{h.name}:kube-apiserver", False, f"version unknown ({evidence})",
                "kubeadm's kube-apiserver static pod with a version tag",
                "the control plane's version cannot be compared with the kubelets'",
                f"check {MANIFEST} on {h.name} (kubeadm writes it; "
                "`kubeadm upgrade node` rewrites it)", (evidence,)))
            continue
        apiservers[h.name] = version
    if not apiservers:
        return findings
    oldest, newest = min(apiservers.values()), max(apiservers.values())
    listing = ", ".join(f"{n} {_fmt(v)}" for n, v in sorted(apiservers.items()))
    evidence = tuple(f"{n}: kube-apiserver {_fmt(v)}" for n, v in sorted(apiservers.items()))
    if newest[0] != oldest[0] or newest[1] - oldest[1] > 1:
        behind = ", ".join(n for n, v in sorted(apiservers.items()) if v == oldest)
        findings.append(Finding(
            "kube-apiserver", False, f"apiservers {listing}: more than one minor apart",
            "the newest and oldest kube-apiserver within one minor version",
            "clients and kubelets sent by the load balancer to either side meet APIs one of "
            "them does not serve; kubeadm upgrades one minor at a time, so this cluster "
            "cannot be upgraded or served consistently",
            f"finish the upgrade on {behind}: `kubeadm upgrade node` there with the kubeadm "
            f"of {_fmt(newest)} (one minor at a time), see {POLICY}", evidence))
    else:
        findings.append(passed("kube-apiserver", f"apiservers {listing}",
                               "within one minor version", *evidence))
    for node in sorted(ctx.api.nodes, key=lambda n: n.get("metadata", {}).get("name", "")):
        name = node.get("metadata", {}).get("name", "?")
        raw = str((node.get("status", {}).get("nodeInfo") or {}).get("kubeletVersion") or "")
        kubelet = minor_of(raw)
        subject = f"node {name} kubelet"
        seen = f"kubectl get node {name} -o jsonpath='{{.status.nodeInfo.kubeletVersion}}' " \
               f"-> {raw or '(empty)'}"
        behind = OLD_KUBELET_BEHIND if kubelet and kubelet < OLD_KUBELET_BELOW else \
            KUBELET_BEHIND
        expected = (f"kubelet {_fmt((oldest[0], max(oldest[1] - behind, 0)))} to "
                    f"{_fmt(oldest)} (not newer than the oldest apiserver, at most "
                    f"{behind} minors older)")
        if kubelet is None:
            findings.append(Finding(subject, False, f"kubeletVersion {raw or 'empty'}",
                                    expected, "the node's kubelet cannot be compared with "
                                    "the apiservers", f"check the kubelet on {name}: "
                                    "`kubelet --version`", (seen,)))
        elif kubelet[0] != oldest[0] or kubelet[1] > oldest[1]:
            findings.append(Finding(
                subject, False, f"kubelet {raw} newer than the oldest apiserver "
                f"({_fmt(oldest)}; {listing})", expected,
                "a kubelet newer than kube-apiserver is unsupported: it may use API fields "
                "and versions the apiserver does not serve yet",
                f"upgrade the control planes first (kubeadm upgrade apply/node), or install "
                f"the kubelet of {_fmt(oldest)} on {name} and restart it, see {POLICY}",
                (seen, *evidence)))
        elif oldest[1] - kubelet[1] > behind:
            findings.append(Finding(
                subject, False, f"kubelet {raw} is {oldest[1] - kubelet[1]} minors older than "
                f"the oldest apiserver ({_fmt(oldest)})", expected,
                "the apiserver no longer supports a kubelet that old: the node may fail to "
                "register, report status or run new pods",
                f"upgrade the kubelet on {name} one minor at a time (drain, `kubeadm upgrade "
                f"node`, install the kubelet package, restart it), see {POLICY}",
                (seen, *evidence)))
        else:
            findings.append(passed(subject, f"kubelet {raw}", expected, seen))
    return findings
