"""cgroup driver: the container runtime's must be systemd and agree with kubelet's."""

from __future__ import annotations

import re

from ..findings import Finding
from . import NodeContext
from .parse import KUBELET_CONFIG, ConfigError, load

DAEMON_JSON = "/etc/docker/daemon.json"
CONTAINERD_TOML = "/etc/containerd/config.toml"
FLAGS_ENV = "/var/lib/kubelet/kubeadm-flags.env"
# containerd config version 2 and version 3 (containerd 2.x) keep runc's options here.
RUNC_OPTIONS = (
    ("plugins", "io.containerd.grpc.v1.cri", "containerd", "runtimes", "runc", "options"),
    ("plugins", "io.containerd.cri.v1.runtime", "containerd", "runtimes", "runc", "options"),
)
MISMATCH_WHY = (
    "kubelet and the runtime put pods into different cgroup hierarchies: pod sandboxes fail "
    "(\"misconfiguration: kubelet cgroup driver: \\\"{kubelet}\\\" is different from "
    "{runtime} cgroup driver: \\\"{driver}\\\"\") and the node goes NotReady"
)
CGROUPFS_WHY = (
    "two cgroup managers (systemd and the runtime) on one host make the node unstable under "
    "resource pressure; kubeadm warns \"[WARNING IsDockerSystemdCheck]: detected \\\"cgroupfs\\\" "
    "as the Docker cgroup driver. The recommended driver is \\\"systemd\\\"\""
)


def _endpoint(ctx: NodeContext, kubelet: dict) -> str:
    endpoint = str(kubelet.get("containerRuntimeEndpoint") or "")
    flags = ctx.facts.file(FLAGS_ENV).text or ""
    m = re.search(r"--container-runtime-endpoint[= ]\"?([^\s\"]+)", flags)
    return endpoint or (m.group(1) if m else "")


def detect_runtime(ctx: NodeContext, kubelet: dict) -> tuple[str | None, str]:
    """(runtime, how we know) — runtime is docker, containerd, cri-o or None."""
    endpoint = _endpoint(ctx, kubelet)
    for word, runtime in (("cri-dockerd", "docker"), ("dockershim", "docker"),
                          ("containerd", "containerd"), ("crio", "cri-o")):
        if word in endpoint:
            return runtime, f"kubelet's container runtime endpoint {endpoint}"
    sockets = ctx.facts.runtime_sockets
    if any("cri-dockerd" in s for s in sockets):
        return "docker", "socket /run/cri-dockerd.sock"
    if "/var/run/docker.sock" in sockets and (ctx.version or (1, 99)) < (1, 24):
        return "docker", "socket /var/run/docker.sock with dockershim (Kubernetes < 1.24)"
    if "/run/containerd/containerd.sock" in sockets:
        return "containerd", "socket /run/containerd/containerd.sock"
    for path, runtime in ((DAEMON_JSON, "docker"), (CONTAINERD_TOML, "containerd")):
        if ctx.facts.file(path).exists:
            return runtime, f"{path} exists"
    return None, "no runtime endpoint, socket or config file found"


def _dig(data: dict, path: tuple[str, ...]):
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def runtime_driver(ctx: NodeContext, runtime: str) -> tuple[str, str]:
    """(driver, evidence). Raises ConfigError on a malformed file."""
    if runtime == "docker":
        conf = load(ctx.facts.file(DAEMON_JSON))
        for opt in (conf or {}).get("exec-opts", []):
            if str(opt).startswith("native.cgroupdriver="):
                return opt.split("=", 1)[1], f"{DAEMON_JSON}: exec-opts {opt}"
        # Docker's default: cgroupfs on cgroup v1, systemd on cgroup v2 (Docker >= 20.10).
        default = "systemd" if ctx.facts.section("cgroupfs") == "cgroup2fs" else "cgroupfs"
        return default, f"{DAEMON_JSON}: no native.cgroupdriver exec-opt (Docker default {default})"
    if runtime == "containerd":
        conf = load(ctx.facts.file(CONTAINERD_TOML)) or {}
        for path in RUNC_OPTIONS:
            value = _dig(conf, path + ("SystemdCgroup",))
            if value is not None:
                key = ".".join(f'"{p}"' if "." in p else p for p in path)
                return ("systemd" if value is True else "cgroupfs",
                        f"{CONTAINERD_TOML}: {key}.SystemdCgroup = {str(value).lower()}")
        return "cgroupfs", f"{CONTAINERD_TOML}: SystemdCgroup not set (containerd default false)"
    return "systemd", "CRI-O's default cgroup_manager (systemd)"


def cgroup_driver(ctx: NodeContext) -> list[Finding]:
    cid, name = "node_cgroup_driver", ctx.host.name
    expected = "runtime driver systemd, equal to kubelet's cgroupDriver"
    try:
        kubelet = load(ctx.facts.file(KUBELET_CONFIG))
        if kubelet is None:
            return [Finding(cid, name, False, f"{KUBELET_CONFIG} not found", expected,
                            "without it kubelet runs with defaults (cgroupfs) or does not start",
                            "run `kubeadm join`/`kubeadm init phase kubelet-start`")]
        runtime, how = detect_runtime(ctx, kubelet)
        if runtime is None:
            return [Finding(cid, name, False, f"container runtime not found ({how})", expected,
                            "kubelet cannot run pods without a container runtime",
                            "install containerd (or Docker + cri-dockerd) and point kubelet at it")]
        driver, runtime_evidence = runtime_driver(ctx, runtime)
    except ConfigError as exc:
        return [Finding(cid, name, False, f"malformed config: {exc}", expected,
                        "the runtime or kubelet refuses to start with a config it cannot parse",
                        "repair the file at the line shown", (str(exc),))]
    kubelet_driver = str(kubelet.get("cgroupDriver") or "cgroupfs")
    kubelet_evidence = (f"{KUBELET_CONFIG}: cgroupDriver: {kubelet_driver}"
                        if "cgroupDriver" in kubelet else
                        f"{KUBELET_CONFIG}: cgroupDriver not set (kubelet default cgroupfs)")
    observed = f"{runtime} uses {driver}, kubelet uses {kubelet_driver}"
    evidence = (f"runtime {runtime}: {how}", runtime_evidence, kubelet_evidence)
    if driver == kubelet_driver == "systemd":
        return [Finding(cid, name, True, observed, expected, evidence=evidence)]
    if driver != kubelet_driver:
        why = MISMATCH_WHY.format(kubelet=kubelet_driver, runtime=runtime, driver=driver)
    else:
        why = CGROUPFS_WHY
    fixes = []
    if driver != "systemd":
        fixes.append({
            "docker": f'set "exec-opts": ["native.cgroupdriver=systemd"] in {DAEMON_JSON}',
            "containerd": f"set SystemdCgroup = true under the runc options in {CONTAINERD_TOML}",
        }.get(runtime, "configure the runtime's cgroup manager as systemd"))
        fixes.append(f"restart {runtime}")
    if kubelet_driver != "systemd":
        fixes.append(f"set cgroupDriver: systemd in {KUBELET_CONFIG}")
    fixes.append("restart kubelet")
    return [Finding(cid, name, False, observed, expected, why, "; ".join(fixes), evidence)]
