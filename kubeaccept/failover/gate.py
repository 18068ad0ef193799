"""One failover: pre-flight, power-off, sample the outage, power-on, verify the restore."""

from __future__ import annotations

import signal
import time
from contextlib import suppress
from dataclasses import dataclass, field

from kubeaccept.api import apiprobe, dnsutils, kubeapi
from kubeaccept.checks import ClusterContext, controlplane
from kubeaccept.facts import NodeFacts
from kubeaccept.failover import budget as budgets
from kubeaccept.failover import power, preflight, probes
from kubeaccept.failover.journal import Journal
from kubeaccept.failover.timeline import Sampler
from kubeaccept.failover.verdict import CID, Observation, judge
from kubeaccept.model.findings import Finding
from kubeaccept.model.hosts import Host, Inventory, node_ip
from kubeaccept.model.redact import redact
from kubeaccept.model.roles import CONTROL_PLANE, LB, WORKER
from kubeaccept.model.settings import Settings
from kubeaccept.remote.transport import Unreachable, connect
from kubeaccept.session import Session, cluster_ca


@dataclass(frozen=True)
class Options:
    budget: float | None = None      # --failover-budget: overrides the computed one
    restore_timeout: float = 300.0   # power-on until etcd, LB and Node are back
    power_timeout: float = 120.0     # one power command
    baseline: float = 2.0            # sampling before power-off


@dataclass
class Outcome:
    target: str
    findings: list[Finding] = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    budget: budgets.Budget | None = None
    refused: list[str] = field(default_factory=list)
    interrupted: str = ""
    restore_error: str = ""
    log: list[str] = field(default_factory=list)


class Interrupted(BaseException):
    """SIGTERM (or SIGINT) while the host is down: restore, then stop the run."""


