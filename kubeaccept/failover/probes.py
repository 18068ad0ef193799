"""What the gate samples during an outage, each bounded by a short timeout: /readyz through
the controlPlaneEndpoint, etcd's view from a surviving control plane, a write through the API,
and cluster DNS from the dnsutils pod and from a surviving node."""

from __future__ import annotations

import itertools
import json
import shlex
import time

from kubeaccept.api import apiprobe, dnsutils
from kubeaccept.api.kubeapi import Api, HttpError, raw_call
from kubeaccept.checks.dns import parse_lookup
from kubeaccept.model.hosts import Host
from kubeaccept.remote.transport import Connection

NAMESPACE = "kubeaccept-failover"  # the namespace the gate owns: made and removed by it
ETCD_PKI = "/etc/kubernetes/pki/etcd"
TIMEOUT = (1.0, 2.0)  # connect, read: a sample must not outlive the sampling interval much


def short_api(kubeconfig: dict, server: str, source: str,
              timeout: tuple[float, float] = TIMEOUT) -> Api:
    from kubernetes import client, config

    cfg = client.Configuration()
    config.load_kube_config_from_dict(kubeconfig, client_configuration=cfg)
    cfg.host = server
    cfg.retries = False
    return Api(client.ApiClient(cfg), server, source, timeout)


def readyz(url: str, ca: bytes | None, timeout: float = 1.5):
    def probe():
        answer = apiprobe.get(url, ca, timeout)
        ok = answer.status == 200 and answer.body.strip() == "ok"
        detail = (f"{answer.status} {answer.body.strip()[:80]}" if answer.status
                  else f"no answer: {answer.body[:120]}")
        return ok, detail, {}
    return probe


def etcd_command(endpoints: list[str], become: bool) -> str:
    """Status and health of each member, asked in parallel so that a dead member costs one
    dial timeout, not one per question."""
    e = (f"--cacert={ETCD_PKI}/ca.crt --cert={ETCD_PKI}/healthcheck-client.crt "
         f"--key={ETCD_PKI}/healthcheck-client.key --dial-timeout=1s --command-timeout=1s "
         "-w json")
    parts = []
    for ep in endpoints:
        q = shlex.quote(ep)
        parts.append(f"(echo \"S $(etcdctl {e} --endpoints={q} endpoint status 2>/dev/null "
                     f"| tr -d '\\n')\") &")
        parts.append(f"(echo \"H $(etcdctl {e} --endpoints={q} endpoint health 2>/dev/null "
                     f"| tr -d '\\n')\") &")
    line = "PATH=$PATH:/usr/local/bin; " + " ".join(parts) + " wait"
    line = f"sh -c {shlex.quote(line)}"
    return f"sudo -n -- {line}" if become else line


def parse_etcd(stdout: str, names: dict[str, str]) -> dict:
    """{"leader": name|None, "term": int|None, "healthy": {endpoint: bool}} from lines
    "S <endpoint status JSON>" and "H <endpoint health JSON>"; `names`: member id (hex) ->
    name."""
    out = {"leader": None, "term": None, "healthy": {}}
    for line in stdout.splitlines():
        kind, _, text = line.partition(" ")
        try:
            data = json.loads(text) if text.strip().startswith("[") else []
        except ValueError:
            data = []
        for item in data:
            if kind == "S":
                s = item.get("Status", {})
                if s.get("leader"):
                    out["leader"] = names.get(f"{s['leader']:x}", f"{s['leader']:x}")
                    out["term"] = max(out["term"] or 0, int(s.get("raftTerm") or 0))
            elif kind == "H":
                out["healthy"][item.get("endpoint", "?")] = bool(item.get("health"))
    return out


