"""Build the lab's control-plane binaries, and the containerd releases the self-tests judge
the containerd model against, from source with the local Go toolchain.

python -m lab.build [--cache-dir DIR] [COMPONENT ...]

Each component is built in a throwaway wrapper module and published atomically as
<cache>/<stem>-<version>/{bin/,build.json} (stem: the component's name, or the program's for a
component kept in several releases, e.g. containerd-2.2 -> containerd-v2.2.10); a published
build that runs is reused.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from .system import LabError

DEFAULT_CACHE_DIR = Path("/var/cache/kubeaccept")
BUILD_TIMEOUT = 5400  # seconds; a cold Kubernetes build measured ~10 min on 2 cores
K8S = "v1.37.2"  # newest release whose go.mod `go` line (1.26.0) Go 1.26 satisfies
_V = "k8s.io/component-base/version"
_CV = "k8s.io/client-go/pkg/version"  # client-go's copy feeds the User-Agent

# binaries: name -> main package. go_min: the pinned release's go.mod `go` line.
COMPONENTS: dict[str, dict] = {
    "kubernetes": {
        "module": "k8s.io/kubernetes", "version": K8S, "go_min": "1.26.0",
        "binaries": {b: f"k8s.io/kubernetes/cmd/{b}" for b in
                     ("kube-apiserver", "kube-controller-manager", "kube-scheduler")},
        "ldflags": [f"-X {p}.{k}={v}" for p in (_V, _CV) for k, v in (
            ("gitVersion", K8S), ("gitMajor", "1"), ("gitMinor", K8S.split(".")[1]),
            ("gitTreeState", "clean"), ("buildDate", "{build_date}"))],
    },
    # Same minor as kubeadm v1.37.2's default etcd (3.7.0-0), newest patch.
    "etcd": {
        "module": "go.etcd.io/etcd/server/v3", "version": "v3.7.3", "go_min": "1.26.0",
        "also": {"go.etcd.io/etcd/etcdctl/v3": "v3.7.3"},
        "binaries": {"etcd": "go.etcd.io/etcd/server/v3",
                     "etcdctl": "go.etcd.io/etcd/etcdctl/v3"},
        "version_args": {"etcdctl": ["version"]},  # etcdctl has no --version flag
    },
    # Same minor as kubeadm v1.37.2's CoreDNSVersion (v1.14.6), newest patch.
    "coredns": {
        "module": "github.com/coredns/coredns", "version": "v1.14.7", "go_min": "1.25.0",
        "binaries": {"coredns": "github.com/coredns/coredns"},
    },
    "kwok": {
        "module": "sigs.k8s.io/kwok", "version": "v0.8.0", "go_min": "1.26.0",
        "binaries": {"kwok": "sigs.k8s.io/kwok/cmd/kwok"},
    },
}

_CTD = "github.com/containerd/containerd/v2"
# containerd releases the containerd model is judged against (`containerd config dump`, no
# daemon): one per minor, each the newest patch on the Go module proxy. 2.0-2.2 merge the
# imported files before migrating them, 2.3 migrates each file first.
CONTAINERD = {"2.0": ("v2.0.14", "1.23.0"), "2.1": ("v2.1.9", "1.24.2"),
              "2.2": ("v2.2.10", "1.25.0"), "2.3": ("v2.3.7", "1.26.8")}
for _minor, (_version, _go) in CONTAINERD.items():
    COMPONENTS[f"containerd-{_minor}"] = {
        "module": _CTD, "version": _version, "go_min": _go, "stem": "containerd",
        "binaries": {"containerd": f"{_CTD}/cmd/containerd"},
        # containerd's Makefile tags; btrfs needs cgo, which the cache's builds go without.
        "tags": ["urfave_cli_no_docs", "no_btrfs"],
        "ldflags": [f"-X {_CTD}/version.Version={_version}"],
    }

WRAPPER_GO_MOD = """module kubeaccept.local/build/{name}