class Gate:
    def __init__(self, inventory: Inventory, settings: Settings, kubeconfig: dict,
                 source: str, options: Options, journal: Journal, say=print):
        self.inventory = inventory
        self.settings = settings
        self.kubeconfig = kubeconfig
        self.source = source
        self.options = options
        self.journal = journal
        self.say = say
        # after a failover, until when the next pre-flight waits for the cluster to settle
        self.settle_until = 0.0

    # --- facts and pre-flight -------------------------------------------------------------
    def snapshot(self) -> tuple[ClusterContext, dict, object, bytes | None]:
        session = Session.open(self.inventory, self.settings,
                               creds=(self.kubeconfig, self.source))
        try:
            ctx = session.cluster()
            readyz = session.readyz(ctx)
            api, state = session.open_api()
            if not isinstance(api, str):
                api.close()
            return ctx, readyz, state, cluster_ca(ctx.facts.values())
        finally:
            session.close()

    def resolve(self, spec: str, ctx: ClusterContext) -> Host | str:
        cps = self.inventory.by_role(CONTROL_PLANE)
        if spec == "etcd-leader":
            leader = preflight.etcd_view(ctx)["leader"]
            if not leader:
                return "etcd-leader: no control plane could name the etcd leader"
            spec = leader
        host = next((h for h in cps if h.name == spec), None)
        if host is None:
            return f"{spec} is not a control plane of {self.inventory.source}"
        return host

    # --- the run --------------------------------------------------------------------------
    def run(self, spec: str) -> Outcome:
        out = Outcome(spec)
        ctx, readyz, state, ca = self.snapshot()
        target = self.resolve(spec, ctx)
        if isinstance(target, str):
            out.refused = [target]
            return out
        out.target = target.name
        try:
            off, on = power.methods(target)
        except power.PowerError as exc:
            out.refused = [str(exc)]
            return out
        out.refused = preflight.check(ctx, readyz, state, target)
        waited = time.monotonic()
        while out.refused and time.monotonic() < self.settle_until:
            # `each`: the previous host is back, but the cluster may still be catching up
            # (Nodes whose kubelet lost its connection with the dead apiserver, their pods
            # NotReady until the next heartbeat)
            time.sleep(3)
            ctx, readyz, state, ca = self.snapshot()
            out.refused = preflight.check(ctx, readyz, state, target)
        if out.refused and waited < self.settle_until:
            out.refused.append(f"(still so {time.monotonic() - waited:.0f} s after the "
                               "previous failover's restore was verified)")
        out.budget = self.budget(ctx, target)
        if out.refused:
            return out
        self.say(f"failover {target.name}: budget {out.budget.text()}")
        view = preflight.etcd_view(ctx)
        endpoint = controlplane.endpoint(ctx)
        ep = f"{endpoint[0]}:{endpoint[1]}" if endpoint else f"{node_ip(target)}:6443"
        survivors = [h for h in self.inventory.by_role(CONTROL_PLANE) if h.name != target.name]
        dns_host = next((h for h in self.inventory.by_role(WORKER)),
                        survivors[0] if survivors else None)
        conns, samplers, created_pod = [], [], False
        api = probes.short_api(self.kubeconfig, f"https://{ep}", self.source)
        slow_api = probes.short_api(self.kubeconfig, f"https://{ep}", self.source,
                                    (self.settings.connect_timeout,
                                     self.settings.command_timeout))
        try:
            etcd_conn = connect(survivors[0], self.settings.connect_timeout)
            conns.append(etcd_conn)
            dns_conn = connect(dns_host, self.settings.connect_timeout)
            conns.append(dns_conn)
            probes.ensure_namespace(slow_api)
            pod, created_pod, problem = dnsutils.ensure_pod(
                slow_api, self.settings.dnsutils_image, self.settings.command_timeout)
            if problem:
                out.refused = [f"dnsutils: {problem}"]
                return out
            kube_ip = self.settings.kubernetes_service_ip
            samplers = [
                Sampler("readyz", probes.readyz(f"https://{ep}/readyz", ca), 0.5),
                Sampler("etcd", probes.etcd(etcd_conn, survivors[0], view["members"],
                                            view["endpoints"]), 1.0),
                Sampler("write", probes.write(api), 1.0),
                Sampler("dns-pod", probes.dns_pod(probes.short_api(
                    self.kubeconfig, f"https://{ep}", self.source, (1.0, 3.0)), kube_ip), 1.0),
                Sampler("dns-node", probes.dns_node(dns_conn, self.settings.dns_ip, kube_ip),
                        1.0)]
            self._outage(out, target, off, on, samplers, view, ep, dns_host)
        except (Unreachable, kubeapi.HttpError, kubeapi.ApiUnavailable, TimeoutError) as exc:
            # raised before the power-off (the outage itself catches its own errors)
            out.refused = [f"cannot prepare the sampling: {exc}"]
        finally:
            for s in samplers:
                s.stop()
            for c in conns:
                c.close()
            if created_pod:
                with suppress(Exception):
                    dnsutils.delete_pod(slow_api)
            with suppress(Exception):
                probes.delete_namespace(slow_api)
            api.close()
            slow_api.close()
        return out

    def _outage(self, out, target, off, on, samplers, view, ep, dns_host) -> None:
        for s in samplers:
            s.start()
        time.sleep(self.options.baseline)
        window = 2 * out.budget.seconds + 5
        previous = _trap_sigterm()
        t0 = None
        try:
            self.journal.write(target.name, self.inventory.source, on.text, on.kind,
                               self.inventory.role_groups)
            self.say(f"failover {target.name}: powering off ({off.describe()})")
            power.run(off, target, self.options.power_timeout, self.settings.connect_timeout)
            t0 = time.monotonic()
            for s in samplers:
                s.mark(t0)
            while time.monotonic() < t0 + window:
                time.sleep(0.1)
        except (KeyboardInterrupt, Interrupted) as exc:
            elapsed = f"{time.monotonic() - t0:.1f} s into the outage" if t0 else \
                "before the power-off completed"
            out.interrupted = (f"{'SIGINT' if isinstance(exc, KeyboardInterrupt) else 'SIGTERM'}"
                               f" {elapsed}")
        except power.PowerError as exc:
            out.findings.append(Finding(f"{target.name}:power-off", False, str(exc),
                                        "the host powered off", fix="check the power-off "
                                        "command by hand", check_id=CID))
        finally:
            for s in samplers:
                s.stop()
            observed = time.monotonic() - t0 if t0 else 0.0
            self.restore(out, target, on, view)
            signal.signal(signal.SIGTERM, previous)
        if t0 is None:
            return
        timelines = {s.kind: s.timeline() for s in samplers}
        obs = Observation(target.name, ep, view["leader"] == target.name, view["term"],
                          min(window, observed), timelines["readyz"], timelines["etcd"],
                          timelines["write"], timelines["dns-pod"], timelines["dns-node"],
                          dns_host.name)
        findings, timings = judge(obs, out.budget)
        out.findings = findings + out.findings
        out.timings.update(timings)

    # --- restore --------------------------------------------------------------------------
    def restore(self, out: Outcome, target: Host, on: power.Method, view: dict) -> None:
        """Power on and verify, shielded from Ctrl-C: an interrupted restore is the one way
        to leave the cluster degraded."""
        previous = signal.signal(signal.SIGINT, lambda *_: self.say(
            f"failover: restoring {target.name}; Ctrl-C is ignored until it is back "
            f"(at most {self.options.restore_timeout:g} s)"))
        try:
            self.say(f"failover {target.name}: powering on ({on.describe()})")
            start = time.monotonic()
            try:
                power.run(on, target, self.options.power_timeout, self.settings.connect_timeout)
            except power.PowerError as exc:
                out.restore_error = (f"power-on failed: {exc}. {target.name} is still OFF: "
                                     f"power it on by hand ({redact(on.text)}), then run "
                                     f"kubeaccept-restore --journal {self.journal.path}")
                return
            pending = verify_restore(self, target, view, start)
            out.timings["rejoined_s"] = pending.pop("rejoined_s", None)
            if pending:
                out.restore_error = (f"{target.name} powered on but not back after "
                                     f"{self.options.restore_timeout:g} s: "
                                     + "; ".join(f"{k}: {v}" for k, v in pending.items()))
            else:
                self.journal.clear()
                self.settle_until = time.monotonic() + self.options.restore_timeout
        finally:
            signal.signal(signal.SIGINT, previous)

    def budget(self, ctx: ClusterContext, target: Host) -> budgets.Budget:
        checks, found, keepalived, holds = [], False, None, False
        cps = {h.name for h in self.inventory.by_role(CONTROL_PLANE)}
        endpoint = controlplane.endpoint(ctx)
        for h in self.inventory.hosts:
            f = ctx.facts.get(h.name)
            if not isinstance(f, NodeFacts):
                continue
            cfg = f.file("/etc/haproxy/haproxy.cfg").text
            if cfg and (LB in h.roles or h.name in cps):
                found = True
                servers = {n for n, _ in controlplane.haproxy_backends(
                    cfg, endpoint[1] if endpoint else 6443)}
                checks += budgets.haproxy_checks(cfg, servers or None)
            ka = f.file("/etc/keepalived/keepalived.conf").text
            if ka:
                keepalived = budgets.keepalived_advert(ka)
        tf = ctx.facts.get(target.name)
        if isinstance(tf, NodeFacts) and endpoint:
            holds = any(a == endpoint[0] for _, a in tf.addresses)
        election = None
        for h in self.inventory.by_role(CONTROL_PLANE):
            f = ctx.facts.get(h.name)
            if isinstance(f, NodeFacts):
                election = election or budgets.etcd_election(
                    f.file("/etc/kubernetes/manifests/etcd.yaml").text or "")
        return budgets.compute(checks, found, election, keepalived, holds, self.options.budget)


