"""etcd: the members are the control planes, all healthy, one leader on one term, quorum."""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

from kubeaccept.facts import NodeFacts
from kubeaccept.model.findings import Finding, needs_tool, not_checked, passed
from kubeaccept.model.hosts import Host, node_ip
from kubeaccept.model.registry import CannotCheck, Context, check
from kubeaccept.model.roles import CONTROL_PLANE, ETCD

NO_ETCDCTL = "neither etcdctl nor crictl on the node"
QUORUM_WHY = ("etcd refuses writes: kube-apiserver fails /readyz (\"etcdserver: request timed "
              "out\"), nothing can be created, updated or scheduled")
FIX_MEMBER = ("on that control plane: crictl ps -a --name etcd; crictl logs <id>; check "
              "/etc/kubernetes/pki/etcd/{server,peer}.crt are signed by etcd/ca.crt and that "
              "2379/2380 are open between control planes")


def _json(text: str):
    try:
        return json.loads(text) if text.strip() else None
    except (ValueError, RecursionError):
        return None


def member_list(view: dict) -> dict | None:
    """etcdctl's `member list` answer from a node's etcd facts, or None when it is not one
    (not etcdctl's shape: as good as none)."""
    listed = _json(view.get("member list", ""))
    if not isinstance(listed, dict) or not isinstance(listed.get("members", []), list):
        return None
    return listed


def _records(value) -> list[dict]:
    """etcdctl's list of JSON objects; any other shape is no answer (etcdctl did not write it)."""
    return [e for e in value if isinstance(e, dict)] if isinstance(value, list) else []


def _field(record: dict, *path):
    for key in path:
        record = record.get(key) if isinstance(record, dict) else None
    return record


