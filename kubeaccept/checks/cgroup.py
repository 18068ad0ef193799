"""cgroup driver: the container runtime's must be systemd and agree with kubelet's."""

from __future__ import annotations

import re
from dataclasses import dataclass

from kubeaccept.checks import NodeContext
from kubeaccept.facts import containerd, dockerd
from kubeaccept.facts.config import KUBELET_CONFIG, ConfigError, load
from kubeaccept.model.findings import Finding
from kubeaccept.model.registry import Context, check
from kubeaccept.model.roles import NODE

DAEMON_JSON = dockerd.DAEMON_JSON
CONTAINERD_TOML = containerd.MAIN
FLAGS_ENV = "/var/lib/kubelet/kubeadm-flags.env"
GATE = "KubeletCgroupDriverFromCRI"
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
# The first release of each runtime answering the CRI RuntimeConfig call.
REPORTS_DRIVER = {"containerd": "containerd 2.0", "cri-o": "CRI-O 1.28",
                  "docker": "cri-dockerd 0.3.17"}


@dataclass
class Runtime:
    name: str  # docker, containerd, cri-o
    driver: str | None
    source: str  # where the driver comes from
    version: str  # "containerd 1.7.27", or why it is unknown
    reports_driver: bool | None  # answers RuntimeConfig
    fix: str  # how to make it systemd
    notes: list[str]
    files: str = ""  # which config files were read
    # The driver the runtime tells kubelet over CRI RuntimeConfig, where that differs from
    # what its default runtime runs (containerd: from another runtime's options); None: same.
    reported: str | None = None
    reported_source: str = ""


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


def _words(version) -> str:
    return ".".join(map(str, version))


def read_runtime(ctx: NodeContext, runtime: str) -> Runtime | Finding:
    """The runtime's driver, or the failing finding when the runtime cannot serve kubelet.
    Raises ConfigError on a malformed file."""
    name, facts = ctx.host.name, ctx.facts
    expected = "runtime driver systemd, equal to kubelet's cgroupDriver"
    if runtime == "docker":
        dock = dockerd.read(facts, facts.section("cgroupfs") == "cgroup2fs")
        problem, notes = dock.problem, dock.notes
        cri = facts.runtime_versions.get("cri-dockerd")
        version = (f"dockerd {_words(dock.version)}" if dock.version else "dockerd version "
                   "unknown") + (f", cri-dockerd {_words(cri)}" if cri else
                                 ", cri-dockerd version unknown")
        fix = (f"set --exec-opt native.cgroupdriver=systemd in {dock.flag_file}; systemctl "
               "daemon-reload" if dock.flag_file else
               f'set "exec-opts": ["native.cgroupdriver=systemd"] in {DAEMON_JSON}')
        evidence = (f"docker.service: {dock.unit or 'not found'}",)
        found = Runtime("docker", dock.driver, dock.source, version, dock.reports_driver, fix,
                        notes, evidence[0])
    elif runtime == "containerd":
        ctd = containerd.read(facts)
        problem, notes = ctd.problem, ctd.notes
        fix = f"set SystemdCgroup = true in [{ctd.options}] of {ctd.options_file}"
        evidence = (f"containerd config files: {', '.join(ctd.files) or 'none'}",)
        found = Runtime("containerd", ctd.driver, ctd.source, ctd.how, ctd.reports_driver, fix,
                        notes, evidence[0], ctd.reported, ctd.reported_source)
    else:
        crio = facts.runtime_versions.get("crio")
        return Runtime("cri-o", "systemd", "CRI-O's default cgroup_manager (systemd; crio.conf "
                       "not read)", f"CRI-O {_words(crio)}" if crio else "CRI-O version unknown",
                       None if crio is None else crio >= (1, 28, 0),
                       "set cgroup_manager = \"systemd\" in /etc/crio/crio.conf", [])
    if problem:
        return Finding(name, False, problem.observed, expected, problem.why, problem.fix,
                       (found.version, *evidence, *notes))
    return found