def verify_restore(gate: Gate, target: Host, view: dict, start: float) -> dict:
    """Wait until the host's etcd member is healthy, its apiserver ready and back behind the
    endpoint, and its Node Ready and schedulable. Returns {"rejoined_s": t} or what is
    still missing."""
    deadline = start + gate.options.restore_timeout
    ep_ok = 0
    done: dict[str, float] = {}
    missing: dict[str, str] = {}
    cps = list(gate.inventory.by_role(CONTROL_PLANE))
    survivor = next(h for h in cps if h.name != target.name)
    conn = own_conn = None
    try:
        while time.monotonic() < deadline:
            now = time.monotonic() - start
            missing = {}
            try:
                conn = conn or connect(survivor, gate.settings.connect_timeout)
                ok, detail, data = probes.etcd(conn, survivor, view["members"],
                                               view["endpoints"])()
                healthy = data.get("healthy", {})
                if healthy.get(target.name) and len(healthy) == len(view["members"]) \
                        and all(healthy.values()):
                    done.setdefault("etcd", now)
                else:
                    missing["etcd"] = detail
            except Exception as exc:  # noqa: BLE001 - keep trying until the deadline
                conn = None
                missing["etcd"] = f"cannot ask {survivor.name}: {exc}"
            own = apiprobe.get(f"https://{node_ip(target)}:6443/readyz", None, 2)
            if own.status == 200:
                done.setdefault("apiserver", now)
            else:
                missing["apiserver"] = f"{target.name}:6443/readyz: {own.status or own.body}"
            missing.update(_node_state(gate, target))
            if "node" not in missing:
                done.setdefault("node", now)
            # kube-proxy and the CNI redo their rules at boot: Services work on it again
            try:
                own_conn = own_conn or connect(target, gate.settings.connect_timeout)
                ok, detail, _ = probes.dns_node(own_conn, gate.settings.dns_ip,
                                                gate.settings.kubernetes_service_ip)()
            except Exception as exc:  # noqa: BLE001 - not up yet: keep trying
                own_conn, ok, detail = None, False, str(exc)
            if ok:
                done.setdefault("dns", now)
            else:
                missing["dns"] = f"cluster DNS from {target.name}: {detail}"
            # behind the endpoint: once the apiserver is ready, every backend answers in a
            # row (round robin visits each at least twice)
            if "apiserver" in done:
                ep = _endpoint_url(gate)
                if ep and apiprobe.get(ep, None, 2).status == 200:
                    ep_ok += 1
                else:
                    ep_ok = 0
                if ep_ok >= 2 * len(cps):
                    done.setdefault("load balancer", now)
                elif ep:
                    missing["load balancer"] = (f"{ep}: {ep_ok} consecutive answers, "
                                                f"waiting for {2 * len(cps)}")
            else:
                missing["load balancer"] = "waiting for the apiserver"
            if not missing:
                return {"rejoined_s": round(max(done.values()), 2)}
            time.sleep(1)
    finally:
        for c in (conn, own_conn):
            if c:
                c.close()
    return missing


