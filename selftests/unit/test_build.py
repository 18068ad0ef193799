"""lab.build without network or a real Go toolchain."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lab import build

UPSTREAM_MOD = """\
// This is a generated file. Do not edit directly.

module k8s.io/kubernetes

go 1.26.0

godebug default=go1.26

godebug winsymlink=0

require (
\tgithub.com/spf13/cobra v1.10.2
\tk8s.io/api v0.0.0
\tk8s.io/component-base v0.0.0
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/apimachinery => ./staging/src/k8s.io/apimachinery
\tk8s.io/component-base => ./staging/src/k8s.io/component-base
\tk8s.io/cri-streaming => ./staging/src/k8s.io/cri-streaming
\tk8s.io/kube-scheduler => ./staging/src/k8s.io/kube-scheduler
)
"""

# Stands in for `go`: answers `go env` and fakes `go build` by writing one script per main
# package (named as go names them) that prints the version required in the wrapper go.mod.
FAKE_GO = """#!{python}
import json, os, re, sys
a = sys.argv[1:]
if a[:2] == ["env", "GOVERSION"]:
    print(os.environ.get("FAKE_GOVERSION", "go1.26.8"))
elif a[:2] == ["env", "-json"]:
    print(json.dumps({{k: os.environ[k] for k in ("GOMODCACHE", "GOPROXY")}}))
elif a[0] == "build":
    with open(os.environ["FAKE_GO_LOG"], "w") as f:
        json.dump({{"argv": a, "env": {{k: os.environ.get(k) for k in
                   ("GOTOOLCHAIN", "GOFLAGS", "CGO_ENABLED")}}}}, f)
    if os.environ.get("FAKE_GO_FAIL"):
        print(os.environ["FAKE_GO_FAIL"], file=sys.stderr)
        sys.exit(1)
    version = re.search(r"^\\t\\S+ v(\\S+)", open("go.mod").read(), re.M).group(1)
    out = a[a.index("-o") + 1]
    os.makedirs(out, exist_ok=True)
    for pkg in a[a.index("-o") + 2:]:
        parts = pkg.split("/")
        name = parts[-2] if re.fullmatch(r"v[0-9]+", parts[-1]) else parts[-1]
        path = os.path.join(out, name)
        with open(path, "w") as f:
            f.write("#!/bin/sh\\necho " + name + " version " + version + "\\n")
        os.chmod(path, 0o755)