def kubelet_driver(ctx: NodeContext, kubelet: dict) -> tuple[str, str, bool | None]:
    """(driver kubelet is configured with, where, the KubeletCgroupDriverFromCRI gate as set)."""
    flags = ctx.facts.file(FLAGS_ENV).text or ""
    m = re.search(r"--cgroup-driver[= ]\"?([^\s\"]+)", flags)
    if m:
        driver, where = m.group(1), f"{FLAGS_ENV}: --cgroup-driver={m.group(1)}"
    elif "cgroupDriver" in kubelet:
        driver = str(kubelet.get("cgroupDriver") or "cgroupfs")
        where = f"{KUBELET_CONFIG}: cgroupDriver: {driver}"
    else:
        driver, where = "cgroupfs", f"{KUBELET_CONFIG}: cgroupDriver not set (kubelet default " \
                                    "cgroupfs)"
    gate = None
    gates = kubelet.get("featureGates")
    if isinstance(gates, dict) and isinstance(gates.get(GATE), bool):
        gate = gates[GATE]
    m = re.search(GATE + r"=(true|false)", flags, re.IGNORECASE)
    if m:  # flags win over the config file
        gate = m.group(1).lower() == "true"
    return driver, where, gate


def mechanism(version, gate: bool | None, runtime: Runtime) -> tuple[bool | None, str]:
    """(kubelet takes the driver from the runtime over CRI: yes/no/unknown, the sentence)."""
    label = f"kubelet {version[0]}.{version[1]}" if version else "kubelet (version unknown)"
    if version and version < (1, 28):
        return False, f"{label} takes the driver from its own configuration ({GATE} exists " \
                      "from 1.28)"
    if version and version < (1, 31) and not gate:
        return False, f"{label} takes the driver from its own configuration ({GATE} is alpha " \
                      "and off)"
    if gate is False and (version is None or version < (1, 34)):
        return False, f"{label} takes the driver from its own configuration ({GATE}=false)"
    stage = ("GA since 1.34" if version and version >= (1, 34) else
             "beta, on by default since 1.31" if version and version >= (1, 31) else
             "enabled" if gate else "on by default from 1.31")
    first = REPORTS_DRIVER[runtime.name]
    if version is None and gate is None:
        return None, (f"{label}: from 1.31 kubelet asks the runtime for its driver over CRI "
                      f"({GATE}) when the runtime implements RuntimeConfig ({first}+), else "
                      "uses its own cgroupDriver")
    if runtime.reports_driver:
        return True, (f"{label} asks {runtime.version} for the driver over CRI ({GATE}, "
                      f"{stage}; RuntimeConfig since {first}): kubelet's own cgroupDriver is "
                      "ignored")
    if runtime.reports_driver is False:
        return False, (f"{label} would ask the runtime over CRI ({GATE}, {stage}), but "
                       f"{runtime.version} does not implement RuntimeConfig ({first}+ does): "
                       "kubelet falls back to its own cgroupDriver")
    return None, (f"{label} asks the runtime over CRI ({GATE}, {stage}) if it implements "
                  f"RuntimeConfig ({first}+); {runtime.version}: kubelet's own "
                  "cgroupDriver is taken as the one it uses")


