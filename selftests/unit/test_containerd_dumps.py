"""The containerd model against what real containerd builds say of the same files.

Every case of containerd_cases.CASES was run through `containerd --config
/etc/containerd/config.toml config dump` of containerd v2.0.14, v2.1.9, v2.2.10 and v2.3.7
(built by lab.build from the Go module proxy); the dumps are fixtures/containerd-dump/
(README.md there). The reference code, as read in those releases:
- cmd/containerd/server/config/config.go: LoadConfig (2.0-2.2: files merged in import order,
  a file without version migrated to the version read so far, `ValidateVersion` on the merged
  config naming the last file read) and LoadConfigWithPlugins (2.3: every file migrated, its
  plugins' ConfigMigration included, before mergeConfig);
- cmd/containerd/command/config.go dumpConfig (2.0-2.2: the plugins' ConfigMigration once, on
  the merged config, when its version is below 3);
- plugins/cri/runtime/plugin.go configMigration/migrateConfig (io.containerd.grpc.v1.cri keys
  copied to io.containerd.cri.v1.runtime only where the key is missing, `containerd.runtimes`
  as one key);
- internal/cri/server/runtime_config_linux.go getCgroupDriver (what RuntimeConfig tells
  kubelet) and internal/cri/config/config.go GenerateRuntimeOptions (a runtime without an
  options table says nothing).

The live test at the end runs the cached builds again (root, skipped when not built) and
checks the fixtures are still what they print and the model still agrees.
"""

from __future__ import annotations

import os

import pytest

from kubeaccept.model.settings import Settings
from lab import build

from . import containerd_cases as cases
from .factory import context, facts, runtime_files, runtime_versions
from .factory import judge as run_check

MAIN = cases.MAIN
VERSIONS = {m: build.COMPONENTS[f"containerd-{m}"]["version"] for m in cases.MINORS}
KUBELET_NO_DRIVER = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"


def texts(case: cases.Case) -> dict[str, str]:
    try:
        return case.texts()
    except FileNotFoundError as exc:
        pytest.skip(f"real-world file absent: {exc.filename}")


def recorded(case: str, minor: str) -> tuple[str | None, str | None]:
    """(trimmed dump, error) as recorded for containerd <minor>."""
    path = cases.fixture(case, minor)
    if path.is_file():
        return path.read_text(), None
    return None, path.with_suffix(".err").read_text()


def finding(files: dict[str, str], minor: str, kubelet: str | None = None, kube=(1, 33)):
    node = facts(files={MAIN: files.get(MAIN), **({"/var/lib/kubelet/config.yaml": kubelet}
                                                   if kubelet else {})},
                 runtime_files=runtime_files(files),
                 runtime_versions=runtime_versions(
                     containerd=cases.VERSION_LINE.format(VERSIONS[minor])))
    out = run_check("node_cgroup_driver", node=context(node, settings=Settings(kube_version=kube)))
    assert len(out) == 1
    return out[0]


@pytest.mark.parametrize("minor", cases.MINORS)
@pytest.mark.parametrize("case", [c.name for c in cases.CASES])
def test_every_case_has_a_dump_of_every_build(case, minor):
    path = cases.fixture(case, minor)
    assert path.is_file() or path.with_suffix(".err").is_file(), f"no dump {path}"


@pytest.mark.parametrize("minor", cases.MINORS)
@pytest.mark.parametrize("case", [c.name for c in cases.CASES])
def test_model_agrees_with_the_recorded_dump(case, minor):
    """The model's driver for the default runtime's shim and for RuntimeConfig (or its
    'does not start') equals what containerd <minor>'s `config dump` printed."""
    files = texts(cases.BY_NAME[case])
    dumped, error = recorded(case, minor)
    ctd = cases.model(files, VERSIONS[minor])
    assert cases.disagreement(ctd, dumped, error) == ""