"""


def fake_binary(path: Path, output: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\necho '{output}'\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def no_go(monkeypatch, tmp_path):
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setattr(build, "GO_FALLBACKS", ())


@pytest.fixture
def fake_go(monkeypatch, tmp_path):
    """A fake `go` on PATH, an empty module cache and an unreachable proxy."""
    gobin = tmp_path / "gobin"
    gobin.mkdir()
    (gobin / "go").write_text(FAKE_GO.format(python=sys.executable))
    (gobin / "go").chmod(0o755)
    monkeypatch.setenv("PATH", f"{gobin}:/usr/bin:/bin")
    monkeypatch.setattr(build, "GO_FALLBACKS", ())
    monkeypatch.setenv("GOMODCACHE", str(tmp_path / "gomodcache"))
    monkeypatch.setenv("GOPROXY", "http://127.0.0.1:9,direct")  # discard port: refused
    monkeypatch.setenv("FAKE_GO_LOG", str(tmp_path / "go-build.json"))
    return tmp_path / "go-build.json"


def seed_mod_cache(tmp_path: Path, module: str, version: str, text: str) -> None:
    d = tmp_path / "gomodcache/cache/download" / module / "@v"
    d.mkdir(parents=True)
    (d / f"{version}.mod").write_text(text)


def leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir() if not p.name.endswith(".lock")
                  and p.name != "logs") if cache.exists() else []


def test_wrapper_go_mod_replaces_every_staging_module():
    gomod = build.wrapper_go_mod("kubernetes", UPSTREAM_MOD)
    staging = re.findall(r"(k8s\.io/\S+) => \./staging", UPSTREAM_MOD)
    assert len(staging) == 5
    for module in staging:
        assert f"\t{module} => {module} v0.37.2\n" in gomod
    assert "./staging" not in gomod
    assert re.search(r"^go 1\.26\.0$", gomod, re.M)
    assert "godebug default=go1.26\n" in gomod and "godebug winsymlink=0\n" in gomod
    assert "\tk8s.io/kubernetes v1.37.2\n" in gomod


def test_wrapper_go_mod_without_staging_has_no_replace():
    gomod = build.wrapper_go_mod("etcd", "module go.etcd.io/etcd/server/v3\n\ngo 1.26.0\n")
    assert "replace" not in gomod
    assert "\tgo.etcd.io/etcd/server/v3 v3.7.3\n\tgo.etcd.io/etcd/etcdctl/v3 v3.7.3\n" in gomod


@pytest.mark.skipif(not shutil.which("go"), reason="needs go to parse go.mod")
def test_wrapper_go_mod_parses(tmp_path):
    (tmp_path / "go.mod").write_text(build.wrapper_go_mod("kubernetes", UPSTREAM_MOD))
    out = subprocess.run(["go", "mod", "edit", "-json"], cwd=tmp_path, check=True,
                         capture_output=True, text=True).stdout
    parsed = json.loads(out)
    assert {r["Old"]["Path"] for r in parsed["Replace"]} == set(
        re.findall(r"(k8s\.io/\S+) => \./staging", UPSTREAM_MOD))
    assert [g["Key"] for g in parsed["GoDebug"]] == ["default", "winsymlink"]


def test_every_version_is_pinned():
    for spec in build.COMPONENTS.values():
        assert re.fullmatch(r"v\d+\.\d+\.\d+", spec["version"])
        assert spec["binaries"]


def test_resolve_accepts_binary_names():
    assert build.resolve("kube-scheduler") == ("kubernetes", "kube-scheduler")
    assert build.resolve("etcdctl") == ("etcd", "etcdctl")
    assert build.resolve("kubernetes") == ("kubernetes", "kube-apiserver")
    with pytest.raises(build.BuildError, match="unknown component 'kubelet'"):
        build.resolve("kubelet")


def test_missing_go_is_one_line(no_go, tmp_path, capsys):
    assert build.main(["--cache-dir", str(tmp_path / "cache"), "kube-apiserver"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("kubeaccept lab: building kubernetes (kube-apiserver, ")
    assert "needs Go >= 1.26.0 on PATH" in err
    assert "\n" not in err and "Traceback" not in err


def test_old_go_is_named(fake_go, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("FAKE_GOVERSION", "go1.19.8")
    assert build.main(["--cache-dir", str(tmp_path / "cache"), "kwok"]) == 1
    err = capsys.readouterr().err.strip()
    assert "needs Go >= 1.26.0" in err and "found go1.19.8" in err and "\n" not in err


def test_cache_hit_needs_no_go(no_go, tmp_path, capsys):
    cache = tmp_path / "cache"
    binary = fake_binary(cache / "kwok-v0.8.0/bin/kwok", "kwok version v0.8.0 go1.26.8")
    assert build.ensure("kwok", cache) == binary
    assert build.main(["--cache-dir", str(cache), "kwok"]) == 0
    assert capsys.readouterr().out == f"kwok v0.8.0 {binary} (cached)\n"


def test_etcdctl_is_checked_with_its_version_command(tmp_path):
    cache = tmp_path / "cache"
    fake_binary(cache / "etcd-v3.7.3/bin/etcd", "etcd Version: 3.7.3")
    etcdctl = cache / "etcd-v3.7.3/bin/etcdctl"
    etcdctl.write_text('#!/bin/sh\n[ "$1" = version ] && echo "etcdctl version: 3.7.3"\n')
    etcdctl.chmod(0o755)
    assert build.cached("etcd", cache)


def test_wrong_version_in_cache_is_not_a_hit(tmp_path):
    cache = tmp_path / "cache"
    fake_binary(cache / "kwok-v0.8.0/bin/kwok", "kwok version v0.7.0")
    assert not build.cached("kwok", cache)


def test_unreachable_proxy_is_one_line_and_leaves_nothing(fake_go, tmp_path, capsys):
    cache = tmp_path / "cache"
    assert build.main(["--cache-dir", str(cache), "coredns"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("kubeaccept lab: cannot reach the Go module proxy http://127.0.0.1:9: ")
    assert "\n" not in err
    assert leftovers(cache) == []


def test_build_publishes_binaries_and_build_json(fake_go, tmp_path, capsys):
    seed_mod_cache(tmp_path, "go.etcd.io/etcd/server/v3", "v3.7.3",
                   "module go.etcd.io/etcd/server/v3\n\ngo 1.26.0\n")
    cache = tmp_path / "cache"
    assert build.main(["--cache-dir", str(cache), "etcd"]) == 0
    bindir = cache / "etcd-v3.7.3/bin"
    assert re.fullmatch(rf"etcd v3\.7\.3 {bindir}/\{{etcd,etcdctl\}} "
                        r"\(built in [\d.]+s, peak \d+ MiB\)\n", capsys.readouterr().out)
    assert sorted(p.name for p in bindir.iterdir()) == ["etcd", "etcdctl"]  # not server/v3
    info = json.loads((cache / "etcd-v3.7.3/build.json").read_text())
    assert info["version"] == "v3.7.3" and info["go_version"] == "go1.26.8"
    assert info["binaries"]["etcd"]["version_output"] == "server version 3.7.3"
    assert isinstance(info["peak_rss_mib"], int) and info["seconds"] >= 0 <= info["cpu_seconds"]
    call = json.loads(fake_go.read_text())
    assert call["env"] == {"GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0"}
    assert leftovers(cache) == ["etcd-v3.7.3"]
    assert build.main(["--cache-dir", str(cache), "etcdctl"]) == 0
    assert capsys.readouterr().out.endswith("(cached)\n")


def test_kubernetes_build_sets_version_ldflags(fake_go, tmp_path):
    seed_mod_cache(tmp_path, "k8s.io/kubernetes", "v1.37.2", UPSTREAM_MOD)
    assert build.ensure("kube-scheduler", tmp_path / "cache").name == "kube-scheduler"
    argv = json.loads(fake_go.read_text())["argv"]
    ldflags = argv[argv.index("-ldflags") + 1]
    assert "-X k8s.io/component-base/version.gitVersion=v1.37.2" in ldflags
    assert "-X k8s.io/component-base/version.gitMinor=37" in ldflags
    assert argv[-3:] == [f"k8s.io/kubernetes/cmd/{b}" for b in
                         ("kube-apiserver", "kube-controller-manager", "kube-scheduler")]


@pytest.mark.parametrize("output, message", [
    ("pkg/x.go:3:1: undefined: Foo", "building kwok failed: pkg/x.go:3:1: undefined: Foo"),
    ('go: sigs.k8s.io/kwok@v0.8.0: Get "https://proxy.golang.org/...": dial tcp: lookup '
     "proxy.golang.org: no such host", "cannot reach the Go module proxy: "),
])
def test_failed_build_leaves_no_binary(fake_go, monkeypatch, tmp_path, output, message):
    seed_mod_cache(tmp_path, "sigs.k8s.io/kwok", "v0.8.0", "module sigs.k8s.io/kwok\n\ngo 1.26.0\n")
    monkeypatch.setenv("FAKE_GO_FAIL", output)
    cache = tmp_path / "cache"
    with pytest.raises(build.BuildError, match=re.escape(message)):
        build.ensure("kwok", cache)
    assert leftovers(cache) == []
    assert (cache / "logs/kwok.log").read_text().strip() == output


def test_containerd_releases_are_kept_side_by_side(fake_go, tmp_path):
    """One component per containerd minor, each cached as containerd-<version>; the build
    passes containerd's Makefile tags (no btrfs: it needs cgo) and sets version.Version."""
    minors = [n for n in build.COMPONENTS if n.startswith("containerd-")]
    assert minors == ["containerd-2.0", "containerd-2.1", "containerd-2.2", "containerd-2.3"]
    dirs = {build.component_dir(n, tmp_path).name for n in minors}
    assert dirs == {"containerd-v2.0.14", "containerd-v2.1.9", "containerd-v2.2.10",
                    "containerd-v2.3.7"}
    with pytest.raises(build.BuildError, match="containerd is built in several releases; name "
                                               "one: containerd-2.0, containerd-2.1"):
        build.resolve("containerd")
    seed_mod_cache(tmp_path, "github.com/containerd/containerd/v2", "v2.2.10",
                   "module github.com/containerd/containerd/v2\n\ngo 1.25.0\n")
    path = build.ensure("containerd-2.2", tmp_path / "cache")
    assert path == tmp_path / "cache/containerd-v2.2.10/bin/containerd"
    argv = json.loads(fake_go.read_text())["argv"]
    assert argv[argv.index("-tags") + 1] == "urfave_cli_no_docs,no_btrfs"
    assert ("-X github.com/containerd/containerd/v2/version.Version=v2.2.10"
            in argv[argv.index("-ldflags") + 1])
    assert argv[-1] == "github.com/containerd/containerd/v2/cmd/containerd"
    assert build.cached("containerd-2.2", tmp_path / "cache")
    assert not build.cached("containerd-2.3", tmp_path / "cache")