@check("node_cgroup_driver",
       ("the runtime's cgroup driver (containerd with its imports and config version, Docker "
        "from daemon.json or dockerd's systemd unit) is systemd and equals the one kubelet "
        "uses (its own setting, or the runtime's over CRI from Kubernetes 1.31)"),
       area="node",
       roles=NODE,
       reads=("kubelet config.yaml, kubeadm-flags.env",
              "containerd config.toml and imports",
              "daemon.json, dockerd units",
              "containerd/dockerd --version"),
       asserts=("the runtime (detected from kubelet's runtime endpoint, sockets, config "
                "files) uses systemd and kubelet uses the same driver. **containerd**, read "
                "as the version on the node does (`containerd --version`; unknown: 2.x rules "
                "for a config version 3+ file, else 1.x): `/etc/containerd/config.toml` and "
                "its `imports` (relative to the importing file, `*` globbed in name order, "
                "each file once; conf.d is read only when imported — containerd 2.2+'s "
                "`config default` writes `imports = ['/etc/containerd/conf.d/*.toml']`; "
                "imports outside `/etc/containerd/*.toml` and `conf.d/*.toml` are reported as"
                " not read, a missing one stops containerd); 1.x replaces a plugin's whole "
                "table per imported file, 2.x merges key by key; config version 1 "
                "`plugins.cri`, 2 `plugins.\"io.containerd.grpc.v1.cri\"`, 3/4 "
                "`plugins.\"io.containerd.cri.v1.runtime\"`. containerd 2.0–2.2 merge the "
                "files first (the merged version is the last file's with one) and migrate "
                "version 2 keys once, on the merged config, only when that version is below 3 "
                "and only into keys still missing — a version 2 conf.d drop-in under a "
                "version 3 main that has a runtimes table is dropped; 2.3+ migrate each file "
                "before merging; 1.x refuses version 3, 2.0–2.2 a merged version 4. The "
                "model is judged against `containerd config dump` of containerd 2.0.14, "
                "2.1.9, 2.2.10 and 2.3.7. The runtime `default_runtime_name` names (e.g. "
                "`nvidia`), its `options.SystemdCgroup` (absent: false = cgroupfs in 1.x and "
                "2.x) is what the shim runs; what containerd 2.x tells kubelet over CRI "
                "RuntimeConfig comes from the first runtime with runc options (the default "
                "first, then by name), and the finding names both sides when they differ; "
                "`disabled_plugins = [\"cri\"]` (Docker's containerd.io package) is \"CRI "
                "disabled\", not a driver question. **Docker**: `--exec-opt` from dockerd's "
                "systemd unit (`/etc`, `/run`, `/usr/local/lib`, `/usr/lib`, `/lib` "
                "`systemd/system/docker.service` and `docker.service.d/*.conf` drop-ins: "
                "empty `ExecStart=` resets, `Environment=`/`EnvironmentFile=` "
                "(`/etc/default/docker`, `/etc/sysconfig/docker`) variables expanded) or "
                "`exec-opts` in daemon.json (byte order mark accepted from dockerd 23); "
                "moby's parsing (key trimmed and case-insensitive; dockerd 28+ takes the last"
                " value and refuses malformed ones, older the first); both flag and file = "
                "dockerd does not start; default systemd on cgroup v2. **kubelet**: "
                "`cgroupDriver` (or `--cgroup-driver` in kubeadm-flags.env; default cgroupfs)"
                " unless `KubeletCgroupDriverFromCRI` (alpha 1.28, beta on 1.31, GA locked "
                "1.34) and a runtime answering RuntimeConfig (containerd 2.0+, CRI-O 1.28+, "
                "cri-dockerd 0.3.17+): then kubelet uses the runtime's driver and its own "
                "setting is ignored; the message says which applies for the node's Kubernetes"
                " and runtime versions. The runtime files are gathered with URL credentials "
                "and registry auth values blanked on the node. A malformed "
                "`daemon.json`/`config.toml`/`config.yaml` fails with file, line and column"),
       prevents=("pod sandboxes fail (`kubelet cgroup driver … is different from docker "
                 "cgroup driver`), `[WARNING IsDockerSystemdCheck]` instability (report 03), "
                 "`unknown service runtime.v1.RuntimeService`"))