def test_v2_drop_in_over_a_v3_main_leaves_runc_on_cgroupfs_before_2_3():
    """containerd 2.0-2.2 merge first: the drop-in's `version = 2` makes the merged config
    version 2, so the CRI runtime plugin migrates once, but the main file already set
    io.containerd.cri.v1.runtime's `containerd.runtimes`, and migrateConfig copies only keys
    still missing: the drop-in's runtimes table (SystemdCgroup = true) is dropped. 2.3
    migrates the drop-in alone first (LoadConfigWithPlugins), then merges it: systemd."""
    case = cases.BY_NAME["v3-main-v2-drop-in"]
    for minor in ("2.0", "2.1", "2.2"):
        assert cases.drivers(recorded(case.name, minor)[0])["shim"] == "cgroupfs"
        out = finding(case.files, minor)
        assert not out.ok and out.observed.startswith("containerd uses cgroupfs")
        assert (f'{cases.DROP_IN}: plugins."io.containerd.grpc.v1.cri".containerd.{{runtimes}} '
                "ignored: containerd 2.0-2.2 migrate version 2 settings once, on the merged "
                "config, and only into keys still missing, and plugins.\"io.containerd.cri.v1."
                "runtime\".containerd already has them (from /etc/containerd/config.toml)"
                ) in out.why
        assert out.fix.startswith('set SystemdCgroup = true in [plugins."io.containerd.cri.v1.'
                                  'runtime".containerd.runtimes.runc.options] of '
                                  "/etc/containerd/config.toml")
    assert cases.drivers(recorded(case.name, "2.3")[0])["shim"] == "systemd"
    out = finding(case.files, "2.3")
    assert out.ok, out.why
    assert (f'{cases.DROP_IN}: plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.'
            "options.SystemdCgroup = true") in out.evidence


def test_the_same_drop_in_migrates_where_the_main_file_has_no_runtimes():
    """The contrast: without a runtimes table in the main file there is nothing to keep, and
    2.0-2.2 migrate the drop-in's runtimes (each build's dump: systemd)."""
    case = cases.BY_NAME["v3-main-without-runtimes-v2-drop-in"]
    for minor in cases.MINORS:
        assert cases.drivers(recorded(case.name, minor)[0])["shim"] == "systemd"
        assert finding(case.files, minor).ok


def test_a_v3_drop_in_after_a_v2_main_drops_the_main_files_setting_before_2_3():
    """The reverse: the last file's version 3 becomes the merged version, so 2.0-2.2 do not
    migrate the main file's version 2 SystemdCgroup = true at all."""
    case = cases.BY_NAME["v2-main-v3-drop-in"]
    out = finding(case.files, "2.2")
    assert not out.ok and out.observed.startswith("containerd uses cgroupfs")
    assert ('/etc/containerd/config.toml: plugins."io.containerd.grpc.v1.cri".containerd '
            "settings are ignored: the merged config is version 3 (the last file with a "
            "version sets it)") in out.why
    assert finding(case.files, "2.3").ok


def test_upgrade_with_nvidia_ctks_old_drop_in():
    """nvidia-ctk's version 2 conf.d/99-nvidia.toml (written for containerd 1.7.34) under
    containerd 2.2.7's `config default`: 2.2 keeps the main file's default_runtime_name "runc"
    and runtimes, so neither the nvidia runtime nor its SystemdCgroup = true arrive; 2.3
    migrates the drop-in first and runs nvidia with systemd."""
    case = cases.BY_NAME["2.2.7-default-with-1.7.34-nvidia-drop-in"]
    files = texts(case)
    assert cases.drivers(recorded(case.name, "2.2")[0])["default_runtime"] == "runc"
    assert cases.drivers(recorded(case.name, "2.3")[0])["default_runtime"] == "nvidia"
    out = finding(files, "2.2")
    assert not out.ok and out.observed.startswith("containerd uses cgroupfs")
    assert ('/etc/containerd/conf.d/99-nvidia.toml: plugins."io.containerd.grpc.v1.cri".'
            "containerd.{default_runtime_name, ignore_blockio_not_enabled_errors, "
            "ignore_rdt_not_enabled_errors, runtimes} ignored") in out.why
    out = finding(files, "2.3")
    assert out.ok, out.why
    assert any('/etc/containerd/conf.d/99-nvidia.toml: plugins."io.containerd.grpc.v1.cri".'
               'containerd.default_runtime_name = "nvidia"' in line for line in out.evidence)


