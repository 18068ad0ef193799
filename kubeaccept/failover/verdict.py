"""From the outage's timelines to findings and timings: pure, so unit tests need no cluster."""

from __future__ import annotations

from dataclasses import dataclass

from kubeaccept.failover.budget import Budget
from kubeaccept.failover.timeline import (
    Sample,
    after,
    first_success,
    last_failure,
    longest_failure,
    max_gap,
)
from kubeaccept.model.findings import Finding, passed

CID = "cluster_failover"
MIN_RATE_GAP = 1.5  # ≥ 1 Hz with jitter: a longer hole in the /readyz samples is a blind spot


@dataclass(frozen=True)
class Observation:
    target: str
    endpoint: str
    was_leader: bool
    term_before: int | None
    window: float  # seconds observed after power-off
    readyz: list[Sample]
    etcd: list[Sample]
    write: list[Sample]
    dns_pod: list[Sample]
    dns_node: list[Sample]
    dns_node_name: str = ""


def _t(x: float | None) -> str:
    return "never" if x is None else f"{x:.1f} s"


def sampling(obs: Observation, budget: Budget) -> Finding:
    need = min(MIN_RATE_GAP, budget.seconds / 3)
    gap = max_gap(after(obs.readyz, 0), 0, obs.window)
    rate = len(after(obs.readyz, 0)) / obs.window if obs.window else 0
    subject = f"{obs.target}:sampling"
    observed = f"/readyz sampled {rate:.1f}/s, longest gap {gap:.1f} s"
    if gap > need:
        return Finding(subject, False, f"INCONCLUSIVE: {observed}",
                       f"a sample at least every {need:.1f} s (budget {budget.seconds:g} s)",
                       "an outage shorter than the gap could pass unseen: the gate cannot "
                       "say the cluster met its budget",
                       "run the gate from a machine that is not overloaded, close to the "
                       "cluster (every sample is one HTTPS request with a 1.5 s timeout)",
                       check_id=CID)
    return passed(subject, observed, f"a sample at least every {need:.1f} s", check_id=CID)


def vip(obs: Observation, budget: Budget) -> tuple[Finding, dict]:
    samples = after(obs.readyz, 0)
    run = longest_failure(samples)
    last = last_failure(samples)
    longest = run.seconds if run else 0.0
    subject = f"{obs.target}:endpoint"
    timings = {"vip_longest_outage_s": round(longest, 2),
               "vip_last_failure_s": round(last.end, 2) if last else 0.0}
    observed = (f"/readyz through {obs.endpoint}: longest run of failures {longest:.1f} s"
                + (f" ({run.count} samples from {run.first.start:.1f} s, last: "
                   f"{run.last.detail})" if run else "")
                + (f"; last failure at {last.end:.1f} s" if last else "; never failed"))
    expected = f"no failure after the budget {budget.text()}"
    still = last is not None and last.end > obs.window - 1.5 * MIN_RATE_GAP
    if (last and last.end > budget.seconds) or longest > budget.seconds:
        why = ("clients of the controlPlaneEndpoint (kubelets, controllers, kubectl) get "
               "errors for longer than the cluster's own settings allow")
        if still:
            why += ("; it still failed at the end of the observation: the load balancer "
                    "keeps sending requests to the dead apiserver")
        fix = ("health-check the apiservers in the load balancer as kubeadm's HA guide "
               "does (HAProxy: option httpchk GET /readyz, http-check expect status 200, "
               "`check check-ssl verify none inter 2s fall 2 rise 2` on each server)")
        notes = "; ".join(budget.notes)
        return Finding(subject, False, observed + (f" ({notes})" if notes else ""),
                       expected, why, fix, check_id=CID), timings
    return passed(subject, observed, expected, check_id=CID), timings