def node_cgroup_driver(ctx: Context) -> list[Finding]:
    node = ctx.node
    name = node.host.name
    expected = "runtime driver systemd, equal to kubelet's cgroupDriver"
    try:
        kubelet = load(node.facts.file(KUBELET_CONFIG))
        if kubelet is None:
            return [Finding(name, False, f"{KUBELET_CONFIG} not found", expected,
                            "without it kubelet runs with defaults (cgroupfs) or does not start",
                            "run `kubeadm join`/`kubeadm init phase kubelet-start`")]
        runtime_name, how = detect_runtime(node, kubelet)
        if runtime_name is None:
            return [Finding(name, False, f"container runtime not found ({how})", expected,
                            "kubelet cannot run pods without a container runtime",
                            "install containerd (or Docker + cri-dockerd) and point kubelet at it")]
        runtime = read_runtime(node, runtime_name)
    except ConfigError as exc:
        return [Finding(name, False, f"malformed config: {exc}", expected,
                        "the runtime or kubelet refuses to start with a config it cannot parse",
                        "repair the file at the line shown", (str(exc),))]
    if isinstance(runtime, Finding):
        return [runtime]
    configured, kubelet_where, gate = kubelet_driver(node, kubelet)
    if gate is False and node.version and node.version >= (1, 34):
        return [Finding(name, False, f"kubelet does not start: {GATE}=false", expected,
                        f"the gate is GA and locked on since Kubernetes 1.34 (\"cannot set "
                        f"feature gate {GATE} to false, feature is locked to true\")",
                        f"remove {GATE} from featureGates in {KUBELET_CONFIG} (and from "
                        f"--feature-gates in {FLAGS_ENV}); restart kubelet", (kubelet_where,))]
    from_cri, sentence = mechanism(node.version, gate, runtime)
    evidence = (f"runtime {runtime.name}: {how}", runtime.version,
                *([runtime.files] if runtime.files else []), runtime.source, kubelet_where,
                sentence, *runtime.notes)
    if runtime.driver is None:
        return [Finding(name, True, f"{runtime.name}'s cgroup driver not checked", expected,
                        evidence=evidence, note="; ".join(runtime.notes))]
    told = runtime.reported or runtime.driver
    used = told if from_cri else configured
    observed = f"{runtime.name} uses {runtime.driver}, kubelet uses {used}"
    if from_cri and told != runtime.driver:  # which side is which
        observed = (f"{runtime.name}'s default runtime runs {runtime.driver} (the shim side), "
                    f"{runtime.name} tells kubelet {told} over CRI (the RuntimeConfig side), "
                    f"kubelet uses {used}")
        evidence += (f"{runtime.name} answers RuntimeConfig with {told}: "
                     f"{runtime.reported_source}",)
    elif from_cri:
        observed += f" (told by {runtime.name} over CRI)"
    if runtime.driver == used == "systemd":
        # Worth a note: what only holds thanks to CRI, and what was not read.
        said = [sentence] if from_cri and configured != used else []
        return [Finding(name, True, observed, expected, evidence=evidence,
                        note="; ".join(said + runtime.notes))]
    why = (MISMATCH_WHY.format(kubelet=used, runtime=runtime.name, driver=runtime.driver)
           if runtime.driver != used else CGROUPFS_WHY)
    if from_cri and told != runtime.driver:
        why += (f". {runtime.name} answers kubelet's RuntimeConfig from the first runtime whose "
                "options it can read as runc's (the default runtime first, then the others by "
                f"name; internal/cri/server/runtime_config_linux.go), here "
                f"{runtime.reported_source}, while pods run with the default runtime: "
                f"{runtime.source}")
    why += f". {runtime.source}; {kubelet_where}; {sentence}"
    if runtime.notes:
        why += "; " + "; ".join(runtime.notes)
    fixes = []
    if runtime.driver != "systemd":
        fixes += [runtime.fix, f"restart {runtime.name}"]
    if used != "systemd" and not from_cri:
        fixes.append("set cgroupDriver: systemd in " + (
            f"{KUBELET_CONFIG} and drop --cgroup-driver from {FLAGS_ENV}"
            if kubelet_where.startswith(FLAGS_ENV) else KUBELET_CONFIG))
    fixes.append("restart kubelet")
    return [Finding(name, False, observed, expected, why, "; ".join(fixes), evidence)]
