"""The sets of containerd files the containerd model is judged on, each as a node holds them
under /etc/containerd, and what real containerd builds' `containerd config dump` said of them
(fixtures/containerd-dump/, README.md there).

Regenerate the dumps with the builds lab.build caches (root: the files are put at their node
paths inside a chroot):  python -m selftests.unit.containerd_cases --write
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures" / "containerd-dump"
# Real files other programs wrote (origin: that directory's README.md); read, never copied.
REAL_WORLD = Path(os.environ.get("KUBEACCEPT_REAL_WORLD", ROOT.parent / "shared/real-world"))
MAIN = "/etc/containerd/config.toml"
DROP_IN = "/etc/containerd/conf.d/10-systemd.toml"
CRI_RUNTIME = "io.containerd.cri.v1.runtime"
# The containerd releases built by lab.build (component containerd-<minor>).
MINORS = ("2.0", "2.1", "2.2", "2.3")

V3_MAIN = ("version = 3\nimports = ['/etc/containerd/conf.d/*.toml']\n\n"
           "[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]\n"
           "  runtime_type = 'io.containerd.runc.v2'\n")
V3_MAIN_SYSTEMD = V3_MAIN + ("\n[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc"
                             ".options]\n  SystemdCgroup = true\n")
V3_MAIN_NO_RUNTIMES = ("version = 3\nimports = ['/etc/containerd/conf.d/*.toml']\n\n"
                       "[plugins.'io.containerd.cri.v1.runtime']\n  enable_cdi = true\n")
V2_SYSTEMD = ('version = 2\n\n[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc'
              '.options]\n  SystemdCgroup = true\n')
V2_MAIN_SYSTEMD = V2_SYSTEMD.replace("version = 2\n", 'version = 2\nimports = ["/etc/containerd'
                                     '/conf.d/*.toml"]\n')
V3_CDI = "version = 3\n\n[plugins.'io.containerd.cri.v1.runtime']\n  enable_cdi = true\n"
V1_SYSTEMD = "[plugins.cri.containerd.runtimes.runc.options]\n  SystemdCgroup = true\n"
RUNC_NO_OPTIONS = ("version = 3\n\n[plugins.'io.containerd.cri.v1.runtime'.containerd]\n"
                   "  default_runtime_name = 'runc'\n\n"
                   "[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]\n"
                   "  runtime_type = 'io.containerd.runc.v2'\n")
CRUN_SYSTEMD = RUNC_NO_OPTIONS + (
    "\n[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.crun]\n"
    "  runtime_type = 'io.containerd.runc.v2'\n\n"
    "[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.crun.options]\n"
    "  BinaryName = '/usr/bin/crun'\n  SystemdCgroup = true\n")
DEFAULT_NO_OPTIONS = (
    "version = 3\n\n[plugins.'io.containerd.cri.v1.runtime'.containerd]\n"
    "  default_runtime_name = 'crun'\n\n"
    "[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.crun]\n"
    "  runtime_type = 'io.containerd.runc.v2'\n\n"
    "[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]\n"
    "  SystemdCgroup = true\n")


@dataclass(frozen=True)
class Case:
    name: str
    what: str
    files: dict  # node path -> text, or "real:<path under REAL_WORLD/containerd>"

    @property
    def real(self) -> bool:
        return any(str(v).startswith("real:") for v in self.files.values())

    def texts(self) -> dict[str, str]:
        """node path -> text; raises FileNotFoundError when a real-world file is absent."""
        out = {}
        for path, text in self.files.items():
            if text.startswith("real:"):
                text = (REAL_WORLD / "containerd" / text.removeprefix("real:")).read_text()
            out[path] = text
        return out


NV = "nvidia-ctk/containerd-{}/etc/containerd/{}"
CASES = [
    Case("v3-main-v2-drop-in", "version 3 main with a runc runtime, version 2 conf.d drop-in "
         "setting SystemdCgroup = true", {MAIN: V3_MAIN, DROP_IN: V2_SYSTEMD}),
    Case("v3-main-without-runtimes-v2-drop-in", "version 3 main without a runtimes table, the "
         "same version 2 drop-in", {MAIN: V3_MAIN_NO_RUNTIMES, DROP_IN: V2_SYSTEMD}),
    Case("v3-main-unversioned-drop-in", "version 3 main with a runc runtime, the version 2 "
         "drop-in without its `version` line", {MAIN: V3_MAIN,
                                                DROP_IN: V2_SYSTEMD.replace("version = 2\n", "")}),
    Case("v2-main-v3-drop-in", "version 2 main setting SystemdCgroup = true, a version 3 "
         "drop-in setting only enable_cdi", {MAIN: V2_MAIN_SYSTEMD, DROP_IN: V3_CDI}),
    Case("v3-main-systemd-v2-drop-in-false", "version 3 main with SystemdCgroup = true, a "
         "version 2 drop-in setting it false",
         {MAIN: V3_MAIN_SYSTEMD, DROP_IN: V2_SYSTEMD.replace("true", "false")}),
    Case("v1-main", "a main file without `version` (version 1 plugin id `cri`)",
         {MAIN: V1_SYSTEMD}),
    Case("v2-main", "a version 2 main alone", {MAIN: V2_SYSTEMD}),
    Case("v3-file-with-v2-keys", "one file, `version = 3`, SystemdCgroup = true under the "
         "version 2 path", {MAIN: V2_SYSTEMD.replace("version = 2", "version = 3")}),
    Case("runc-without-options", "version 3, runc's runtime table without an options table",
         {MAIN: RUNC_NO_OPTIONS}),
    Case("runc-without-options-crun-systemd", "version 3, runc (the default) without options, "
         "a second runc-type handler crun with SystemdCgroup = true", {MAIN: CRUN_SYSTEMD}),
    Case("default-runtime-without-options", "version 3, default runtime crun (runc type) "
         "without an options table, runc with SystemdCgroup = true", {MAIN: DEFAULT_NO_OPTIONS}),
    Case("v4-main-v3-drop-in", "version 4 main with SystemdCgroup = true, a version 3 drop-in "
         "setting only enable_cdi", {MAIN: V3_MAIN_SYSTEMD.replace("version = 3", "version = 4"),
                                     DROP_IN: V3_CDI}),
    Case("v3-main-v4-drop-in", "version 3 main with SystemdCgroup = true, a version 4 drop-in "
         "setting only enable_cdi", {MAIN: V3_MAIN_SYSTEMD,
                                     DROP_IN: V3_CDI.replace("version = 3", "version = 4")}),
    Case("v3-main-v4-then-v3-drop-in", "version 3 main with SystemdCgroup = true, a version 4 "
         "drop-in, then a version 3 one", {MAIN: V3_MAIN_SYSTEMD,
                                          DROP_IN: V3_CDI.replace("version = 3", "version = 4"),
                                          "/etc/containerd/conf.d/20-cdi.toml": V3_CDI}),
    Case("v4-main-unversioned-drop-in", "version 4 main with SystemdCgroup = true, a drop-in "
         "without `version`", {MAIN: V3_MAIN_SYSTEMD.replace("version = 3", "version = 4"),
                               DROP_IN: V3_CDI.replace("version = 3\n", "")}),
    Case("nvidia-ctk-2.2.7", "nvidia-ctk's main file and conf.d/99-nvidia.toml for containerd "
         "2.2.7", {MAIN: "real:" + NV.format("2.2.7", "config.toml"),
                   "/etc/containerd/conf.d/99-nvidia.toml":
                       "real:" + NV.format("2.2.7", "conf.d/99-nvidia.toml")}),
    Case("nvidia-ctk-2.3.4", "nvidia-ctk's files for containerd 2.3.4 (config version 4)",
         {MAIN: "real:" + NV.format("2.3.4", "config.toml"),
          "/etc/containerd/conf.d/99-nvidia.toml":
              "real:" + NV.format("2.3.4", "conf.d/99-nvidia.toml")}),
    Case("nvidia-ctk-1.7.34", "nvidia-ctk's files for containerd 1.7.34 (version 2 main and "
         "drop-in), read by containerd 2", {MAIN: "real:" + NV.format("1.7.34", "config.toml"),
                                            "/etc/containerd/conf.d/99-nvidia.toml":
                                                "real:" + NV.format("1.7.34",
                                                                    "conf.d/99-nvidia.toml")}),
    Case("2.2.7-default-with-1.7.34-nvidia-drop-in", "an upgrade: containerd 2.2.7's `config "
         "default` as main, nvidia-ctk's version 2 drop-in from the containerd 1.7.34 days "
         "left in conf.d", {MAIN: "real:config-default/containerd-2.2.7.toml",
                            "/etc/containerd/conf.d/99-nvidia.toml":
                                "real:" + NV.format("1.7.34", "conf.d/99-nvidia.toml")}),
    Case("kubespray-2.2.1-systemd", "kubespray's config.toml for containerd 2.2.1, "
         "containerd_use_systemd_cgroup true",
         {MAIN: "real:kubespray-rendered/containerd-2.2.1-systemdcgroup-true.toml"}),
    Case("kubespray-1.7.28-systemd", "kubespray's version 2 config.toml for containerd 1.7.28, "
         "read by containerd 2",
         {MAIN: "real:kubespray-rendered/containerd-1.7.28-systemdcgroup-true.toml"}),
]
BY_NAME = {c.name: c for c in CASES}


def fixture(case: str, minor: str) -> Path:
    return FIXTURES / case / f"containerd-{minor}.toml"


def binary(minor: str, cache_dir: Path | None = None) -> Path | None:
    """The cached build of containerd <minor>, or None when lab.build has not built it."""
    from lab import build
    name = f"containerd-{minor}"
    path = build.component_dir(name, cache_dir or build.DEFAULT_CACHE_DIR) / "bin/containerd"
    return path if build.cached(name, path.parent.parent.parent) else None


class Chroot:
    """A directory holding only the (static) containerd binary, to run `config dump` in with
    a case's files at their node paths (root: chroot)."""

    def __init__(self, containerd: Path):
        self.tmp = tempfile.TemporaryDirectory(prefix="ctd-dump-")
        self.root = Path(self.tmp.name)
        try:  # a hard link when the cache shares the file system, else one copy
            os.link(containerd, self.root / "containerd")
        except OSError:
            shutil.copy(containerd, self.root / "containerd")

    def dump(self, files: dict[str, str]) -> tuple[int, str]:
        """(exit code, output) of `containerd --config /etc/containerd/config.toml config
        dump` with `files`, and nothing else, under /etc."""
        shutil.rmtree(self.root / "etc", ignore_errors=True)
        for path, text in files.items():
            (self.root / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
            (self.root / path.lstrip("/")).write_text(text)
        proc = subprocess.run(["chroot", str(self.root), "/containerd", "--config", MAIN,
                               "config", "dump"], capture_output=True, text=True, timeout=60)
        return proc.returncode, proc.stdout if proc.returncode == 0 else proc.stderr

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.tmp.cleanup()


def trim(output: str) -> str:
    """The dump's top-level `version` and its CRI runtime plugin's `containerd` tables (where
    the default runtime and every runtime's options are); the rest is containerd's other
    plugins and defaults, unchanged by these files."""
    keep, lines = False, []
    for line in output.splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            keep = stripped.strip("[]").replace("'", '"').startswith(
                f'plugins."{CRI_RUNTIME}".containerd')
        elif not lines and stripped.startswith("version ="):
            lines.append(stripped)
            continue
        if keep:
            lines.append(line)
    return "\n".join(lines) + "\n"


def error_lines(output: str) -> str:
    """A failed dump's message: containerd's own error line, or a panic's first line and the
    frame it comes from (the rest of the trace, and logged warnings, left out)."""
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("containerd: "):
            return line + "\n"
        if line.startswith("panic: "):
            frame = next((ln.strip() for ln in lines[i + 1:] if ln.startswith("\t")), "")
            return f"{line}\n{frame.split(' +0x')[0]}\n"
    return output


def drivers(dumped: str) -> dict:
    """What a dump says: the default runtime, its runtime_type, the driver its shim runs
    (options.SystemdCgroup, absent: false) and the one CRI RuntimeConfig reports
    (internal/cri/server/runtime_config_linux.go getCgroupDriver: the default handler first,
    the others in name order; the first whose options decode as runc options decides;
    without options a handler says nothing; when none decides: systemd if systemd runs)."""
    config = tomllib.loads(dumped)
    ctd = config["plugins"][CRI_RUNTIME]["containerd"]
    name = ctd.get("default_runtime_name", "")
    runtimes = ctd.get("runtimes", {})
    runtime = runtimes.get(name, {})
    options = runtime.get("options")
    shim = "systemd" if (options or {}).get("SystemdCgroup") is True else "cgroupfs"
    reported = None
    for handler in sorted(runtimes, key=lambda n: (n != name, n)):
        r = runtimes[handler]
        if r.get("options") is not None and r.get("runtime_type") == "io.containerd.runc.v2":
            reported = "systemd" if r["options"].get("SystemdCgroup") is True else "cgroupfs"
            break
    return {"default_runtime": name, "runtime_type": runtime.get("runtime_type"),
            "shim": shim, "reported": reported or "systemd if systemd runs, else cgroupfs"}


# `containerd --version` as the builds print it (lab.build sets version.Version).
VERSION_LINE = "containerd github.com/containerd/containerd/v2 {}"


def model(files: dict[str, str], version: str):
    """kubeaccept.facts.containerd's reading of `files` on a node running containerd
    `version` (e.g. "v2.2.10"), from the facts gather.sh would print."""
    from kubeaccept.facts import containerd

    from .factory import facts, runtime_files, runtime_versions
    main = files.get(MAIN)
    node = facts(files={MAIN: main},
                 runtime_files=runtime_files({p: t for p, t in files.items()}),
                 runtime_versions=runtime_versions(containerd=VERSION_LINE.format(version)))
    return containerd.read(node)


def disagreement(ctd, dumped: str | None, error: str | None) -> str:
    """What the model says that the dump does not ("" when they agree)."""
    if error is not None:
        said = next((ln for ln in error.splitlines() if ln.startswith(("containerd:", "panic:"))),
                    error.strip())
        said = said.removeprefix("containerd: ")
        if ctd.problem is None:
            return f"containerd failed ({said}), the model says {ctd.driver}"
        words = f"{ctd.problem.observed} {ctd.problem.why}"
        return "" if said in words else f"containerd said {said!r}, the model {words!r}"
    if ctd.problem is not None:
        return f"containerd loaded the files, the model says {ctd.problem.observed}"
    real = drivers(dumped)
    got = {"shim": ctd.driver, "reported": ctd.reported}
    want = {"shim": real["shim"], "reported": real["reported"]}
    if want["reported"].startswith("systemd if"):
        want["reported"] = "systemd"  # containerd on a node under systemd
    return "" if got == want else f"dump {want}, model {got}"


README_HEAD = """\
# `containerd config dump` of real containerd builds

Each `<case>/containerd-<minor>.toml` is what `containerd --config /etc/containerd/config.toml
config dump` printed for that case's files (`selftests/unit/containerd_cases.py` CASES; the
`real:` ones read from `../shared/real-world/containerd`, see its README), put at their node
paths in a chroot holding only them and the static binary; `.err` when containerd exited
non-zero. Regenerate (this file too): `python -m selftests.unit.containerd_cases --write` (root,
after `python -m lab.build containerd-2.0 containerd-2.1 containerd-2.2 containerd-2.3`).

**Trimmed**: a `.toml` keeps the dump's top-level `version` line and its
`[plugins.'io.containerd.cri.v1.runtime'.containerd…]` tables, verbatim (default runtime,
every runtime and its options); the rest of the dump (other plugins, defaults) is left out.
An `.err` keeps containerd's `containerd: …` error line, or a panic's first line and the
source line of its top frame (the goroutine trace and logged warnings left out).

Builds: `python -m lab.build containerd-<minor>` — module `github.com/containerd/containerd/v2`
from the Go module proxy, {go}, `CGO_ENABLED=0 GOTOOLCHAIN=local go build -trimpath -tags
urfave_cli_no_docs,no_btrfs -ldflags '-s -w -X github.com/containerd/containerd/v2/version.Version=<v>'
github.com/containerd/containerd/v2/cmd/containerd`, on Debian 12 amd64.

| minor | release | built | `containerd --version` | sha256 of the binary |
|---|---|---|---|---|
"""


def readme() -> str:
    """fixtures/containerd-dump/README.md: the builds, and a line per fixture."""
    import hashlib
    import json

    from lab import build
    rows, go = [], ""
    for minor in MINORS:
        d = build.component_dir(f"containerd-{minor}", build.DEFAULT_CACHE_DIR)
        info = json.loads((d / "build.json").read_text())
        go = info["go_version"]
        sha = hashlib.sha256((d / "bin/containerd").read_bytes()).hexdigest()
        rows.append(f"| {minor} | {info['version']} | {info['built_at']} | "
                    f"`{info['binaries']['containerd']['version_output']}` | `{sha}` |")
    out = [README_HEAD.replace("{go}", go) + "\n".join(rows), "",
           "| file | case: the files | what the dump says: default runtime: its shim's driver "
           "(options.SystemdCgroup) / what RuntimeConfig answers (getCgroupDriver's rule read "
           "over the dump's runtimes) |", "|---|---|---|"]
    for case in CASES:
        for minor in MINORS:
            path = fixture(case.name, minor)
            if path.is_file():
                r = drivers(path.read_text())
                said = f"`{r['default_runtime']}`: {r['shim']} / {r['reported']}"
            else:
                path = path.with_suffix(".err")
                said = f"exits non-zero: `{path.read_text().splitlines()[0]}`"
            out.append(f"| `{case.name}/{path.name}` | {case.what} | {said} |")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--write", action="store_true", help="write fixtures/containerd-dump/")
    args = p.parse_args(argv)
    for minor in MINORS:
        ctd = binary(minor)
        if ctd is None:
            print(f"containerd {minor}: not built (python -m lab.build containerd-{minor})",
                  file=sys.stderr)
            continue
        with Chroot(ctd) as chroot:
            run_cases(chroot, minor, args.write)
    if args.write:
        (FIXTURES / "README.md").write_text(readme())
    return 0


def run_cases(chroot: Chroot, minor: str, write: bool) -> None:
    """Print what containerd <minor> says of every case (and whether the model agrees)."""
    from lab import build
    version = build.COMPONENTS[f"containerd-{minor}"]["version"]
    for case in CASES:
        try:
            files = case.texts()
        except FileNotFoundError as exc:
            print(f"{case.name}: {exc}", file=sys.stderr)
            continue
        rc, out = chroot.dump(files)
        text = trim(out) if rc == 0 else error_lines(out)
        said = drivers(text) if rc == 0 else f"exit {rc}: {text.splitlines()[0]}"
        wrong = disagreement(model(files, version), text if rc == 0 else None,
                             None if rc == 0 else text)
        print(f"{minor} {case.name}: {said}" + (f"\n    MODEL DISAGREES: {wrong}"
                                                if wrong else ""))
        if write:
            path = fixture(case.name, minor).with_suffix(".toml" if rc == 0 else ".err")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