def etcd(conn: Connection, host: Host, names: dict[str, str], by_endpoint: dict[str, str],
         timeout: float = 5.0):
    """etcd as seen from a surviving control plane."""
    command = etcd_command(sorted(by_endpoint), host.become and host.user != "root")

    def probe():
        result = conn.run(command, timeout)
        view = parse_etcd(result.stdout, names)
        view["healthy"] = {by_endpoint.get(k, k): v for k, v in view["healthy"].items()}
        for name in by_endpoint.values():
            view["healthy"].setdefault(name, False)  # no answer at all: not healthy
        sick = sorted(n for n, ok in view["healthy"].items() if not ok)
        detail = (f"leader {view['leader']} term {view['term']}" if view["leader"]
                  else "no leader") + (f"; unhealthy: {', '.join(sick)}" if sick else "")
        return view["leader"] is not None, detail, view
    return probe


def write(api: Api):
    """Create and delete a ConfigMap in the gate's own namespace."""
    counter = itertools.count()

    def probe():
        name = f"probe-{next(counter)}"
        path = f"/api/v1/namespaces/{NAMESPACE}/configmaps"
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
                "data": {"written-by": "kubeaccept failover gate"}}
        try:
            raw_call(api.api_client, "POST", path, api.timeout, body)
            raw_call(api.api_client, "DELETE", f"{path}/{name}", api.timeout)
        except HttpError as exc:
            return False, f"{exc.status} {exc.body[:120].decode(errors='replace')}", {}
        except Exception as exc:  # noqa: BLE001 - urllib3/socket errors: a failed write
            return False, _short(exc), {}
        return True, "created and deleted", {}
    return probe


def dns_pod(api: Api, expected: str):
    """nslookup kubernetes.default in the dnsutils pod; None when exec itself failed (an API
    sample, not a DNS one)."""
    def probe():
        try:
            output = dnsutils.exec_lookup(api)
        except Exception as exc:  # noqa: BLE001 - websocket/HTTP errors: no DNS verdict
            return None, f"exec failed: {_short(exc)}", {}
        return _lookup_verdict(output, expected)
    return probe


def dns_node(conn: Connection, dns_ip: str, expected: str, timeout: float = 4.0):
    def probe():
        line = (f"dig +time=1 +tries=1 +short @{dns_ip} kubernetes.default.svc.cluster.local"
                " 2>&1 || nslookup -timeout=1 -retry=0 kubernetes.default.svc.cluster.local "
                f"{dns_ip} 2>&1")
        result = conn.run(line, timeout)
        return _lookup_verdict(result.stdout, expected)
    return probe


def _lookup_verdict(output: str, expected: str):
    _, answers, error = parse_lookup(output)
    if expected in answers:
        return True, f"answered {expected}", {}
    text = error or (output.strip().splitlines() or ["no answer"])[-1]
    return False, f"{', '.join(answers) or 'no address'}: {text[:120]}", {}


def _short(exc: BaseException) -> str:
    text = str(getattr(exc, "reason", None) or exc).splitlines()
    return (text[0] if text else type(exc).__name__)[:160]


def ensure_namespace(api: Api, timeout: float = 120) -> None:
    """Create the gate's namespace; wait out the deletion of a previous run's one (a
    Terminating namespace refuses new objects)."""
    deadline = time.monotonic() + timeout
    path = f"/api/v1/namespaces/{NAMESPACE}"
    while True:
        try:
            raw_call(api.api_client, "POST", "/api/v1/namespaces", api.timeout,
                     {"apiVersion": "v1", "kind": "Namespace", "metadata": {
                         "name": NAMESPACE, "labels": {"app.kubernetes.io/created-by":
                                                       "kubeaccept"}}})
            return
        except HttpError as exc:
            if exc.status != 409:
                raise
        ns = api.get(path, missing_ok=True)
        if ns is not None and ns.get("status", {}).get("phase") != "Terminating":
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"namespace {NAMESPACE} still terminating after {timeout:g}s")
        time.sleep(1)


def delete_namespace(api: Api) -> None:
    try:
        raw_call(api.api_client, "DELETE", f"/api/v1/namespaces/{NAMESPACE}", api.timeout)
    except HttpError as exc:
        if exc.status != 404:
            raise