def etcd_leader(obs: Observation, budget: Budget) -> tuple[Finding, dict]:
    samples = after(obs.etcd, 0)
    subject = f"{obs.target}:etcd"
    lost_seen = next((s for s in samples if s.data.get("healthy", {}).get(obs.target)
                      is False), None)
    new = next((s for s in samples if s.data.get("leader") not in (None, obs.target)
                and (not obs.was_leader or (s.data.get("term") or 0) > (obs.term_before or 0))),
               None)
    no_leader_after = [s for s in samples if s.start > budget.seconds and not s.ok]
    timings = {"etcd_new_leader_s": round(new.end, 2) if new else None}
    problems = []
    if lost_seen is None:
        problems.append(f"member {obs.target} was never reported unhealthy: the power-off "
                        "did not take")
    if new is None:
        problems.append("no leader among the surviving members" if obs.was_leader else
                        "the surviving members lost their leader")
    elif new.end > budget.seconds:
        problems.append(f"new leader only at {new.end:.1f} s")
    if no_leader_after:
        problems.append(f"no leader at {no_leader_after[0].start:.1f} s: "
                        f"{no_leader_after[0].detail}")
    observed = (f"{'leader' if obs.was_leader else 'member'} {obs.target} lost; "
                + (f"{new.data.get('leader')} leads at term {new.data.get('term')} "
                   f"(term before {obs.term_before}) after {new.end:.1f} s" if new else
                   "no new leader")
                + (f"; {obs.target} unhealthy from {lost_seen.start:.1f} s" if lost_seen
                   else ""))
    expected = f"a leader among the survivors within {budget.seconds:g} s"
    if problems:
        return Finding(subject, False, observed + ": " + "; ".join(problems), expected,
                       "without a leader etcd takes no writes: the API cannot change "
                       "anything (field report 03 expects 'became leader at term N')",
                       "check the survivors' etcd logs (crictl logs <etcd id>) and that "
                       "2380/tcp is open between all control planes", check_id=CID), timings
    return passed(subject, observed, expected, check_id=CID), timings


def writes(obs: Observation, budget: Budget) -> tuple[Finding, dict]:
    samples = after(obs.write, 0)
    first = first_success(samples)
    late = [s for s in samples if s.ok is False and s.start > budget.seconds]
    subject = f"{obs.target}:write"
    timings = {"first_write_s": round(first.end, 2) if first else None}
    failed = sum(1 for s in samples if s.ok is False)
    observed = (f"ConfigMap create+delete: first success at {_t(first and first.end)}, "
                f"{failed} of {len(samples)} failed")
    expected = f"writes succeed again within {budget.seconds:g} s"
    if first is None or first.end > budget.seconds or late:
        detail = (late or [s for s in samples if s.ok is False] or [None])[0]
        return Finding(subject, False, observed + (f"; e.g. at {detail.start:.1f} s: "
                                                        f"{detail.detail}" if detail else ""),
                       expected, "deployments, leases and node heartbeats cannot be written: "
                       "controllers stall and nodes are marked NotReady",
                       "see the endpoint and etcd findings: a write needs both",
                       check_id=CID), timings
    return passed(subject, observed, expected, check_id=CID), timings


def dns(obs: Observation, budget: Budget, which: str) -> tuple[Finding, dict]:
    samples = after(obs.dns_pod if which == "pod" else obs.dns_node, 0)
    where = ("the dnsutils pod" if which == "pod" else f"node {obs.dns_node_name}")
    subject = f"{obs.target}:dns-{which}"
    answered = [s for s in samples if s.ok is not None]
    last = last_failure(answered)
    late = [s for s in answered if s.ok is False and s.start > budget.seconds]
    ok_after = [s for s in answered if s.ok and s.start > budget.seconds]
    back = 0.0 if last is None else last.end
    timings = {f"dns_{which}_back_s": round(back, 2) if ok_after or not late else None}
    observed = (f"nslookup kubernetes.default from {where}: {len(answered)} answers, "
                f"{sum(1 for s in answered if s.ok is False)} failed"
                + (f", last failure at {last.end:.1f} s ({last.detail})" if last else ""))
    expected = f"cluster DNS answers again within {budget.seconds:g} s"
    if late or not ok_after:
        reason = late[0].detail if late else (
            "no answer after the budget" if answered else
            f"no lookup could be run: {samples[-1].detail if samples else 'no sample'}")
        return Finding(subject, False, observed + f"; {reason}", expected,
                       "pods cannot resolve Services while the control plane is degraded "
                       "(field report 03 checks exactly this after shutting down master1)",
                       "spread CoreDNS over several nodes and check the pod network across "
                       "them (see cluster_dns and node_firewall_forward)", check_id=CID), timings
    return passed(subject, observed, expected, check_id=CID), timings


def judge(obs: Observation, budget: Budget) -> tuple[list[Finding], dict]:
    findings, timings = [sampling(obs, budget)], {"budget_s": budget.seconds}
    for fn in (vip, etcd_leader, writes):
        f, t = fn(obs, budget)
        findings.append(f)
        timings.update(t)
    for which in ("pod", "node"):
        f, t = dns(obs, budget, which)
        findings.append(f)
        timings.update(t)
    backs = [timings.get("dns_pod_back_s"), timings.get("dns_node_back_s")]
    timings["dns_back_s"] = None if None in backs else max(backs)
    return findings, timings