def _endpoint_url(gate: Gate) -> str | None:
    cv = gate.inventory.cluster_vars.get("loadbalancer_apiserver") or {}
    if isinstance(cv, dict) and cv.get("address"):
        return f"https://{cv['address']}:{cv.get('port') or 6443}/readyz"
    lbs = gate.inventory.by_role(LB)
    return f"https://{node_ip(lbs[0])}:6443/readyz" if lbs else None


def _node_state(gate: Gate, target: Host) -> dict[str, str]:
    try:
        api = kubeapi.connect(gate.kubeconfig, gate.source,
                              list(gate.inventory.by_role(CONTROL_PLANE)), 2, 5)
    except kubeapi.ApiUnavailable as exc:
        return {"node": f"API: {exc}"}
    try:
        node = api.get(f"/api/v1/nodes/{target.name}", missing_ok=True)
    except kubeapi.ApiUnavailable as exc:
        return {"node": f"API: {exc}"}
    finally:
        api.close()
    if node is None:
        return {"node": f"no Node {target.name}"}
    ready = next((c for c in node.get("status", {}).get("conditions", [])
                  if c.get("type") == "Ready"), {})
    if ready.get("status") != "True":
        return {"node": f"Node {target.name} Ready={ready.get('status')} "
                        f"({ready.get('reason', '')})"}
    if node.get("spec", {}).get("unschedulable"):
        return {"node": f"Node {target.name} is cordoned (kubectl uncordon {target.name})"}
    return {}


def _trap_sigterm():
    def handler(signum, frame):
        raise Interrupted()
    return signal.signal(signal.SIGTERM, handler)