go {go}
{godebug}
require (
{requires})
{replaces}"""

GO_FALLBACKS = ("/usr/local/go/bin/go",)  # sudo's secure_path drops /usr/local/go/bin
# Run in a child process so RUSAGE_CHILDREN covers exactly one build.
_RUNNER = ("import resource,subprocess,sys\n"
           "rc=subprocess.run(sys.argv[2:]).returncode\n"
           "u=resource.getrusage(resource.RUSAGE_CHILDREN)\n"
           "open(sys.argv[1],'w').write(f'{u.ru_maxrss} {u.ru_utime+u.ru_stime}')\n"
           "sys.exit(rc)\n")


class BuildError(LabError):
    pass


def wrapper_go_mod(name: str, upstream_mod: str) -> str:
    """The wrapper's go.mod: upstream's go/godebug lines, and every `=> ./staging/src/k8s.io/X`
    replace turned into the published k8s.io/X v0.Y.Z (the staging modules' tag)."""
    spec = COMPONENTS[name]
    go = re.search(r"^go (\S+)", upstream_mod, re.M)
    godebug = "".join(f"{m}\n" for m in re.findall(r"^godebug (?:\([^)]*\)|.*)$", upstream_mod,
                                                    re.M))
    reqs = {spec["module"]: spec["version"], **spec.get("also", {})}
    replaces = ""
    staging = re.findall(r"^\s*(k8s\.io/\S+)\s+=>\s+\./staging/src/\S+", upstream_mod, re.M)
    if staging:
        tag = "v0." + spec["version"].split(".", 1)[1]
        replaces = "\nreplace (\n" + "".join(f"\t{m} => {m} {tag}\n" for m in staging) + ")\n"
    return WRAPPER_GO_MOD.format(
        name=name, go=go.group(1) if go else spec["go_min"], godebug=godebug and f"\n{godebug}",
        requires="".join(f"\t{m} {v}\n" for m, v in reqs.items()), replaces=replaces)


def resolve(component: str) -> tuple[str, str]:
    """(component, binary) for a component or binary name."""
    if component in COMPONENTS:
        return component, next(iter(COMPONENTS[component]["binaries"]))
    owners = [name for name, spec in COMPONENTS.items() if component in spec["binaries"]]
    if len(owners) == 1:
        return owners[0], component
    if owners:
        raise BuildError(f"{component} is built in several releases; name one: "
                         + ", ".join(owners))
    known = {*COMPONENTS, *(b for spec in COMPONENTS.values() for b in spec["binaries"])}
    raise BuildError(f"unknown component {component!r}; known: {', '.join(sorted(known))}")


def component_dir(name: str, cache_dir: Path) -> Path:
    spec = COMPONENTS[name]
    return Path(cache_dir) / f"{spec.get('stem', name)}-{spec['version']}"


def version_output(name: str, binary: Path) -> str | None:
    """`binary --version` output if it runs and reports the pinned version, else None."""
    spec = COMPONENTS[name]
    args = spec.get("version_args", {}).get(binary.name, ["--version"])
    try:
        proc = subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    out = (proc.stdout + proc.stderr).strip()
    return out if proc.returncode == 0 and spec["version"].lstrip("v") in out else None


def cached(name: str, cache_dir: Path) -> bool:
    bindir = component_dir(name, cache_dir) / "bin"
    return all(version_output(name, bindir / b) for b in COMPONENTS[name]["binaries"])


def find_go(name: str) -> tuple[str, str]:
    """(go binary, GOVERSION), or a one-line error naming what to install."""
    spec = COMPONENTS[name]
    need = (f"building {name} ({', '.join(spec['binaries'])}) needs Go >= {spec['go_min']} on "
            "PATH (install from https://go.dev/dl; Debian 12's golang package is too old)")
    go = shutil.which("go") or next((g for g in GO_FALLBACKS if os.access(g, os.X_OK)), None)
    if not go:
        raise BuildError(need)
    out = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True,
                         env=_go_env()).stdout.strip()
    if _vtuple(out) < _vtuple(spec["go_min"]):
        raise BuildError(f"{need}; found {out or 'an unusable go'} at {go}")
    return go, out


