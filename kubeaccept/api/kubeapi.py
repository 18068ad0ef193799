"""The Kubernetes API, as the suite uses it: credentials from --kubeconfig or a control plane's
/etc/kubernetes/admin.conf (read over SSH, kept in memory), the first apiserver that answers
(the controlPlaneEndpoint first, then each control plane), bounded calls, JSON dicts back."""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import urllib3
import yaml

from kubeaccept.model.apistate import ApiState

if TYPE_CHECKING:  # the client is imported when the API is used (0.2 s per process)
    from kubernetes.client import ApiClient
from kubeaccept.model.hosts import Host, as_root, node_ip
from kubeaccept.remote.transport import CommandTimeout, Unreachable, sudo_refused

ADMIN_CONF = "/etc/kubernetes/admin.conf"
CONFIGMAPS = ("kube-system/kubeadm-config", "kube-flannel/kube-flannel-cfg",
              "kube-system/kube-flannel-cfg", "kube-system/coredns", "kube-system/cilium-config")
# Custom resources read where their CRD exists (a 404 means the CNI is not installed)
CALICO_IPPOOLS = ("/apis/crd.projectcalico.org/v1/ippools", "/apis/projectcalico.org/v3/ippools")
CILIUM_NODES = "/apis/cilium.io/v2/ciliumnodes"
# A load balancer in front of apiservers may hand one call to a broken backend: ask again.
ATTEMPTS = 3


class ApiUnavailable(Exception):
    """No usable credentials or no apiserver answered; str() says which and what to do."""


class HttpError(Exception):
    def __init__(self, status: int, reason: str, body: bytes = b""):
        super().__init__(f"{status} {reason}")
        self.status, self.reason, self.body = status, reason, body


# Metadata only (what `kubectl get --raw` calls PartialObjectMetadata): a Secret's existence
# without its data ever leaving the apiserver.
METADATA_ONLY = ("application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,"
                 "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1beta1")


def raw_call(api_client: ApiClient, method: str, path: str, timeout, body=None,
             content_type: str | None = None, accept: str = "application/json") -> bytes:
    """One request with the client's credentials; HttpError for any non-2xx answer."""
    headers = {"Accept": accept}
    if content_type:
        headers["Content-Type"] = content_type
    m, url, hdrs, data, post = api_client.param_serialize(
        method, path, header_params=headers, body=body, auth_settings=["BearerToken"])
    resp = api_client.call_api(m, url, hdrs, data, post, _request_timeout=timeout)
    payload = resp.read()
    if not 200 <= resp.status < 300:
        raise HttpError(resp.status, resp.reason or "", payload or b"")
    return payload


@dataclass
class Api:
    api_client: ApiClient
    endpoint: str
    source: str   # where the credentials came from
    timeout: tuple[float, float]
    passed_over: tuple[str, ...] = ()  # servers tried first that did not answer, and why

    def get(self, path: str, missing_ok: bool = False,
            accept: str = "application/json") -> dict | None:
        """GET path -> JSON; None for a 404 when missing_ok."""
        from kubernetes.client.rest import ApiException

        last: Exception | None = None
        for attempt in range(ATTEMPTS):
            try:
                return json.loads(raw_call(self.api_client, "GET", path, self.timeout,
                                           accept=accept))
            except (ApiException, HttpError) as exc:
                if exc.status == 404 and missing_ok:
                    return None
                if exc.status and exc.status < 500:
                    raise ApiUnavailable(f"GET {path} on {self.endpoint}: {exc.status} "
                                         f"{exc.reason}") from None
                last = exc
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                last = exc
            time.sleep(0.2 * (attempt + 1))
        raise ApiUnavailable(f"GET {path} on {self.endpoint}: {_short(last)}")

    def close(self) -> None:
        self.api_client.close()

    def items(self, path: str) -> list[dict]:
        return (self.get(path) or {}).get("items", [])


def _short(exc: BaseException | None) -> str:
    text = str(getattr(exc, "reason", None) or exc)
    # urllib3 wraps its message with the connection's repr: "(<HTTPSConnection(...) at 0x..>,
    # 'Connection to 192.0.2.1 timed out. (connect timeout=3.0)')"
    if m := re.fullmatch(r"\(<[^>]*>, '(.*)'\)", text.strip(), re.S):
        text = m.group(1)
    return text.splitlines()[0][:300] if text else type(exc).__name__