def test_containerd_reports_systemd_while_the_shim_runs_cgroupfs():
    """RuntimeConfig asks the default runtime first, but a runtime without an options table
    says nothing (GenerateRuntimeOptions returns nil), so the answer comes from runc's
    SystemdCgroup = true while pods run crun's shim with no options: cgroupfs. Every build's
    dump shows crun without options and runc's SystemdCgroup = true. kubelet 1.33 takes
    systemd over CRI; the finding names both sides and fixes the one pods use."""
    case = cases.BY_NAME["default-runtime-without-options"]
    for minor in cases.MINORS:
        said = cases.drivers(recorded(case.name, minor)[0])
        assert (said["default_runtime"], said["shim"], said["reported"]) == (
            "crun", "cgroupfs", "systemd")
    out = finding(case.files, "2.2", kubelet=KUBELET_NO_DRIVER)
    assert not out.ok
    assert out.observed == ("containerd's default runtime runs cgroupfs (the shim side), "
                            "containerd tells kubelet systemd over CRI (the RuntimeConfig "
                            "side), kubelet uses systemd")
    assert ('containerd answers RuntimeConfig with systemd: runtime "runc" (/etc/containerd/'
            'config.toml: plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.'
            "options.SystemdCgroup = true)") in out.evidence
    assert 'is different from containerd cgroup driver: \\"cgroupfs\\"' in out.why
    assert 'default_runtime_name = "crun"' in out.why
    assert out.fix.startswith('set SystemdCgroup = true in [plugins."io.containerd.cri.v1.'
                              'runtime".containerd.runtimes.crun.options] of '
                              "/etc/containerd/config.toml")
    # kubelet 1.30 (gate off) uses its own systemd: the same shim, the plain mismatch.
    out = finding(case.files, "2.2", kube=(1, 30))
    assert not out.ok and out.observed == "containerd uses cgroupfs, kubelet uses systemd"


def test_runc_always_answers_with_its_own_options():
    """containerd's runc runtime keeps its default options when a file gives it none (the
    dumps show SystemdCgroup = false), so RuntimeConfig answers cgroupfs, as the shim runs,
    even with another runtime set to systemd: no disagreement between the two sides."""
    for name in ("runc-without-options", "runc-without-options-crun-systemd"):
        for minor in cases.MINORS:
            said = cases.drivers(recorded(name, minor)[0])
            assert (said["shim"], said["reported"]) == ("cgroupfs", "cgroupfs")
        out = finding(cases.BY_NAME[name].files, "2.2", kubelet=KUBELET_NO_DRIVER)
        assert not out.ok
        assert out.observed == ("containerd uses cgroupfs, kubelet uses cgroupfs (told by "
                                "containerd over CRI)")


def test_config_version_is_the_last_files():
    """2.0-2.2 validate the merged version, the last file's: a version 4 main under a version
    3 drop-in loads; a version 4 drop-in last fails, the message naming the last file read; a
    file without version after a version 4 one crashes MigrateConfigTo (the recorded panic)."""
    assert finding(cases.BY_NAME["v4-main-v3-drop-in"].files, "2.2").ok
    assert finding(cases.BY_NAME["v3-main-v4-then-v3-drop-in"].files, "2.2").ok
    out = finding(cases.BY_NAME["v3-main-v4-drop-in"].files, "2.2")
    assert out.observed == f"containerd does not start: config version 4 in {cases.DROP_IN}"
    said = recorded("v3-main-v4-drop-in", "2.2")[1].strip().removeprefix("containerd: ")
    assert said.startswith(f"failed to load TOML from {cases.DROP_IN}: ") and said in out.why
    out = finding(cases.BY_NAME["v4-main-unversioned-drop-in"].files, "2.1")
    assert out.observed == (f"containerd does not start: it crashes reading {cases.DROP_IN} (no "
                            "`version`) after a version 4 file")
    panic = recorded("v4-main-unversioned-drop-in", "2.1")[1].splitlines()[0]
    assert panic in out.why
    assert finding(cases.BY_NAME["v4-main-unversioned-drop-in"].files, "2.3").ok


@pytest.mark.parametrize("minor", cases.MINORS)
def test_live_dump_agrees(minor):
    """Runs containerd <minor>'s cached build over every case (skipped when lab.build has not
    built it, or without root for the chroot): the trimmed dump is the committed fixture and
    the model agrees with it."""
    ctd = cases.binary(minor)
    if ctd is None:
        pytest.skip(f"containerd {minor} not built (python -m lab.build containerd-{minor})")
    if os.geteuid() != 0:
        pytest.skip("chroot needs root")
    ran = 0
    with cases.Chroot(ctd) as chroot:
        for case in cases.CASES:
            try:
                files = case.texts()
            except FileNotFoundError:
                continue
            rc, out = chroot.dump(files)
            dumped, error = ((cases.trim(out), None) if rc == 0 else
                             (None, cases.error_lines(out)))
            assert (dumped, error) == recorded(case.name, minor), case.name
            assert cases.disagreement(cases.model(files, VERSIONS[minor]), dumped, error) == "", \
                case.name
            ran += 1
    assert ran >= len([c for c in cases.CASES if not c.real])
