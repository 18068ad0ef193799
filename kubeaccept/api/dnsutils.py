"""`kubectl exec dnsutils -- nslookup kubernetes.default`, done with the Python client: the
dnsutils pod of the Kubernetes DNS-debugging page, created if absent and removed afterwards
only if the suite created it."""

from __future__ import annotations

import json
import time

from kubeaccept.api.kubeapi import Api

# The Kubernetes client is imported where it is used: a run that never reaches the API does
# not pay for it (0.2 s per process).

NAMESPACE, NAME = "default", "dnsutils"
COMMAND = ["nslookup", "kubernetes.default"]


def pod_manifest(image: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": NAME, "namespace": NAMESPACE,
                         "labels": {"app.kubernetes.io/created-by": "kubeaccept"}},
            "spec": {"containers": [{"name": "dnsutils", "image": image,
                                     "command": ["sleep", "infinity"],
                                     "imagePullPolicy": "IfNotPresent"}],
                     "restartPolicy": "Always", "terminationGracePeriodSeconds": 0}}


def ensure_pod(api: Api, image: str, timeout: float) -> tuple[dict | None, bool, str]:
    """(pod, created by us, problem): waits for the pod to be Running and Ready."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    core = client.CoreV1Api(api.api_client)
    created = False
    path = f"/api/v1/namespaces/{NAMESPACE}/pods/{NAME}"
    pod = api.get(path, missing_ok=True)
    if pod is None:
        try:
            core.create_namespaced_pod(NAMESPACE, pod_manifest(image),
                                       _request_timeout=api.timeout)
            created = True
        except ApiException as exc:
            if exc.status != 409:  # 409: someone else just created it
                return None, False, f"cannot create pod {NAMESPACE}/{NAME}: {exc.status} " \
                                    f"{exc.reason}"
    deadline = time.monotonic() + timeout
    while True:
        pod = api.get(path, missing_ok=True)
        status = (pod or {}).get("status", {})
        ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                    for c in status.get("conditions", []))
        if status.get("phase") == "Running" and ready:
            return pod, created, ""
        if time.monotonic() > deadline:
            waiting = [cs.get("state", {}).get("waiting", {}).get("reason", "")
                       for cs in status.get("containerStatuses", [])]
            detail = ", ".join(w for w in waiting if w) or status.get("phase", "absent")
            node = (pod or {}).get("spec", {}).get("nodeName")
            return pod, created, (f"pod {NAMESPACE}/{NAME} not Running and Ready after "
                                  f"{timeout:g}s ({detail}; node {node})")
        time.sleep(0.5)


def exec_lookup(api: Api, command: list[str] = COMMAND) -> str:
    """The command's stdout+stderr, through the apiserver's exec API (websocket)."""
    from kubernetes import client
    from kubernetes.stream import stream
    from kubernetes.stream.ws_client import ERROR_CHANNEL

    core = client.CoreV1Api(api.api_client)
    ws = stream(core.connect_get_namespaced_pod_exec, NAME, NAMESPACE, command=command,
                stderr=True, stdin=False, stdout=True, tty=False, _preload_content=False,
                _request_timeout=api.timeout)
    try:
        ws.run_forever(timeout=api.timeout[1])
        if ws.is_open():
            # the apiserver upgrades at once and then dials the kubelet (for 30 s): a dead
            # node's exec stays silent, as does a command still running
            raise TimeoutError(f"no reply within {api.timeout[1]:g}s (--command-timeout): "
                               f"{' '.join(command)} did not finish, or the apiserver cannot "
                               "reach the kubelet of the pod's node")
        out = ws.read_stdout(timeout=0) + ws.read_stderr(timeout=0)
        status = ws.read_channel(ERROR_CHANNEL, timeout=0)
        if not out and (reason := _failure(status)):
            raise RuntimeError(reason)  # the apiserver's: "error dialing backend: …"
        return out
    finally:
        ws.close()
        if ws.sock:  # websocket-client leaves the socket open when the server closed first
            ws.sock.shutdown()


def _failure(text: str) -> str | None:
    """The message of a Status of kind Failure on the exec's error channel."""
    try:
        status = json.loads(text or "{}")
    except ValueError:
        return text
    if not isinstance(status, dict) or status.get("status") != "Failure":
        return None
    return str(status.get("message") or text)


def delete_pod(api: Api) -> None:
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    core = client.CoreV1Api(api.api_client)
    try:
        core.delete_namespaced_pod(NAME, NAMESPACE, grace_period_seconds=0,
                                   _request_timeout=api.timeout)
    except ApiException as exc:
        if exc.status != 404:
            raise