def admin_conf_over_ssh(store, hosts: list[Host]) -> tuple[dict, str]:
    """The first control plane's admin.conf that can be read (root: kubeadm makes it 0600)."""
    errors = []
    # a control plane this process is logged into, or will log into first to gather its
    # facts (the API is opened as the run starts): no extra login
    order = {name: i for i, name in enumerate(getattr(store, "order", []))}
    hosts = sorted(hosts, key=lambda h: (h.name not in getattr(store, "_connections", {}),
                                         order.get(h.name, len(order))))
    for host in hosts:
        line, stdin = as_root(host, f"cat {ADMIN_CONF}")
        try:
            result = store.connection(host).run(line, store.settings.command_timeout, stdin)
        except (Unreachable, CommandTimeout) as exc:
            errors.append(f"{host.name}: {exc}")
            continue
        if result.exit_status == 0 and result.stdout.strip():
            try:
                return yaml.safe_load(result.stdout), f"{host.name}:{ADMIN_CONF}"
            except yaml.YAMLError as exc:
                errors.append(f"{host.name}: {ADMIN_CONF} is not YAML: {exc}")
                continue
        said = (result.stderr or "empty").strip().splitlines()[-1]
        errors.append(sudo_refused(host, result.stderr) or f"{host.name}: {said}")
    raise ApiUnavailable("no Kubernetes credentials: give --kubeconfig=PATH, or let the suite "
                         f"read {ADMIN_CONF} on a control plane (" + "; ".join(errors) + ")")


def kubeconfig_file(path: Path) -> tuple[dict, str]:
    try:
        return yaml.safe_load(path.read_text()), str(path)
    except (OSError, yaml.YAMLError) as exc:
        raise ApiUnavailable(f"--kubeconfig {path}: {exc}") from None


def load_client() -> None:
    """Import the client (0.2 s) in the calling thread: pytest's warnings capture swaps the
    process-wide filter list around each test, which an import in another thread races (a
    run errored on urllib3's SOCKS DependencyWarning turned into an error)."""
    from kubernetes import client, config  # noqa: F401
    from kubernetes.client import rest  # noqa: F401


def connect(kubeconfig: dict, source: str, control_planes: list[Host],
            connect_timeout: float, read_timeout: float) -> Api:
    """An Api on the first server that answers /readyz: the kubeconfig's, then each
    control plane's own apiserver on 6443 (so a dead load balancer does not hide the rest)."""
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException

    cfg = client.Configuration()
    try:
        config.load_kube_config_from_dict(kubeconfig, client_configuration=cfg)
    except Exception as exc:  # the loader raises several types for a bad file
        raise ApiUnavailable(f"{source}: not a usable kubeconfig: {_short(exc)}") from None
    servers = [cfg.host] + [f"https://{node_ip(h)}:6443" for h in control_planes]
    tried = []
    for server in dict.fromkeys(servers):
        c = client.Configuration()
        config.load_kube_config_from_dict(kubeconfig, client_configuration=c)
        c.host = server
        c.retries = False
        api = Api(client.ApiClient(c), server, source, (connect_timeout, read_timeout))
        try:
            raw_call(api.api_client, "GET", "/readyz", (connect_timeout, read_timeout))
            api.passed_over = tuple(tried)
            return api  # the caller closes it
        except (ApiException, HttpError) as exc:
            tried.append(f"{server}: {exc.status} {exc.reason}")
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            tried.append(f"{server}: {_short(exc)}")
        api.close()
    raise ApiUnavailable("no apiserver answered /readyz (" + "; ".join(tried) + ")")


def _first_found(api: Api, paths: tuple[str, ...]) -> list[dict]:
    """The items of the first of `paths` the apiserver serves ([] when none is: 404)."""
    for path in paths:
        found = api.get(path, missing_ok=True)
        if found is not None:
            return found.get("items", [])
    return []


def read_state(api: Api) -> ApiState:
    """Everything the cluster checks read, fetched in parallel."""
    lists = {"nodes": "/api/v1/nodes", "pods": "/api/v1/pods", "events": "/api/v1/events",
             "daemonsets": "/apis/apps/v1/daemonsets",
             "deployments": "/apis/apps/v1/deployments", "services": "/api/v1/services"}
    singles = {name: f"/api/v1/namespaces/{name.split('/')[0]}/configmaps/{name.split('/')[1]}"
               for name in CONFIGMAPS}
    felix = "/apis/crd.projectcalico.org/v1/felixconfigurations"
    certs = "/api/v1/namespaces/kube-system/secrets/kubeadm-certs"
    with ThreadPoolExecutor(max_workers=8) as pool:
        listed = {k: pool.submit(api.items, p) for k, p in lists.items()}
        maps = {k: pool.submit(api.get, p, True) for k, p in singles.items()}
        felix_f = pool.submit(api.get, felix, True)
        certs_f = pool.submit(api.get, certs, True, METADATA_ONLY)
        pools_f = pool.submit(_first_found, api, CALICO_IPPOOLS)
        cilium_f = pool.submit(api.get, CILIUM_NODES, True)
        data = {k: f.result() for k, f in listed.items()}
        configmaps = {k: f.result() for k, f in maps.items() if f.result() is not None}
        secret = certs_f.result()
        return ApiState(endpoint=api.endpoint, configmaps=configmaps,
                        felix_configurations=(felix_f.result() or {}).get("items", []),
                        calico_ippools=pools_f.result(),
                        cilium_nodes=(cilium_f.result() or {}).get("items", []),
                        kube_system_secrets=frozenset({"kubeadm-certs"} if secret else ()),
                        **data)