def _int(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _host_of(url) -> str:
    if not isinstance(url, str):
        return ""
    try:
        return urlsplit(url).hostname or url
    except ValueError:  # "https://[10.0.0.1:2379": not a URL
        return url


def _peer_urls(member: dict) -> list[str]:
    """A member's peerURLs; any other shape than a list of strings is none."""
    urls = member.get("peerURLs")
    return [u for u in urls if isinstance(u, str)] if isinstance(urls, list) else []


def _learner_ips(members: list[dict]) -> set[str]:
    return {_host_of(u) for m in members if m.get("isLearner") is True for u in _peer_urls(m)}


def etcdctl_error(stderr: str) -> str:
    """etcdctl's own conclusion from its stderr (the facts keep it on one line): the
    `Error: ...` it ends with, else the `error` of its last JSON log record (zap), else its
    start; never a whole log record."""
    text = " ".join(stderr.split())
    if "Error: " in text:
        return text[text.rindex("Error: "):][:200]
    logged = re.findall(r'"error":"((?:[^"\\]|\\.)*)"', text)
    if logged:
        return logged[-1][:200]
    return text[:200]


def api_opinion(control_planes: list[Host], readyz: dict,
                learners: dict | None = None) -> list[Finding]:
    """The second opinion: what each apiserver's /readyz?verbose says about its etcd.
    `learners`: node IP -> member ID (hex) of members that are learners."""
    learners = learners or {}
    findings = []
    for h in control_planes:
        answer = readyz.get(f"https://{node_ip(h)}:6443/readyz?verbose")
        if answer is None or answer.status is None:
            continue  # no apiserver answer: cluster_control_plane reports that
        lines = [ln for ln in answer.body.splitlines() if ln[3:].startswith("etcd")]
        bad = [ln for ln in lines if ln.startswith("[-]")]
        subject = f"etcd:api-view:{h.name}"
        if bad and node_ip(h) in learners:
            # kubeadm points each apiserver at its own member (--etcd-servers=
            # https://127.0.0.1:2379); a learner answers no client request.
            findings.append(Finding(
                subject, False, f"kube-apiserver on {h.name}: {'; '.join(bad)}; its own etcd "
                "member is a learner", "[+]etcd ok",
                "kubeadm points each apiserver at its own member (--etcd-servers="
                "https://127.0.0.1:2379) and a learner serves no client request (\"etcdserver: "
                f"rpc not supported for learner\"): the apiserver on {h.name} is down until "
                "its member votes", f"etcdctl member promote {learners[node_ip(h)]}",
                (f"GET {answer.url}",)))
        elif bad:
            findings.append(Finding(subject, False,
                                    f"kube-apiserver on {h.name}: {'; '.join(bad)}",
                                    "[+]etcd ok", QUORUM_WHY, FIX_MEMBER,
                                    (f"GET {answer.url}",)))
        elif lines:
            findings.append(passed(subject,
                                   f"kube-apiserver on {h.name}: {'; '.join(lines)}",
                                   "[+]etcd ok"))
    return findings


@check("cluster_etcd",
       "etcd members = control planes, all healthy, one leader, one raft term, quorum",
       area="etcd",
       needs=('cluster', 'readyz'),
       reads=("etcdctl member list / endpoint status / health on each control plane",
              "each apiserver's /readyz?verbose"),
       asserts=("`etcdctl` on each control plane (on the host, else inside the etcd static "
                "pod via `crictl exec`) with kubeadm's healthcheck-client certificate: "
                "members = the etcd/control-plane hosts, every member healthy, exactly one "
                "leader and one raft term, quorum"),
       prevents="a member down is one failure from losing quorum; quorum lost = no writes")
def cluster_etcd(ctx: Context) -> list[Finding]:
    inventory = ctx.cluster.inventory
    members = inventory.by_role(ETCD) or inventory.by_role(CONTROL_PLANE)
    if not members:
        raise CannotCheck(f"{inventory.source} has no etcd or control-plane host: put the "
                          "control planes in kube_control_plane (or masters)")
    control_planes = list(members)
    facts = ctx.cluster.facts
    readyz = ctx.readyz
    subj = "etcd"
    by_ip = {node_ip(h): h.name for h in control_planes}
    members, health, status, errors, evidence = None, {}, {}, {}, []
    for h in control_planes:
        f = facts.get(h.name)
        view = f.etcd if isinstance(f, NodeFacts) else None
        if view is None:
            errors[h.name] = f if isinstance(f, str) else "no kubeadm etcd certificates"
            continue
        if "!no-etcdctl" in view or "no-etcdctl" in view:
            errors[h.name] = NO_ETCDCTL
            continue
        listed = member_list(view)
        if listed and members is None:
            members = _records(listed.get("members", []))
        for e in _records(_json(view.get("endpoint health --cluster", ""))):
            ip = _host_of(e.get("endpoint", ""))
            health[ip] = health.get(ip) or (e.get("health"), e.get("error", ""))
            if e.get("health"):
                health[ip] = (True, "")
        for e in _records(_json(view.get("endpoint status --cluster", ""))):
            status[_host_of(e.get("Endpoint", ""))] = (
                _int(_field(e, "Status", "leader")), _int(_field(e, "Status", "raftTerm")),
                _field(e, "Status", "header", "member_id"))
        err = view.get("stderr member list", "").strip()
        if not listed:
            errors[h.name] = etcdctl_error(err) or "no answer from the local member"
        answer = (len(listed.get("members", [])) if listed
                  else "error: " + etcdctl_error(err))
        evidence.append(f"{h.name}: etcdctl member list -> {answer}")
    unreachable = {h.name: facts[h.name] for h in control_planes
                   if isinstance(facts.get(h.name), str)}
    if members is None and unreachable and len(unreachable) == len(errors):
        # nothing answered because nothing could be asked
        return [not_checked(subj, n, e) for n, e in unreachable.items()] + \
            api_opinion(control_planes, readyz or {})
    if members is None and errors and set(errors.values()) <= {NO_ETCDCTL, *unreachable.values()}:
        # nothing answered because no node had a way to ask: not a verdict on etcd
        return [needs_tool(ctx.check_id, n, "etcdctl", "(or crictl, to run the etcd "
                           "container's own) to ask etcd for its members, their health and "
                           "the leader")
                if e == NO_ETCDCTL else not_checked(subj, n, e)
                for n, e in errors.items()] + api_opinion(control_planes, readyz or {})
    if members is None:
        return [Finding(subj, False, "no control plane could list the etcd members: " +
                        "; ".join(f"{n}: {e}" for n, e in errors.items()),
                        "an answering etcd cluster", QUORUM_WHY, FIX_MEMBER, tuple(evidence))]
    findings = []
    peer_ips = {_host_of(u): str(m.get("name", "?")) for m in members
                for u in _peer_urls(m)}
    missing = sorted(n for ip, n in by_ip.items() if ip not in peer_ips)
    extra = sorted(f"{n} ({ip}{', learner' if ip in _learner_ips(members) else ''})"
                   for ip, n in peer_ips.items() if ip not in by_ip)
    observed = f"{len(members)} members: " + ", ".join(
        sorted(f"{n} (learner)" if ip in _learner_ips(members) else n
               for ip, n in peer_ips.items()))
    if missing or extra:
        findings.append(Finding(
            f"{subj}:members", False,
            observed + (f"; no member on {', '.join(missing)}" if missing else "")
            + (f"; members on no control plane: {', '.join(extra)}" if extra else ""),
            "one member per control plane", "a member too few or too many moves the quorum "
            "line: a stale member counts against quorum when it never answers",
            "etcdctl member remove <id> for stale members; kubeadm join --control-plane "
            "re-adds a missing one", tuple(evidence)))
    else:
        findings.append(passed(f"{subj}:members", observed, "one per control plane"))
    # A learner (etcdctl member list: "isLearner": true) replicates but does not vote: it is
    # not counted in the quorum, and its health answer is etcd refusing a learner the health
    # read ("etcdserver: rpc not supported for learner", etcd 3.7.3), not a fault.
    learners = {_host_of(u): m for m in members if m.get("isLearner") is True
                for u in _peer_urls(m)}
    voters = [m for m in members if m.get("isLearner") is not True]
    healthy = 0
    for ip, name in sorted(by_ip.items(), key=lambda kv: kv[1]):
        ok, err = health.get(ip, (False, errors.get(name, "no health answer")))
        if ip in learners:
            member = learners[ip]
            mid = f"{member['ID']:x}" if _int(member.get("ID")) is not None else "<ID>"
            findings.append(Finding(
                f"{subj}:{name}", False, f"member {name} ({ip}) is a learner "
                f"(\"isLearner\": true in etcdctl member list): it replicates but does not "
                f"vote; the quorum counts the {len(voters)} voting members", "a voting member",
                "a learner counts neither towards the quorum nor as a spare: the cluster has "
                "one voting member fewer than it has control planes. kubeadm adds a joining "
                "control plane's member as a learner and promotes it once it has caught up "
                "(phases/etcd/local.go): one left a learner is a join that stopped half-way",
                f"once it has caught up (its raftAppliedIndex in `etcdctl endpoint status "
                f"--cluster` equals the leader's): `etcdctl member promote {mid}`; else "
                f"`etcdctl member remove {mid}` and join {name} again (kubeadm reset, "
                "kubeadm join --control-plane)", tuple(evidence)))
            continue
        healthy += bool(ok)
        if ok:
            findings.append(passed(f"{subj}:{name}", f"member {name} healthy", "healthy"))
        else:
            findings.append(Finding(
                f"{subj}:{name}", False, f"member {name} ({ip}:2379) unhealthy: "
                f"{err or errors.get(name, 'no answer')}", "healthy",
                "the cluster runs one failure away from losing quorum; the apiserver on "
                f"{name} loses its local etcd", FIX_MEMBER, tuple(evidence)))
    leaders = {s[0] for s in status.values() if s[0]}
    terms = {s[1] for s in status.values() if s[1] is not None}
    st_evidence = tuple(f"{ip}: leader {s[0]:x} term {s[1]}" for ip, s in sorted(status.items())
                        if s[0])
    if len(leaders) == 1 and len(terms) == 1:
        findings.append(passed(f"{subj}:leader", f"one leader {next(iter(leaders)):x}, "
                               f"raft term {next(iter(terms))}", "one leader, one term",
                               *st_evidence))
    else:
        findings.append(Finding(
            f"{subj}:leader", False, f"{len(leaders)} leader(s) {sorted(leaders)}, "
            f"raft terms {sorted(terms)}", "exactly one leader and one raft term",
            "members disagree about the leader: a partition or an election storm; writes stall",
            FIX_MEMBER, st_evidence))
    total = len(voters)  # quorum is a majority of the voting members
    if healthy * 2 <= total:
        findings.append(Finding(f"{subj}:quorum", False,
                                f"quorum lost: {healthy} of {total} voting members healthy",
                                f"more than {total // 2} healthy", QUORUM_WHY, FIX_MEMBER))
    else:
        findings.append(passed(f"{subj}:quorum", f"{healthy} of {total} voting members healthy",
                               f"more than {total // 2} healthy"))
    learner_ids = {ip: (f"{m['ID']:x}" if _int(m.get("ID")) is not None else "<ID>")
                   for ip, m in learners.items()}
    return findings + api_opinion(control_planes, readyz or {}, learner_ids)