def _vtuple(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", v.removeprefix("go").split("-")[0])[:3])


def _go_env() -> dict[str, str]:
    return {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0",
            "GOWORK": "off"}


def fetch_mod(go: str, module: str, version: str) -> str:
    """The release's go.mod, from the module cache if present, else from the proxy."""
    env = json.loads(subprocess.run([go, "env", "-json", "GOMODCACHE", "GOPROXY"],
                                    capture_output=True, text=True, env=_go_env()).stdout)
    esc = re.sub(r"[A-Z]", lambda m: "!" + m.group().lower(), module)
    local = Path(env["GOMODCACHE"]) / "cache/download" / esc / "@v" / f"{version}.mod"
    if local.is_file():
        return local.read_text()
    proxy = next((p for p in re.split(r"[,|]", env["GOPROXY"]) if p not in ("direct", "off")),
                 None)
    if not proxy:
        raise BuildError(f"GOPROXY={env['GOPROXY']}: building needs a Go module proxy")
    try:
        with urllib.request.urlopen(f"{proxy}/{esc}/@v/{version}.mod", timeout=30) as r:
            return r.read().decode()
    except (urllib.error.URLError, OSError) as exc:
        raise BuildError(f"cannot reach the Go module proxy {proxy}: "
                         f"{getattr(exc, 'reason', exc)}") from None


def build(name: str, cache_dir: Path, timeout: float = BUILD_TIMEOUT) -> dict:
    """Build `name` into a temp dir and rename it into the cache; returns build.json's data."""
    spec, cache_dir = COMPONENTS[name], Path(cache_dir)
    go, goversion = find_go(name)
    gomod = wrapper_go_mod(name, fetch_mod(go, spec["module"], spec["version"]))
    cache_dir.mkdir(parents=True, exist_ok=True)
    final = component_dir(name, cache_dir)
    for stale in cache_dir.glob(f".build-{name}-*"):  # left by a killed build; we hold the lock
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".build-{name}-", dir=cache_dir))
    try:
        (tmp / "src").mkdir()
        (tmp / "src/go.mod").write_text(gomod)
        out, log = tmp / final.name, tmp / "build.log"
        date = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        ldflags = " ".join(["-s", "-w", *spec.get("ldflags", [])]).format(build_date=date)
        tags = ["-tags", ",".join(spec["tags"])] if spec.get("tags") else []
        cmd = [go, "build", "-trimpath", *tags, "-ldflags", ldflags, "-o", f"{out}/bin/",
               *spec["binaries"].values()]
        print(f"building {name} {spec['version']} with {goversion}...", file=sys.stderr)
        start = time.monotonic()
        with log.open("w") as fh:
            proc = subprocess.Popen([sys.executable, "-c", _RUNNER, str(tmp / "rusage"), *cmd],
                                    cwd=tmp / "src", env=_go_env(), stdout=fh,
                                    stderr=subprocess.STDOUT, start_new_session=True)
            try:
                rc = proc.wait(timeout=timeout)
            except BaseException as exc:  # its own session: Ctrl-C would not reach go
                os.killpg(proc.pid, 9)
                proc.wait()
                if isinstance(exc, subprocess.TimeoutExpired):
                    raise BuildError(f"building {name} did not finish within {timeout:g}s") \
                        from None
                raise
        seconds = round(time.monotonic() - start, 1)
        if rc != 0:
            _raise_build_failure(name, log.read_text(), cache_dir)
        for binary, pkg in spec["binaries"].items():  # go names /vN packages after the parent
            default = re.sub(r"/v\d+$", "", pkg).rsplit("/", 1)[-1]
            if default != binary:
                (out / "bin" / default).rename(out / "bin" / binary)
        versions = {b: version_output(name, out / "bin" / b) for b in spec["binaries"]}
        if not all(versions.values()):
            raise BuildError(f"built {name} but `--version` does not report {spec['version']}: "
                             + ", ".join(b for b, v in versions.items() if not v))
        maxrss, cpu = (tmp / "rusage").read_text().split()
        info = {"component": name, "version": spec["version"], "go_version": goversion,
                "seconds": seconds, "cpu_seconds": round(float(cpu), 1),
                "peak_rss_mib": round(int(maxrss) / 1024),
                "binaries": {b: {"size_bytes": (out / "bin" / b).stat().st_size,
                                 "version_output": versions[b]} for b in spec["binaries"]},
                "built_at": date, "go_mod": gomod}
        (out / "build.json").write_text(json.dumps(info, indent=2) + "\n")
        if final.exists():  # stale or broken: swap it out so the rename below stays atomic
            final.rename(tmp / "old")
        out.rename(final)
        return info
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _raise_build_failure(name: str, output: str, cache_dir: Path) -> None:
    logdir = cache_dir / "logs"
    logdir.mkdir(exist_ok=True)
    (logdir / f"{name}.log").write_text(output)
    lines = [ln for ln in output.splitlines() if not ln.startswith("go: downloading")]
    net = re.search(r"^.*(dial tcp|no such host|i/o timeout|connection refused).*$", output, re.M)
    if net:
        raise BuildError(f"cannot reach the Go module proxy: {net.group().strip()}")
    raise BuildError(f"building {name} failed: {' | '.join(lines[:3]) or 'no output'} "
                     f"(full log: {logdir / f'{name}.log'})")


def ensure(component: str, cache_dir: Path = DEFAULT_CACHE_DIR) -> Path:
    """Path of the binary (or the component's first binary), building it if needed."""
    return _ensure(component, Path(cache_dir))[0]


def _ensure(component: str, cache_dir: Path) -> tuple[Path, dict | None]:
    name, binary = resolve(component)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / f".{name}.lock", "w") as lock:  # one builder per component
        fcntl.flock(lock, fcntl.LOCK_EX)
        info = None if cached(name, cache_dir) else build(name, cache_dir)
    return component_dir(name, cache_dir) / "bin" / binary, info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lab.build", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    p.add_argument("components", nargs="*", metavar="COMPONENT",
                   help=f"default all: {', '.join(COMPONENTS)} (or a binary name)")
    args = p.parse_args(argv)
    try:
        for component in args.components or list(COMPONENTS):
            path, info = _ensure(component, args.cache_dir)
            name = resolve(component)[0]
            bins = list(COMPONENTS[name]["binaries"]) if component == name else [path.name]
            shown = path.parent / (bins[0] if len(bins) == 1 else "{" + ",".join(bins) + "}")
            how = (f"built in {info['seconds']:g}s, peak {info['peak_rss_mib']} MiB" if info
                   else "cached")
            print(f"{component} {COMPONENTS[name]['version']} {shown} ({how})", flush=True)
    except (BuildError, OSError) as exc:
        print(f"kubeaccept lab: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
