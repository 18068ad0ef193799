"""node_cgroup_driver on real runtime configurations: containerd's imports, config versions,
default runtime and defaults; dockerd's exec-opts and systemd unit; kubelet's
KubeletCgroupDriverFromCRI. Fixtures: selftests/unit/fixtures/runtime (README.md says where
each comes from)."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

from kubeaccept import facts as facts_module
from kubeaccept.facts import parse
from kubeaccept.model.settings import Settings
from lab.nodefiles import DAEMON_JSON

from .factory import context, facts, host, runtime_files, runtime_versions
from .factory import judge as run_check

FIXTURES = Path(__file__).parent / "fixtures" / "runtime"
MAIN = "/etc/containerd/config.toml"
KUBELET = "/var/lib/kubelet/config.yaml"
FLAGS = "/var/lib/kubelet/kubeadm-flags.env"
DOCKER_FLAGS = ('KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///var/run/'
                'cri-dockerd.sock --pod-infra-container-image=registry.k8s.io/pause:3.9"\n')
CTD_1_7_2 = "containerd github.com/containerd/containerd 1.7.2"
CTD_1_7_27 = "containerd containerd.io 1.7.27 05044ec0a9a75232cad458027ca83437aae3f4da"
CTD_2_0_0 = "containerd github.com/containerd/containerd/v2 v2.0.0 207ad711eabd375a01713109a8a197d"
CTD_2_1_4 = "containerd github.com/containerd/containerd/v2 v2.1.4 75cb2b7193e4e490e9fbdc236c0e8"
CTD_2_2_1 = "containerd github.com/containerd/containerd/v2 2.2.1"
CTD_2_3_0 = "containerd github.com/containerd/containerd/v2 v2.3.0 7f3d1a2b5c6e4d8f9a0b1c2d3e4f5a6"
# containerd's documented way to turn on the systemd driver (docs/cri/config.md, v2.0.0).
SYSTEMD_V3 = ("version = 3\n[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc"
              ".options]\n  SystemdCgroup = true\n")
SYSTEMD_V2 = ('version = 2\n[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc'
              '.options]\n  SystemdCgroup = true\n')


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def judge(files=None, extra=None, versions=None, kube=(1, 33), **sections):
    """node_cgroup_driver's one finding for a node with these files (path -> text, None for
    absent), runtime files and `--version` outputs."""
    named = {"runtime_files": runtime_files(extra or {}),
             "runtime_versions": runtime_versions(**(versions or {}))}
    f = facts(files=files, **named, **sections)
    out = run_check("node_cgroup_driver", node=context(f, settings=Settings(kube_version=kube)))
    assert len(out) == 1
    return out[0]


def message(finding) -> str:
    """What the operator reads in a failure: observed, why, fix."""
    return f"{finding.observed}\n{finding.why}\n{finding.fix}"


# --- containerd: versions, defaults, key paths ----------------------------------------------
def test_containerd_1_7_default_config_is_cgroupfs_and_kubelet_falls_back():
    """containerd 1.7's `config default` (config version 2) sets runc SystemdCgroup = false;
    containerd 1.x has no CRI RuntimeConfig, so kubelet 1.33 falls back to its own systemd."""
    out = judge({MAIN: fixture("containerd-1.7.2-config-default.toml")},
                versions={"containerd": CTD_1_7_2})
    assert not out.ok
    assert out.observed == "containerd uses cgroupfs, kubelet uses systemd"
    assert "is different from containerd cgroup driver" in out.why
    assert ('/etc/containerd/config.toml: plugins."io.containerd.grpc.v1.cri".containerd.'
            "runtimes.runc.options.SystemdCgroup = false") in out.why
    assert "containerd 1.7.2 does not implement RuntimeConfig" in out.why
    assert "falls back to its own cgroupDriver" in out.why
    assert out.fix.startswith('set SystemdCgroup = true in [plugins."io.containerd.grpc.v1.cri"'
                              '.containerd.runtimes.runc.options] of /etc/containerd/config.toml')


def test_containerd_2_2_default_imports_conf_d_and_its_systemd_setting():
    """containerd 2.2's `config default` (version 3) writes imports = ['/etc/containerd/conf.d/
    *.toml']; a conf.d file setting SystemdCgroup under plugins.'io.containerd.cri.v1.runtime'
    wins (later files override key by key). containerd 2.x answers RuntimeConfig, so kubelet
    1.33 takes systemd from it even though its config says nothing."""
    kubelet = fixture("kubeadm-kubelet-config.yaml").replace("cgroupDriver: systemd\n", "")
    out = judge({MAIN: fixture("containerd-2.2.1-ubuntu-config-default.toml"), KUBELET: kubelet},
                {"/etc/containerd/conf.d/10-systemd.toml": SYSTEMD_V3},
                {"containerd": CTD_2_2_1})
    assert out.ok, message(out)
    assert out.observed == ("containerd uses systemd, kubelet uses systemd (told by containerd "
                            "over CRI)")
    assert ("/etc/containerd/conf.d/10-systemd.toml: plugins.\"io.containerd.cri.v1.runtime\"."
            "containerd.runtimes.runc.options.SystemdCgroup = true") in out.evidence
    assert "kubelet 1.33 asks containerd 2.2.1 for the driver over CRI" in out.note
    assert "beta, on by default since 1.31" in out.note
    assert "kubelet's own cgroupDriver is ignored" in out.note


def test_containerd_conf_d_is_read_only_through_imports():
    """containerd reads only the files `imports` names: a conf.d file next to containerd 1.7's
    default config (imports = []) is never read, whatever it says."""
    out = judge({MAIN: fixture("containerd-1.7.2-config-default.toml")},
                {"/etc/containerd/conf.d/10-systemd.toml": SYSTEMD_V2},
                {"containerd": CTD_1_7_2})
    assert not out.ok and out.observed.startswith("containerd uses cgroupfs")
    assert ("/etc/containerd/conf.d/10-systemd.toml is not imported by /etc/containerd/"
            "config.toml: containerd does not read it") in out.why


def test_containerd_imports_relative_to_the_main_config_globbed_in_name_order():
    """containerd's resolveImports joins a relative import to the importing file's directory
    and globs a pattern with *, matches in name order; later files override earlier ones
    (containerd 2.x merges plugin tables key by key). An import outside what the facts hold
    is reported as not read."""
    main = ('version = 3\nimports = ["conf.d/*.toml", "/opt/site/containerd.toml"]\n'
            + SYSTEMD_V3.removeprefix("version = 3\n"))
    later = SYSTEMD_V3.replace("true", "false")
    out = judge({MAIN: main}, {"/etc/containerd/conf.d/20-off.toml": later,
                               "/etc/containerd/conf.d/10-on.toml": SYSTEMD_V3},
                {"containerd": CTD_2_1_4})
    assert not out.ok and out.observed.startswith("containerd uses cgroupfs")
    assert "/etc/containerd/conf.d/20-off.toml: plugins.\"io.containerd.cri.v1.runtime\"" in out.why
    assert ("import /opt/site/containerd.toml not read (the facts hold /etc/containerd/*.toml "
            "and /etc/containerd/conf.d/*.toml only)") in out.why
    assert ("containerd config files: /etc/containerd/config.toml, /etc/containerd/conf.d/"
            "10-on.toml, /etc/containerd/conf.d/20-off.toml") in out.evidence


def test_containerd_missing_import_stops_containerd():
    """A plain (non-glob) import that does not exist makes containerd exit ("open ...: no
    such file or directory")."""
    out = judge({MAIN: 'version = 2\nimports = ["extra.toml"]\n'}, {},
                {"containerd": CTD_1_7_27})
    assert not out.ok
    assert out.observed == ("containerd does not start: import /etc/containerd/extra.toml does "
                            "not exist")
    assert "no such file or directory" in out.why


def test_containerd_1x_import_replaces_the_whole_cri_table_2x_merges_it():
    """containerd 1.x merges an imported file plugin table by plugin table: an import holding
    only the registry config_path of containerd's docs (docs/cri/registry.md, v1.7) drops the
    main file's SystemdCgroup = true. containerd 2.x merges key by key and keeps it."""
    main = SYSTEMD_V2.replace("version = 2\n", 'version = 2\nimports = ["/etc/containerd/'
                              'conf.d/*.toml"]\n')
    registry = ('version = 2\n[plugins."io.containerd.grpc.v1.cri".registry]\n'
                '   config_path = "/etc/containerd/certs.d"\n')
    files = {MAIN: main}, {"/etc/containerd/conf.d/registry.toml": registry}
    old = judge(*files, {"containerd": CTD_1_7_27})
    assert not old.ok and old.observed.startswith("containerd uses cgroupfs")
    assert ("/etc/containerd/conf.d/registry.toml replaces the whole [plugins.\"io.containerd."
            "grpc.v1.cri\"] table of /etc/containerd/config.toml") in old.why
    new = judge(*files, {"containerd": CTD_2_1_4})
    assert new.ok, message(new)
    assert ("/etc/containerd/config.toml: plugins.\"io.containerd.grpc.v1.cri\".containerd."
            "runtimes.runc.options.SystemdCgroup = true") in new.evidence


def test_containerd_version_2_key_in_a_version_3_file():
    """containerd 2.0-2.2 migrate version 2 keys only when the merged config's version is
    below 3: the v2 path in a version 3 file is ignored (default false). containerd 2.3+
    migrates each file as it loads it (plugins/cri/runtime configMigration runs for every
    version below 4), so the same file gives systemd there."""
    v3_with_v2_key = SYSTEMD_V2.replace("version = 2", "version = 3")
    out = judge({MAIN: v3_with_v2_key}, versions={"containerd": CTD_2_1_4})
    assert not out.ok and out.observed.startswith("containerd uses cgroupfs")
    assert ("/etc/containerd/config.toml: plugins.\"io.containerd.grpc.v1.cri\".containerd "
            "settings are ignored") in out.why
    assert "SystemdCgroup not set (containerd's default: false, cgroupfs)" in out.why
    assert out.fix.startswith('set SystemdCgroup = true in [plugins."io.containerd.cri.v1.runtime"'
                              '.containerd.runtimes.runc.options]')
    assert judge({MAIN: v3_with_v2_key}, versions={"containerd": CTD_2_3_0}).ok


def test_containerd_config_without_version_on_containerd_2():
    """A file without `version` is version 1 (plugin ids such as `cri`). containerd 2.0-2.2
    load it as the running version 3 with only the ids renamed (server/config LoadConfig's
    `case 0, 1`), and migrate CRI runtime keys only for a merged version below 3: its
    SystemdCgroup is not read. containerd 2.3 migrates each file on load and reads it."""
    v1 = "[plugins.cri.containerd.runtimes.runc.options]\n  SystemdCgroup = true\n"
    out = judge({MAIN: v1}, versions={"containerd": CTD_2_1_4})
    assert not out.ok and out.observed.startswith("containerd uses cgroupfs")
    assert ("/etc/containerd/config.toml: plugins.cri.containerd settings are ignored: a file "
            "without `version = 2` is taken as version 3") in out.why
    new = judge({MAIN: v1}, versions={"containerd": CTD_2_3_0})
    assert new.ok and ("/etc/containerd/config.toml: plugins.cri.containerd.runtimes.runc."
                       "options.SystemdCgroup = true") in new.evidence


def test_containerd_version_2_config_on_containerd_2_is_migrated():
    """A version 2 config (containerd 1.x's) is migrated by containerd 2.x to
    io.containerd.cri.v1.runtime: its SystemdCgroup = true still counts."""
    out = judge({MAIN: SYSTEMD_V2}, versions={"containerd": CTD_2_0_0})
    assert out.ok, message(out)
    assert out.observed.endswith("(told by containerd over CRI)")


def test_containerd_config_versions_beyond_what_the_binary_reads():
    """containerd 1.7.17+ refuses config version 3 ("unsupported config version"); containerd
    2.0-2.2 refuse version 4, which containerd 2.3's `config default` writes."""
    out = judge({MAIN: SYSTEMD_V3}, versions={"containerd": CTD_1_7_27})
    assert not out.ok and out.observed == "containerd does not start: config version 3"
    assert "containerd config version `3` is not supported, the max version is `2`" in out.why
    v4 = fixture("containerd-2.3-config-default.toml")
    out = judge({MAIN: v4}, versions={"containerd": CTD_2_2_1})
    assert not out.ok
    assert out.observed == ("containerd does not start: config version 4 in "
                            "/etc/containerd/config.toml")
    assert "equal to or less than `3`, got `4`" in out.why
    out = judge({MAIN: v4}, versions={"containerd": CTD_2_3_0})
    assert not out.ok and out.observed.startswith("containerd uses cgroupfs")
    assert ("/etc/containerd/config.toml: plugins.\"io.containerd.cri.v1.runtime\".containerd."
            "runtimes.runc.options.SystemdCgroup = false") in out.why


def test_containerd_version_unknown_is_read_by_the_config_version():
    """Without `containerd --version`, a version 3 file can only be containerd 2.x's (1.x
    refuses it), which answers RuntimeConfig; a version 2 file is read with 1.x rules and
    kubelet's own setting is assumed."""
    out = judge({MAIN: SYSTEMD_V3}, kube=(1, 34))
    assert out.ok and out.observed.endswith("(told by containerd over CRI)")
    out = judge({MAIN: SYSTEMD_V2.replace("true", "false")}, kube=(1, 34))
    assert not out.ok and out.observed == "containerd uses cgroupfs, kubelet uses systemd"
    assert "containerd version unknown (no `containerd --version` on the node" in out.why
    assert ": kubelet's own cgroupDriver is taken as the one it uses" in out.why


def test_containerd_default_runtime_nvidia_is_the_one_read():
    """The CRI runs pods with default_runtime_name's runtime: NVIDIA's device-plugin README
    (v0.14.5) adds an nvidia runtime without SystemdCgroup, so pods get cgroupfs even though
    runc has SystemdCgroup = true. nvidia-ctk copies runc's options, SystemdCgroup included."""
    nvidia = fixture("nvidia-device-plugin-v0.14.5-containerd.toml")
    runc_on = ('\n        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]\n'
               '          runtime_type = "io.containerd.runc.v2"\n'
               '          [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]\n'
               "            SystemdCgroup = true\n")
    out = judge({MAIN: nvidia + runc_on}, versions={"containerd": CTD_1_7_27})
    assert not out.ok and out.observed == "containerd uses cgroupfs, kubelet uses systemd"
    assert ('/etc/containerd/config.toml: plugins."io.containerd.grpc.v1.cri".containerd.'
            'default_runtime_name = "nvidia"') in out.why
    assert ("containerd.runtimes.nvidia.options.SystemdCgroup not set (containerd's default: "
            "false, cgroupfs)") in out.why
    assert "containerd.runtimes.nvidia.options] of /etc/containerd/config.toml" in out.fix
    ctk = nvidia.replace('BinaryName = "/usr/bin/nvidia-container-runtime"\n',
                         'BinaryName = "/usr/bin/nvidia-container-runtime"\n'
                         "            SystemdCgroup = true\n")
    assert judge({MAIN: ctk + runc_on}, versions={"containerd": CTD_1_7_27}).ok


def test_containerd_default_runtime_without_a_runtime_table():
    """containerd refuses a CRI config whose default_runtime_name names no runtime."""
    main = ('version = 2\n[plugins."io.containerd.grpc.v1.cri".containerd]\n'
            '  default_runtime_name = "nvidia"\n')
    out = judge({MAIN: main}, versions={"containerd": CTD_1_7_27})
    assert not out.ok
    assert out.observed.startswith("containerd's CRI plugin does not load")
    assert "no corresponding runtime configured in `containerd.runtimes`" in out.why


def test_containerd_cri_disabled_by_dockers_containerd_io_package():
    """Docker's containerd.io deb/rpm ships /etc/containerd/config.toml with disabled_plugins =
    ["cri"] (a version 1 file: plugin ids; containerd 2.x renames cri to
    io.containerd.grpc.v1.cri). kubelet then gets "unknown service runtime.v1.RuntimeService"."""
    for version in (CTD_1_7_27, CTD_2_1_4, None):
        out = judge({MAIN: fixture("docker-containerd.io-config.toml")},
                    versions={"containerd": version} if version else {})
        assert not out.ok
        assert out.observed == ("CRI disabled: kubelet cannot use this containerd "
                                '(disabled_plugins = ["cri"] in /etc/containerd/config.toml)')
        assert "unknown service runtime.v1.RuntimeService" in out.why
        assert "cgroupfs" not in out.observed
        assert out.fix.startswith('remove "cri" from disabled_plugins in /etc/containerd/')


def test_containerd_short_plugin_name_in_a_version_2_config():
    """A version 2 config wants full plugin URIs: disabled_plugins = ["cri"] stops containerd
    ("invalid disabled plugin URI")."""
    out = judge({MAIN: 'version = 2\ndisabled_plugins = ["cri"]\n'},
                versions={"containerd": CTD_2_1_4})
    assert not out.ok
    assert out.observed == 'containerd does not start: plugin name "cri" in disabled_plugins'
    assert 'invalid disabled plugin URI \\"cri\\" expect io.containerd.x.vx' in out.why


def test_containerd_systemd_cgroup_on_the_cri_table_breaks_containerd_1x():
    """containerd 1.x: systemd_cgroup = true on the CRI table only works for the legacy
    io.containerd.runtime.v1.linux; with runc v2 the CRI plugin does not load."""
    main = 'version = 2\n[plugins."io.containerd.grpc.v1.cri"]\n  systemd_cgroup = true\n'
    out = judge({MAIN: main}, versions={"containerd": CTD_1_7_27})
    assert not out.ok and out.observed.startswith("containerd's CRI plugin does not load")
    assert "only works for runtime io.containerd.runtime.v1.linux" in out.why


# --- Docker: daemon.json and dockerd's systemd unit -------------------------------------------
def docker(files=None, extra=None, **versions):
    return judge({FLAGS: DOCKER_FLAGS, **(files or {})}, extra, versions)


def test_docker_exec_opts_parsed_as_moby_does():
    """moby daemon/config: key trimmed and case-insensitive, value trimmed. dockerd 28+ takes
    the last native.cgroupdriver (a map), older dockerd the first; unknown version with two
    different values cannot be decided."""
    spaced = json.dumps({"exec-opts": [" Native.CgroupDriver = systemd "]})
    out = docker({"/etc/docker/daemon.json": spaced}, dockerd="Docker version 24.0.7, build 311b9ff")
    assert out.ok, message(out)
    two = json.dumps({"exec-opts": ["native.cgroupdriver=cgroupfs", "native.cgroupdriver=systemd"]})
    new = docker({"/etc/docker/daemon.json": two}, dockerd="Docker version 28.0.1, build 068a01e")
    assert new.ok and "(the last of 2: dockerd 28+)" in " ".join(new.evidence)
    old = docker({"/etc/docker/daemon.json": two}, dockerd="Docker version 20.10.24, build 297e128")
    assert not old.ok and old.observed.startswith("docker uses cgroupfs")
    unknown = docker({"/etc/docker/daemon.json": two})
    assert not unknown.ok
    assert unknown.observed.startswith("native.cgroupdriver is given more than once")
    bad = json.dumps({"exec-opts": ["native.cgroupdriver"]})
    out = docker({"/etc/docker/daemon.json": bad}, dockerd="Docker version 28.0.1, build 068a01e")
    assert not out.ok and out.observed.startswith("dockerd does not start")
    assert "must be formatted 'opt=value'" in out.why


def test_docker_daemon_json_with_a_byte_order_mark():
    """moby (23+) decodes daemon.json by its byte order mark (Notepad writes one); dockerd
    20.10 fails on it ("invalid character 'ï' looking for beginning of value")."""
    with_bom = b"\xef\xbb\xbf" + (json.dumps(DAEMON_JSON, indent=2) + "\n").encode()
    files = {FLAGS: DOCKER_FLAGS, "/etc/docker/daemon.json": None}
    section = base64.b64encode(with_bom).decode()
    out = judge(files, versions={"dockerd": "Docker version 24.0.7, build 311b9ff"},
                **{"file /etc/docker/daemon.json": section})
    assert out.ok, message(out)
    assert "UTF-8 byte order mark, which dockerd 23+ accepts" in " ".join(out.evidence)
    out = judge(files, versions={"dockerd": "Docker version 20.10.24, build 297e128"},
                **{"file /etc/docker/daemon.json": section})
    assert not out.ok and "begins with a byte order mark" in out.observed
    assert "invalid character 'ï' looking for beginning of value" in out.why
    utf16 = base64.b64encode(b"\xff\xfe" + json.dumps(DAEMON_JSON).encode("utf-16-le")).decode()
    assert judge(files, versions={"dockerd": "Docker version 26.1.3, build b72abbb"},
                 **{"file /etc/docker/daemon.json": utf16}).ok


def test_docker_flag_from_kubesprays_drop_in_environment():
    """kubespray's docker.service runs `dockerd $DOCKER_OPTS ...` and its docker-options.conf
    drop-in sets DOCKER_OPTS (with --exec-opt native.cgroupdriver=...) in Environment=, over
    backslash-continued lines: systemd joins them and splits $DOCKER_OPTS into words."""
    units = {"/etc/systemd/system/docker.service": fixture("kubespray-docker.service"),
             "/etc/systemd/system/docker.service.d/docker-options.conf":
                 fixture("kubespray-docker-options.conf"),
             "/lib/systemd/system/docker.service": fixture("moby-docker.service")}
    out = docker({}, units, dockerd="Docker version 20.10.24, build 297e128")
    assert out.ok, message(out)
    assert ("/etc/systemd/system/docker.service.d/docker-options.conf: $DOCKER_OPTS (in "
            "dockerd's ExecStart) --exec-opt native.cgroupdriver=systemd") in out.evidence
    units["/etc/systemd/system/docker.service.d/docker-options.conf"] = fixture(
        "kubespray-docker-options.conf").replace("=systemd", "=cgroupfs")
    out = docker({}, units, dockerd="Docker version 20.10.24, build 297e128")
    assert not out.ok and out.observed.startswith("docker uses cgroupfs, kubelet uses systemd")
    assert out.fix.startswith("set --exec-opt native.cgroupdriver=systemd in /etc/systemd/system/"
                              "docker.service.d/docker-options.conf; systemctl daemon-reload")


def test_docker_flag_and_daemon_json_both_set_exec_opts():
    """moby refuses to start when a directive is given as a flag and in daemon.json, even
    with equal values ("the following directives are specified both as a flag and in the
    configuration file: exec-opts: ..."): here --exec-opt added to the vendor unit's
    ExecStart as install guides show, and field report 03's daemon.json."""
    unit = fixture("moby-docker.service").replace(
        "ExecStart=/usr/bin/dockerd -H fd://",
        "ExecStart=/usr/bin/dockerd --exec-opt native.cgroupdriver=systemd -H fd://")
    out = docker({"/etc/docker/daemon.json": json.dumps(DAEMON_JSON, indent=2)},
                 {"/usr/lib/systemd/system/docker.service": unit})
    assert not out.ok
    assert out.observed == ("dockerd does not start: exec-opts is set both by --exec-opt in "
                            "/usr/lib/systemd/system/docker.service and in /etc/docker/daemon.json")
    assert ("the following directives are specified both as a flag and in the configuration "
            "file: exec-opts: (from flag: [native.cgroupdriver=systemd], from file: "
            "[native.cgroupdriver=systemd])") in out.why


def test_docker_drop_in_must_reset_exec_start():
    """systemd drop-ins: ExecStart= accumulates, an empty ExecStart= resets it; two commands
    in a Type=notify service make systemd refuse the unit. Drop-ins from every unit
    directory apply in name order, /etc hiding a same-named one in /usr/lib."""
    vendor = {"/lib/systemd/system/docker.service": fixture("moby-docker.service")}
    no_reset = "[Service]\nExecStart=/usr/bin/dockerd --exec-opt native.cgroupdriver=systemd\n"
    out = docker({}, {**vendor, "/etc/systemd/system/docker.service.d/cgroup.conf": no_reset})
    assert not out.ok
    assert out.observed.startswith("docker.service does not start: 2 ExecStart= lines")
    assert "more than one ExecStart= setting" in out.why
    reset = "[Service]\nExecStart=\n" + no_reset.removeprefix("[Service]\n")
    hidden = "[Service]\nExecStart=\nExecStart=/usr/bin/dockerd --exec-opt native.cgroupdriver=cgroupfs\n"
    out = docker({}, {**vendor,
                      "/usr/lib/systemd/system/docker.service.d/cgroup.conf": hidden,
                      "/etc/systemd/system/docker.service.d/cgroup.conf": reset})
    assert out.ok, message(out)
    assert ("/etc/systemd/system/docker.service.d/cgroup.conf: ExecStart --exec-opt "
            "native.cgroupdriver=systemd") in out.evidence


# --- kubelet: KubeletCgroupDriverFromCRI --------------------------------------------------
def kubelet_without_driver():
    """kubeadm's config.yaml without cgroupDriver (as kubeadm before 1.22 wrote it)."""
    return fixture("kubeadm-kubelet-config.yaml").replace("cgroupDriver: systemd\n", "")


def test_kubelet_takes_the_driver_over_cri_from_1_31():
    """KubeletCgroupDriverFromCRI: alpha (off) 1.28-1.30, beta (on) 1.31, GA 1.34
    (kubernetes/website feature-gates/KubeletCgroupDriverFromCRI.md). With a runtime that
    answers RuntimeConfig (containerd 2.0+), kubelet ignores its own cgroupDriver."""
    files = {MAIN: SYSTEMD_V3, KUBELET: kubelet_without_driver()}
    versions = {"containerd": CTD_2_0_0}
    out = judge(files, versions=versions, kube=(1, 31))
    assert out.ok and out.observed.endswith("kubelet uses systemd (told by containerd over CRI)")
    assert "kubelet 1.31 asks containerd 2.0.0 for the driver over CRI" in out.note
    out = judge(files, versions=versions, kube=(1, 34))
    assert out.ok and "GA since 1.34" in out.note
    out = judge(files, versions=versions, kube=(1, 30))
    assert not out.ok and out.observed == "containerd uses systemd, kubelet uses cgroupfs"
    assert "is alpha and off" in out.why
    assert "cgroupDriver not set (kubelet default cgroupfs)" in out.why
    assert "set cgroupDriver: systemd in /var/lib/kubelet/config.yaml" in out.fix


def test_kubelet_cri_gate_off_or_runtime_too_old():
    """The gate can be switched off before GA (kube_features.go: GA with LockToDefault in
    1.34, so kubelet refuses false from then on); containerd 1.x has no RuntimeConfig
    (kubelet falls back to its own configuration); CRI-O answers it from 1.28."""
    off = kubelet_without_driver() + "featureGates:\n  KubeletCgroupDriverFromCRI: false\n"
    out = judge({MAIN: SYSTEMD_V3, KUBELET: off}, versions={"containerd": CTD_2_0_0},
                kube=(1, 32))
    assert not out.ok and "(KubeletCgroupDriverFromCRI=false)" in out.why
    out = judge({MAIN: SYSTEMD_V3, KUBELET: off}, versions={"containerd": CTD_2_0_0},
                kube=(1, 34))
    assert not out.ok and out.observed == "kubelet does not start: KubeletCgroupDriverFromCRI=false"
    assert "feature is locked to true" in out.why
    out = judge({MAIN: SYSTEMD_V2, KUBELET: kubelet_without_driver()},
                versions={"containerd": CTD_1_7_27}, kube=(1, 33))
    assert not out.ok and out.observed == "containerd uses systemd, kubelet uses cgroupfs"
    assert "containerd 1.7.27 does not implement RuntimeConfig (containerd 2.0+ does)" in out.why
    crio = {FLAGS: 'KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///var/run/crio/'
                   'crio.sock"\n', KUBELET: kubelet_without_driver(), MAIN: None}
    out = judge(crio, versions={"crio": "crio version 1.30.4"}, kube=(1, 31))
    assert out.ok and out.observed.endswith("(told by cri-o over CRI)")


def test_kubelet_cgroup_driver_flag_wins_over_the_config():
    """kubeadm before 1.22 wrote --cgroup-driver into kubeadm-flags.env; a flag overrides the
    config file."""
    flags = ('KUBELET_KUBEADM_ARGS="--cgroup-driver=cgroupfs --network-plugin=cni '
             '--pod-infra-container-image=k8s.gcr.io/pause:3.2"\n')
    out = judge({FLAGS: flags, MAIN: SYSTEMD_V2}, kube=(1, 20))
    assert not out.ok and out.observed == "containerd uses systemd, kubelet uses cgroupfs"
    assert "drop --cgroup-driver from /var/lib/kubelet/kubeadm-flags.env" in out.fix


# --- facts ----------------------------------------------------------------------------------
def test_runtime_facts_parse_files_versions_and_bytes():
    doc = facts(runtime_files=runtime_files({"/etc/containerd/conf.d/a.toml": "x = 1\n"})
                + "\n/etc/default/docker !unreadable\n!truncated",
                runtime_versions=runtime_versions(containerd=CTD_2_0_0,
                                                  dockerd="Docker version 28.0.1, build 068a01e",
                                                  cri_dockerd="cri-dockerd 0.3.17 (483e3b6)"))
    assert doc.runtime_files["/etc/containerd/conf.d/a.toml"].text == "x = 1\n"
    assert doc.runtime_files["/etc/default/docker"].error.startswith("unreadable")
    assert "!truncated" in doc.runtime_files
    assert doc.runtime_versions == {"containerd": (2, 0, 0), "dockerd": (28, 0, 1),
                                    "cri-dockerd": (0, 3, 17)}
    assert doc.file_bytes("/etc/containerd/conf.d/a.toml") == b"x = 1\n"
    assert doc.file_bytes("/etc/fstab").startswith(b"UUID=")
    assert doc.file_bytes("/nowhere") is None


def test_gather_script_prints_the_runtime_sections():
    """The real script on this machine: both sections present, every line well formed."""
    token = facts_module.new_token()
    line, _ = facts_module.command(host(), token, 1, [])
    out = subprocess.run(line, shell=True, capture_output=True, text=True, timeout=60)
    f = parse("local", token, out.stdout, out.stderr, out.returncode)
    assert "runtime-files" in f.sections and "runtime-versions" in f.sections
    for line in f.sections["runtime-files"].splitlines():
        assert line == "!truncated" or len(line.split(" ")) == 2, line


def test_gather_script_blanks_secrets_in_runtime_files():
    """Proxy credentials (kubespray's http-proxy.conf drop-in shape) and containerd registry
    auth values do not leave the node; the rest of the line does."""
    masks = "\n".join(line for line in facts_module.SCRIPT.splitlines()
                      if line.startswith("mask="))
    sample = ('[Service]\nEnvironment="HTTP_PROXY=http://bob:s3cr3t@proxy:3128" '
              '"NO_PROXY=localhost"\n'
              '[plugins."io.containerd.grpc.v1.cri".registry.configs."r.example".auth]\n'
              '  username = "bob"\n  password = "s3cr3t"\n  auth = "Ym9iOnMzY3IzdA=="\n')
    out = subprocess.run(["sh", "-c", masks + '\nprintf %s "$1" | sed -E "$mask"', "-", sample],
                         capture_output=True, text=True, timeout=10, check=True).stdout
    assert "s3cr3t" not in out and "Ym9iOnMzY3IzdA" not in out
    assert 'Environment="HTTP_PROXY=http://***@proxy:3128" "NO_PROXY=localhost"' in out
    assert '  password = "***"' in out and '  username = "bob"' in out
