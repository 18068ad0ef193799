"""The parsers fuzzed with hypothesis: what a node, etcdctl, nft or an inventory file hands
over is never trusted. A malformed input is a Finding (failing, or not judged) or the parser's
own documented error (FactsError, ConfigError, ParseError, NftError, InventoryError), never a
crash (TypeError, KeyError, IndexError, RecursionError, a ValueError out of int(), ...).

Inputs are mostly mutations of the real artifacts under fixtures/ (containerd's `config
default`, iptables and nft dumps, unit files, fstabs, inventories), so the fuzzer reaches the
code past the first syntax check. Deterministic (derandomize, no example database) for CI;
each @example is an input that crashed a parser before its fix."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kubeaccept.checks import swap
from kubeaccept.checks.etcd import _json
from kubeaccept.facts import FactsError, FileFact, NodeFacts, containerd, dockerd, nftables, parse
from kubeaccept.facts import iptables as firewall
from kubeaccept.facts.config import ConfigError, load, parse_text
from kubeaccept.facts.swapboot import parse as parse_swap_boot
from kubeaccept.facts.swapservices import parse as parse_swap_services
from kubeaccept.inventory.ansible import load_inventory
from kubeaccept.inventory.specs import parse_host_specs
from kubeaccept.model.findings import Finding
from kubeaccept.model.hosts import InventoryError
from kubeaccept.model.roles import CONTROL_PLANE, WORKER
from kubeaccept.model.settings import Settings

from .factory import (
    NO_API,
    cni_cluster,
    context,
    facts,
    host,
    judge,
    on_cluster,
    runtime_files,
    runtime_versions,
)

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(path: str) -> str:
    return (FIXTURES / path).read_text()


# KUBEACCEPT_FUZZ_SCALE=20 fuzzes 20 times longer, with new random inputs on each run.
SCALE = int(os.environ.get("KUBEACCEPT_FUZZ_SCALE", "0"))


def fuzz(examples: int = 150):
    """Deterministic by default: the same inputs on every run, nothing remembered."""
    return settings(max_examples=examples * max(SCALE, 1), deadline=None,
                    derandomize=not SCALE, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def only_findings(out) -> list[Finding]:
    assert isinstance(out, list) and out, out
    assert all(isinstance(f, Finding) for f in out), out
    return out


# --- structure-aware strategies ---------------------------------------------------------------
# Values that break naive parsing: empty, signs, digits int() refuses ("²" is str.isdigit()),
# digits int() takes ("٣"), quotes, brackets, separators, the facts script's own markers.
NASTY = ("", " ", "0", "1", "2", "3", "-1", "²", "٣", "1e3", "0x1f", "99999999999999999999",
         "true", "false", "null", "{", "}", "[", "]", '"', "'", "\\", "=", ":", "::", "#", ";",
         "\t", "@", "!", "!missing", "!unreadable", "!too-large", "*", "/", "%", ",", "$", "${X}",
         "$$", "\x00", "é", "ℌ")
token = st.one_of(st.sampled_from(NASTY), st.text(max_size=8))
junk_line = st.lists(token, max_size=6).map(" ".join)


@st.composite
def mutated(draw, text: str) -> str:
    """`text` with a few lines dropped, doubled, inserted, cut short or with a word or a
    character replaced by something nasty; sometimes truncated."""
    lines = text.splitlines()
    for _ in range(draw(st.integers(0, 6))):
        op = draw(st.integers(0, 6))
        i = draw(st.integers(0, max(len(lines) - 1, 0)))
        if op == 2 or not lines:
            lines.insert(i, draw(junk_line))
        elif op == 0:
            del lines[i]
        elif op == 1:
            lines.insert(i, lines[i])
        elif op == 3:
            words = lines[i].split(" ")
            words[draw(st.integers(0, len(words) - 1))] = draw(token)
            lines[i] = " ".join(words)
        elif op == 4:
            lines[i] = lines[i][:draw(st.integers(0, len(lines[i])))]
        elif op == 5 and lines[i]:
            j = draw(st.integers(0, len(lines[i]) - 1))
            lines[i] = lines[i][:j] + draw(st.sampled_from(NASTY)) + lines[i][j + 1:]
        elif op == 6:
            lines = lines[:i]
    return "\n".join(lines) + draw(st.sampled_from(["\n", "", "\n\n"]))


def text_like(*texts: str):
    """A mutation of one of `texts`, or junk lines."""
    return st.one_of(st.sampled_from(texts).flatmap(mutated),
                     st.lists(junk_line, max_size=8).map("\n".join))


json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                      st.sampled_from(NASTY), st.text(max_size=10))


def json_tree(keys=(), leaf=json_leaf, max_leaves=12):
    key = st.sampled_from(keys) | st.text(max_size=6) if keys else st.text(max_size=6)
    return st.recursive(leaf, lambda kids: st.lists(kids, max_size=4)
                        | st.dictionaries(key, kids, max_size=4), max_leaves=max_leaves)


def json_paths(doc) -> list[tuple]:
    """The key/index path of every value in a JSON document, the document's own () first."""
    out, stack = [], [((), doc)]
    while stack:
        path, node = stack.pop()
        out.append(path)
        items = node.items() if isinstance(node, dict) else enumerate(node) \
            if isinstance(node, list) else ()
        stack += [((*path, k), v) for k, v in items]
    return out


@st.composite
def mutated_json(draw, doc, keys=()):
    """`doc` with one to three of its values (anywhere in the tree) replaced."""
    doc = json.loads(json.dumps(doc))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(json_paths(doc)))
        new = draw(json_tree(keys))
        if not path:
            doc = new
            continue
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        parent[path[-1]] = new
    return doc


def b64(text: str | bytes) -> str:
    return base64.b64encode(text if isinstance(text, bytes) else text.encode()).decode()


# --- 1. the facts document ----------------------------------------------------------------------
SECTIONS = ("hostname", "kernel", "os", "id", "sysctl", "swaps", "swap-boot", "certificates",
            "etcd", "sockets", "cgroupfs", "runtime-files", "runtime-versions", "listen-tcp",
            "listen-udp", "addresses", "links", "bridges", "iptables-save",
            "iptables-legacy-save", "nft", "firewalld", "firewalld-policies",
            "firewalld-services", "kubelet-version", "dns", "probes",
            "file /etc/fstab", "file /etc/containerd/config.toml",
            "file /var/lib/kubelet/config.yaml", "file /etc/docker/daemon.json",
            "file /etc/kubernetes/manifests/kube-apiserver.yaml", "end")
FLANNEL = fixture("flannel-node.facts")
BODIES = (FLANNEL, "!missing", "!unreadable", "!missing ss", b64("kind: x\n"), "QUJD=\n!",
          "!cmd dig +short kubernetes.default\n!rc ²\n10.96.0.1",
          "!etcdctl member list\n{}\n!stderr member list\n", "Kubernetes v1.٣.2",
          "/etc/containerd/config.toml !too-large\n!truncated\n/x " + b64("y"),
          "containerd x v²٣.1.2\ndockerd Docker version 1.2.3",
          "/sys/class/net/cni0/brif/veth1\n/sys/class/net/x/bridge")


def read_everything(f: NodeFacts) -> None:
    """Every accessor a check uses on NodeFacts."""
    for name in SECTIONS:
        f.section(name)
        f.missing(name)
    for path in ("/etc/fstab", "/etc/docker/daemon.json", "/etc/containerd/config.toml"):
        f.file(path)
        f.file_bytes(path)
    for name in ("sysctls", "swaps", "runtime_sockets", "listeners", "addresses", "links",
                 "probes", "etcd", "certificates", "dns", "kube_version", "bridges",
                 "runtime_files", "runtime_versions", "swap_boot"):
        getattr(f, name)
    f.iface_of("10.0.2.15")
    assert NodeFacts.from_json(json.loads(json.dumps(f.to_json()))).sections == f.sections


facts_document = st.lists(st.tuples(st.sampled_from(SECTIONS) | st.text(max_size=12),
                                    st.sampled_from(BODIES).flatmap(mutated) | token),
                          max_size=12)


@fuzz(300)
@given(sections=facts_document, prelude=st.text(max_size=20), end=st.booleans(),
       stderr=st.text(max_size=40), status=st.integers(-1, 255),
       document=text_like(FLANNEL))
@example(sections=[("dns", "!cmd dig x\n!rc ²")], prelude="", end=True, stderr="", status=0,
         document="")
@example(sections=[("listen-tcp", "LISTEN 0 4096 0.0.0.0:²³ 0.0.0.0:*")], prelude="", end=True,
         stderr="", status=0, document="")
def test_facts_parse(sections, prelude, end, stderr, status, document):
    """kubeaccept.facts.parse(host, token, stdout, stderr, exit_status): gather.sh's output
    (section markers + bodies, or a mutated real document) is a NodeFacts, or FactsError when
    the `end` section is missing; nothing any check reads off the NodeFacts raises."""
    lines = [prelude] + [f"@@T0K {n}\n{b}" for n, b in sections] + (["@@T0K end"] if end else [])
    for stdout in ("\n".join(lines), document.replace("@@FIXTURE ", "@@T0K ")):
        try:
            f = parse("n1", "T0K", stdout, stderr, status)
        except FactsError as exc:
            assert str(exc).startswith("facts command did not complete on n1")
            continue
        read_everything(f)


# --- 2. sysctl values -----------------------------------------------------------------------------
SYSCTL_KEYS = ("net.ipv4.conf.all.rp_filter", "net.ipv4.conf.default.rp_filter",
               "net.ipv4.conf.eth0.rp_filter", "net.ipv4.conf.flannel/1.rp_filter",
               "net.ipv4.conf..rp_filter", "net.ipv4.conf.rp_filter", "net.ipv4.ip_forward",
               "net.bridge.bridge-nf-call-iptables")
sysctl_value = st.sampled_from(("0", "1", "2", "3", "01", "-1", "²", "٣", "", "1 1", "x",
                                "99999999999999999999")) | st.text(max_size=4)


@fuzz(200)
@given(lines=st.lists(st.tuples(st.sampled_from(SYSCTL_KEYS) | st.text(max_size=10),
                                sysctl_value), max_size=8),
       raw=text_like(fixture("flannel-node.facts").split("@@FIXTURE sysctl\n")[1]
                     .split("@@")[0]),
       bridges=st.none() | text_like("/sys/class/net/cni0/bridge\n/sys/class/net/cni0/brif/v1"))
@example(lines=[("net.ipv4.conf.all.rp_filter", "²")], raw="", bridges=None)
@example(lines=[("net.ipv4.conf.all.rp_filter", "1"), ("net.ipv4.conf.eth0.rp_filter", "²")],
         raw="", bridges=None)
def test_sysctl_checks(lines, raw, bridges):
    """kubeaccept.checks.sysctl (rp_filter, ip_forward, bridge-nf-call-iptables) over the
    `sysctl` section's "KEY VALUE" lines: any value is a finding (failing when it is not a
    number the kernel could hold), never an exception."""
    for text in ("\n".join(f"{k} {v}" for k, v in lines), raw):
        named = {"sysctl": text} if bridges is None else {"sysctl": text, "bridges": bridges}
        ctx = context(facts("n1", **named))
        only_findings(judge("node_rp_filter", node=ctx, cluster_cni=NO_API))
        only_findings(judge("node_rp_filter", node=ctx, cluster_cni=cni_cluster(
            exception="FelixConfiguration default: ignoreLooseRPF")))
        only_findings(judge("node_rp_filter", node=ctx, cluster_cni=cni_cluster(
            "cilium", "quay.io/cilium/cilium:v1.18.6")))
        only_findings(judge("node_ip_forward", node=ctx))
        only_findings(judge("node_bridge_nf_call_iptables", node=ctx))


# --- 3. dockerd: daemon.json and its systemd unit -----------------------------------------------
DOCKER_FLAGS = 'KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///var/run/cri-dockerd.sock"'
DOCKER_KEYS = ("exec-opts", "config-file", "data-root", "log-opts", "native.cgroupdriver")
exec_opt = st.sampled_from(("native.cgroupdriver=systemd", " Native.CgroupDriver = cgroupfs ",
                            "native.cgroupdriver=none", "native.cgroupdriver", "=systemd",
                            "isolation=hyperv", "")) | token
daemon_json = st.one_of(
    st.fixed_dictionaries({}, optional={"exec-opts": st.lists(exec_opt, max_size=3) | json_leaf
                                                     | json_tree(),
                                        "log-driver": json_leaf}).map(json.dumps),
    json_tree(DOCKER_KEYS).map(json.dumps),
    text_like('{"exec-opts": ["native.cgroupdriver=systemd"]}\n'))
DOCKER_VERSIONS = ("Docker version 28.0.1, build 068a01e", "Docker version 20.10.24, build x",
                   "Docker version 19.03.15", "Docker version 24.0.7", "Docker version ²", "")
unit_dir = st.sampled_from(dockerd.UNIT_DIRS + ("/etc", ""))
exec_start = st.lists(st.sampled_from(("--exec-opt", "native.cgroupdriver=systemd",
                                       "--exec-opt=native.cgroupdriver=cgroupfs", "--config-file",
                                       "/etc/docker/other.json", "$DOCKER_OPTS", "${DOCKER_OPTS}",
                                       "$$", "'", '"', "\\")) | token, max_size=5).map(
    lambda words: "[Service]\nExecStart=\nExecStart=/usr/bin/dockerd --exec-opt "
    "native.cgroupdriver=systemd " + " ".join(words))


@fuzz(600)
@given(daemon=st.none() | daemon_json, bom=st.just(b"") | st.sampled_from([b for b, _ in dockerd.BOMS]),
       main_dir=unit_dir,
       unit=text_like(fixture("runtime/moby-docker.service"),
                      fixture("runtime/kubespray-docker.service")),
       dropins=st.lists(st.tuples(unit_dir, st.sampled_from(("a.conf", "b.conf", "x/c.conf")),
                                  exec_start | text_like(
                                      fixture("runtime/kubespray-docker-options.conf"))),
                        max_size=2),
       env=st.none() | text_like('DOCKER_OPTS="--exec-opt native.cgroupdriver=systemd"\n'),
       versions=st.tuples(st.sampled_from(DOCKER_VERSIONS) | token,
                          st.sampled_from(("cri-dockerd 0.3.16 (x)", "cri-dockerd 0.4.0", "",
                                           "cri-dockerd ²"))),
       cgroup2=st.booleans())
@example(daemon='{"exec-opts": 1.0}', bom=b"", main_dir="/etc/systemd/system", unit="",
         dropins=[("/etc/systemd/system", "a.conf", "[Service]\nExecStart=\nExecStart=/usr/bin/"
                   "dockerd --exec-opt native.cgroupdriver=systemd ")], env=None,
         versions=(DOCKER_VERSIONS[0], "cri-dockerd 0.3.16 (x)"), cgroup2=False)
def test_dockerd_read(daemon, bom, main_dir, unit, dropins, env, versions, cgroup2):
    """kubeaccept.facts.dockerd.read(facts, cgroup2): daemon.json (any bytes, byte order
    marks) and dockerd's unit, drop-ins and environment file (any text) are a Docker (its
    problem, driver or notes) or parse.ConfigError for a daemon.json that is not JSON; the
    cgroup check turns every outcome into a finding."""
    extra = {f"{main_dir}/docker.service": unit, "/etc/default/docker": env}
    extra.update({f"{d}/docker.service.d/{n}": t for d, n, t in dropins})
    extra = {p: t for p, t in extra.items() if t is not None}
    files = {"/var/lib/kubelet/kubeadm-flags.env": DOCKER_FLAGS}
    if daemon is not None:
        extra[dockerd.DAEMON_JSON] = bom + daemon.encode()
    f = facts(files=files, runtime_files=runtime_files(extra),
              runtime_versions=runtime_versions(dockerd=versions[0], cri_dockerd=versions[1]))
    try:
        docker = dockerd.read(f, cgroup2)
    except ConfigError as exc:
        assert str(exc).startswith(dockerd.DAEMON_JSON)
    else:
        assert isinstance(docker, dockerd.Docker)
        assert docker.problem is not None or docker.driver in ("systemd", "cgroupfs")
    only_findings(judge("node_cgroup_driver", node=context(f, settings=Settings(kube_version=(1, 33)))))


# --- 4. containerd TOML ---------------------------------------------------------------------------
CTD_KEYS = ("version", "imports", "plugins", "disabled_plugins", "containerd", "runtimes",
            "runc", "options", "SystemdCgroup", "default_runtime_name", "runtime_type",
            "systemd_cgroup", "default_runtime", containerd.CRI_GRPC, containerd.CRI_RUNTIME,
            "cri", containerd.LINUX_V1, containerd.RUNC, "io.containerd.grpc.v1")
ctd_leaf = st.one_of(st.booleans(), st.integers(-2, 5), st.integers(), st.text(max_size=8),
                     st.sampled_from(("runc", containerd.RUNC, containerd.LINUX_V1, "true",
                                      "cri", containerd.CRI_GRPC, containerd.CRI_RUNTIME,
                                      "conf.d/*.toml", "/etc/containerd/conf.d/*.toml",
                                      "/etc/containerd/conf.d/a.toml", "b.toml", "../x.toml",
                                      "/etc/*/x.toml", "*")))
ctd_tree = json_tree(CTD_KEYS, ctd_leaf)
runtime_table = st.fixed_dictionaries({}, optional={
    "runtime_type": ctd_leaf, "options": st.fixed_dictionaries({}, optional={
        "SystemdCgroup": ctd_leaf, "BinaryName": ctd_leaf}) | ctd_tree})
cri_table = st.fixed_dictionaries({}, optional={
    "systemd_cgroup": ctd_leaf, "sandbox_image": ctd_leaf,
    "containerd": st.fixed_dictionaries({}, optional={
        "default_runtime_name": ctd_leaf, "snapshotter": ctd_leaf,
        "default_runtime": runtime_table | ctd_tree,
        "runtimes": st.dictionaries(st.sampled_from(("runc", "nvidia", "kata")) | ctd_leaf.map(str),
                                    runtime_table | ctd_tree, max_size=2) | ctd_tree}) | ctd_tree})
plugins = st.dictionaries(st.sampled_from(("cri", containerd.CRI_GRPC, containerd.CRI_RUNTIME,
                                           "io.containerd.grpc.v1.x", "x")) | st.text(max_size=5),
                          cri_table | ctd_tree, max_size=3)
ctd_doc = st.fixed_dictionaries({}, optional={
    "version": ctd_leaf, "imports": st.lists(ctd_leaf, max_size=3) | ctd_tree,
    "plugins": plugins | ctd_tree, "disabled_plugins": st.lists(ctd_leaf, max_size=3) | ctd_tree})


def toml_string(s: str) -> str:
    # JSON's escapes are TOML's, but for DEL (TOML wants it escaped) and non-BMP characters
    # (JSON escapes them as surrogate pairs, which TOML refuses): write those raw or escaped.
    return json.dumps(s, ensure_ascii=False).replace("\x7f", "\\u007f")


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return toml_string(v)
    if isinstance(v, list):
        return "[" + ", ".join(map(toml_value, v)) + "]"
    return "{" + ", ".join(f"{toml_string(k)} = {toml_value(x)}" for k, x in v.items()) + "}"


def toml_doc(doc: dict) -> str:
    """`doc` as TOML (inline tables): tomllib reads back exactly `doc`."""
    return "".join(f"{toml_string(k)} = {toml_value(v)}\n" for k, v in doc.items())


ctd_text = st.one_of(ctd_doc.map(toml_doc), text_like(*(fixture(f"runtime/{n}") for n in (
    "containerd-1.7.2-config-default.toml", "containerd-2.2.1-ubuntu-config-default.toml",
    "containerd-2.3-config-default.toml", "docker-containerd.io-config.toml",
    "nvidia-device-plugin-v0.14.5-containerd.toml"))))
CTD_VERSIONS = ("containerd github.com/containerd/containerd 1.7.2",
                "containerd containerd.io 1.6.28 x", "containerd containerd.io 1.7.27 x",
                "containerd github.com/containerd/containerd/v2 v2.0.0 x",
                "containerd github.com/containerd/containerd/v2 v2.1.4",
                "containerd github.com/containerd/containerd/v2 2.2.1",
                "containerd github.com/containerd/containerd/v2 v2.3.0", "", "containerd ²")


@fuzz(600)
@given(main=st.none() | ctd_text,
       imported=st.lists(st.tuples(st.sampled_from(("/etc/containerd/conf.d/a.toml",
                                                    "/etc/containerd/b.toml", "/opt/c.toml",
                                                    "/etc/containerd/conf.d/d.conf")), ctd_text),
                         max_size=2),
       truncated=st.booleans(), version=st.sampled_from(CTD_VERSIONS) | token)
@example(main='version = 2\nplugins = ["x"]\n', imported=[], truncated=False,
         version=CTD_VERSIONS[0])
@example(main="disabled_plugins = 1\n", imported=[], truncated=False, version=CTD_VERSIONS[0])
@example(main="a = " + "[" * 2000, imported=[], truncated=False, version="")
def test_containerd_read(main, imported, truncated, version):
    """kubeaccept.facts.containerd.read(facts): containerd's config.toml and the files it
    imports (any text, or any TOML document with containerd's keys and any value types) are a
    Containerd (driver, problem or notes) or parse.ConfigError for TOML containerd cannot
    parse; the cgroup check turns every outcome into a finding."""
    extra = dict(imported)
    if truncated:
        extra["!truncated"] = ""
    f = facts(files={"/etc/containerd/config.toml": main},
              runtime_files=runtime_files(extra),
              runtime_versions=runtime_versions(containerd=version))
    try:
        ctd = containerd.read(f)
    except ConfigError as exc:
        assert str(exc).startswith("/etc/containerd/")
    else:
        assert isinstance(ctd, containerd.Containerd)
        assert ctd.problem is not None or ctd.driver in ("systemd", "cgroupfs") or ctd.notes
    only_findings(judge("node_cgroup_driver", node=context(f, settings=Settings(kube_version=(1, 30)))))


# --- 5. kubelet's config YAML -------------------------------------------------------------------
KUBELET_KEYS = ("apiVersion", "kind", "cgroupDriver", "featureGates", "KubeletCgroupDriverFromCRI",
                "containerRuntimeEndpoint", "failSwapOn", "memorySwap", "swapBehavior")
kubelet_text = st.one_of(
    json_tree(KUBELET_KEYS).map(json.dumps),  # JSON is YAML
    st.fixed_dictionaries({"cgroupDriver": json_leaf}, optional={
        "featureGates": st.dictionaries(st.sampled_from(KUBELET_KEYS), json_leaf) | json_tree(),
        "failSwapOn": json_leaf, "memorySwap": json_tree(KUBELET_KEYS),
        "containerRuntimeEndpoint": json_leaf}).map(json.dumps),
    text_like(fixture("runtime/kubeadm-kubelet-config.yaml")))


@fuzz(300)
@given(text=kubelet_text, path=st.sampled_from(("/var/lib/kubelet/config.yaml", "/x/c.json",
                                                 "/x/c.toml")),
       flags=st.none() | text_like('KUBELET_KUBEADM_ARGS="--cgroup-driver=systemd '
                                   '--fail-swap-on=false --feature-gates='
                                   'KubeletCgroupDriverFromCRI=true"\n'))
@example(text="[" * 600, path="/var/lib/kubelet/config.yaml", flags=None)  # YAML is slow
@example(text="[" * 2000, path="/x/c.json", flags=None)
@example(text="memorySwap: x\nfailSwapOn: false\n", path="/var/lib/kubelet/config.yaml",
         flags=None)
def test_kubelet_config(text, path, flags):
    """kubeaccept.facts.config.parse_text / load: any text is a mapping or ConfigError (the
    file, and the line where the parser knows it); the cgroup-driver and swap checks reading
    kubelet's config turn every outcome into findings."""
    try:
        assert isinstance(parse_text(path, text), dict)
    except ConfigError as exc:
        assert str(exc).startswith(path) and "\n" not in str(exc).strip()
    with contextlib.suppress(ConfigError):
        load(FileFact(path, True, text))
    files = {"/var/lib/kubelet/config.yaml": text, "/var/lib/kubelet/kubeadm-flags.env": flags}
    f = facts(files=files, swaps="Filename Type Size Used Priority\n/swap.img file 1 0 -2")
    for kube in ((1, 33), None):
        ctx = context(f, settings=Settings(kube_version=kube))
        only_findings(judge("node_cgroup_driver", node=ctx))
        only_findings(judge("node_swap", node=ctx))


# --- 6. iptables-save and nft -j --------------------------------------------------------------
IPTABLES = fixture("firewall/calico-ipip.iptables-save")
RULE_WORDS = ("-A", "INPUT", "FORWARD", "-p", "tcp", "udp", "icmp", "6", "-s", "-d", "10.0.0.0/8",
              "::1/128", "1.2.3.4", "-i", "-o", "cali+", "eth0", "-m", "tcp", "multiport",
              "conntrack", "state", "mark", "comment", "set", "--dport", "--dports", "--ports",
              "1:2", "80,443", "65536", ":", "--ctstate", "NEW,ESTABLISHED", "--mark",
              "0x1/0x1", "--comment", '"a b"', "!", "-j", "-g", "ACCEPT", "DROP", "REJECT",
              "RETURN", "MARK", "--set-xmark", "--set-mark", "--and-mark", "0x10000/0x10000",
              "0xffffffffff", "cali-FORWARD", "KUBE-FIREWALL", "LOG", "--icmp-type", "8")
rule_line = st.lists(st.sampled_from(RULE_WORDS) | token, min_size=1, max_size=10).map(
    lambda w: "-A " + " ".join(w))
iptables_text = st.one_of(
    text_like(IPTABLES),
    st.lists(rule_line, max_size=8).map(lambda rules: "*filter\n:INPUT DROP [0:0]\n:FORWARD "
                                        "ACCEPT [0:0]\n:cali-FORWARD - [0:0]\n:KUBE-FIREWALL - "
                                        "[0:0]\n" + "\n".join(rules) + "\nCOMMIT\n"),
    st.tuples(st.sampled_from(IPTABLES.splitlines()[5:-1]).flatmap(mutated),
              st.lists(rule_line, max_size=4)).map(
        lambda t: IPTABLES.replace("COMMIT", "\n".join(t[1]) + "\n" + t[0] + "\nCOMMIT")))
PACKETS = (firewall.Packet("tcp", "10.0.0.2", "10.0.0.1", 6443, "eth0"),
           firewall.Packet("udp", "10.244.1.5", "10.244.2.7", 53, "cali92d634f8f03", "tunl0"),
           firewall.Packet("icmp", "192.0.2.1", "192.0.2.2", None))


@fuzz(400)
@given(text=iptables_text)
def test_iptables_save(text):
    """kubeaccept.facts.iptables.parse_iptables_save: any text is a Ruleset or ParseError naming
    the line; firewall.evaluate on every chain of what parsed gives a Verdict for any packet."""
    try:
        rs = firewall.parse_iptables_save(text)
    except firewall.ParseError as exc:
        assert str(exc).startswith("line ")
        return
    for table in rs.tables.values():
        for chain in [*table.chains, "INPUT", "NOPE"]:
            for packet in PACKETS:
                verdict = firewall.evaluate(rs, chain, packet, table.name)
                assert verdict.action and verdict.describe()


NFT = {n: json.loads(fixture(f"nft/{n}.json")) for n in (
    "debian-default", "debian-forward-drop", "firewalld-nftables", "input-drops-kubelet")}
NFT_KEYS = ("nftables", "chain", "rule", "set", "map", "family", "table", "name", "hook", "prio",
            "policy", "handle", "expr", "elem", "match", "op", "left", "right", "payload",
            "protocol", "field", "meta", "key", "ct", "prefix", "addr", "len", "range", "jump",
            "goto", "target", "vmap", "data", "accept", "drop", "reject", "return", "counter",
            "ip", "inet", "input", "forward", "saddr", "daddr", "dport", "tcp", "iifname", "==",
            "!=", "in", "@cluster_nodes", "state", "established")
nft_leaf = json_leaf | st.sampled_from(NFT_KEYS)
nft_text = st.one_of(
    st.sampled_from(sorted(NFT)).flatmap(lambda n: mutated_json(NFT[n], NFT_KEYS)).map(json.dumps),
    json_tree(NFT_KEYS, nft_leaf, max_leaves=25).map(lambda d: json.dumps({"nftables": [d]})),
    st.sampled_from(sorted(NFT)).map(lambda n: fixture(f"nft/{n}.json")).flatmap(mutated),
    json_tree(NFT_KEYS, nft_leaf).map(json.dumps))
NFT_PACKETS = PACKETS + (firewall.Packet("tcp", "198.18.0.5", "198.18.0.1", 10250, "ens3"),)


@fuzz(500)
@given(text=nft_text)
@example(text='{"nftables": [{"chain": "x"}]}')
@example(text='{"nftables": [{"chain": {"hook": "input"}}, {"rule": {"handle": "x"}}]}')
@example(text='{"nftables": [{"chain": {"hook": "input"}}, {"rule": {"expr": [{"match": 1}]}}]}')
@example(text='{"nftables": [{"chain": {"hook": "input"}}, {"rule": {"expr": [{"match": {"op": null}}]}}]}')
@example(text="[" * 2000)
def test_nftables(text):
    """kubeaccept.facts.nftables.parse(`nft -j list ruleset`): any text is an NftRuleset or
    NftError; nftables.evaluate on what parsed gives a Verdict (or None: no base chain) for
    any packet, what it cannot decide listed as uncertain."""
    try:
        rs = nftables.parse(text)
    except nftables.NftError as exc:
        assert str(exc).startswith("nft -j list ruleset")
        return
    for hook in ("input", "forward", "output"):
        for packet in NFT_PACKETS:
            verdict = nftables.evaluate(rs, hook, packet, frozenset({"filter"}))
            assert verdict is None or verdict.action and verdict.describe()


# --- 7. ss: the listening sockets ---------------------------------------------------------------
SS = ('LISTEN 0      4096       127.0.0.1:10248      0.0.0.0:*    users:(("kubelet",pid=812,fd=20))\n'
      'LISTEN 0      4096               *:6443             *:*    users:(("kube-apiserver",pid=2,fd=3))\n'
      'LISTEN 0      4096    [::ffff:10.0.0.1]:2379      [::]:*    users:(("etcd",pid=77,fd=7))\n'
      'LISTEN 0      4096    [fe80::1%eth0]:10250      [::]:*\n'
      'UNCONN 0      0          0.0.0.0:8472       0.0.0.0:*')


@fuzz(200)
@given(tcp=text_like(SS) | st.sampled_from(("!missing ss", "Cannot open netlink socket"))
       | st.lists(st.lists(st.sampled_from(("LISTEN", "0", "*:", ":", "[::]:²", "1.2.3.4:٣",
                                           ":65536", "[", "]", "users:((\"x\",pid=²", "*:*"))
                           | token, max_size=7).map(" ".join)).map("\n".join),
       udp=text_like(SS), kube=st.sampled_from(((1, 33), (1, 18), None)))
@example(tcp="LISTEN 0 4096 0.0.0.0:²³ 0.0.0.0:*", udp="", kube=None)
def test_ss_listeners(tcp, udp, kube):
    """NodeFacts.listeners over `ss -Htlnp`/`ss -Hulnp` lines: any line is a Listener with an
    int port or skipped; the listening-ports check over them gives findings only."""
    f = facts(sections={"listen-tcp": tcp, "listen-udp": udp})
    for ln in f.listeners:
        assert isinstance(ln.port, int) and (ln.pid is None or isinstance(ln.pid, int))
    h = host(roles=(CONTROL_PLANE, WORKER))
    only_findings(judge("node_listening_ports", node=context(f, h, settings=Settings(kube_version=kube))))


# --- 8. etcdctl's JSON --------------------------------------------------------------------------
CPS = [host(f"cp{i}", f"10.0.0.{i}", (CONTROL_PLANE,)) for i in (1, 2, 3)]
ETCD_KEYS = ("members", "ID", "name", "peerURLs", "clientURLs", "endpoint", "health", "error",
             "Endpoint", "Status", "header", "member_id", "leader", "raftTerm")
MEMBERS = {"members": [{"ID": 17, "name": f"cp{i}", "peerURLs": [f"https://10.0.0.{i}:2380"]}
                       for i in (1, 2, 3)]}
STATUS = [{"Endpoint": f"https://10.0.0.{i}:2379", "Status": {
    "header": {"member_id": i}, "leader": 1, "raftTerm": 5}} for i in (1, 2, 3)]
HEALTH = [{"endpoint": f"https://10.0.0.{i}:2379", "health": i != 2} for i in (1, 2, 3)]
etcd_leaf = json_leaf | st.sampled_from(("https://10.0.0.1:2380", "http://[::1", "10.0.0.2",
                                         "https://[fe80::1]:2379", "cp1", ""))


def etcd_json(good):
    return st.one_of(mutated_json(good, ETCD_KEYS), json_tree(ETCD_KEYS, etcd_leaf)).map(
        json.dumps) | text_like(json.dumps(good)) | st.sampled_from(("", "[" * 2000))


etcd_view = st.tuples(etcd_json(MEMBERS), etcd_json(STATUS), etcd_json(HEALTH),
                      st.text(max_size=20)).map(lambda v: "\n".join((
                          "!etcdctl member list", v[0], "!stderr member list", v[3],
                          "!etcdctl endpoint status --cluster", v[1],
                          "!etcdctl endpoint health --cluster", v[2])))


@fuzz(300)
@given(views=st.lists(etcd_view | text_like("!no-etcdctl", "!etcdctl member list\n{}")
                      | st.sampled_from(("unreachable: timed out", None)), min_size=3, max_size=3))
@example(views=['!etcdctl member list\n{"members": 1}', None, None])
@example(views=['!etcdctl member list\n[1]', None, None])
@example(views=["!etcdctl member list\n" + json.dumps(MEMBERS)
                + '\n!etcdctl endpoint status --cluster\n[{"Status": []}]', None, None])
@example(views=["!etcdctl member list\n" + "[" * 2000, None, None])
def test_etcd_cluster(views):
    """kubeaccept.checks.etcd (_json, etcd_cluster) over etcdctl's member list, endpoint
    status and endpoint health JSON as gather.sh reports it (any JSON, any text): findings
    only: a malformed answer is a failing finding, never an exception."""
    node_facts = {}
    for h, v in zip(CPS, views, strict=True):
        if v is None or v.startswith("unreachable"):
            node_facts[h.name] = v or "ssh: connection refused"
        else:
            node_facts[h.name] = facts(h.name, etcd=v)
            for text in node_facts[h.name].etcd.values():
                _json(text)
    only_findings(judge("cluster_etcd", cluster=on_cluster(hosts=CPS, facts=node_facts), readyz=None))


# --- 9. inventories -------------------------------------------------------------------------------
INVENTORIES = {name: fixture(f"inventories/{path}") for name, path in (
    ("inventory.ini", "kubespray/sample/inventory.ini"),
    ("hosts", "kube-masters-workers/hosts"), ("hosts.ini", "kairen-kube-ansible/hosts.ini"),
    ("hosts.yaml", "jump-hosts/hosts.yaml"), ("hosts.yml", "openstack-bastion/hosts.yaml"),
    ("ci_inventory.yml", "kubespray-ci/ubuntu24-ha-separate-etcd/ci_inventory.yml"))}


@fuzz(40)
@given(name_text=st.sampled_from(sorted(INVENTORIES)).flatmap(
    lambda n: st.tuples(st.just(n), text_like(INVENTORIES[n]))),
    yaml_doc=st.none() | json_tree(("all", "children", "hosts", "vars", "kube_control_plane",
                                    "kube_node", "etcd", "cp1", "ansible_host", "ansible_port",
                                    "ansible_become", "ansible_user",
                                    "ansible_ssh_common_args")).map(json.dumps))
def test_inventory_files(name_text, yaml_doc):
    """kubeaccept.inventory.ansible.load_inventory(path): any YAML or INI text in an inventory file
    is an Inventory or InventoryError, whose message is the one usage line."""
    name, text = name_text
    with tempfile.TemporaryDirectory() as tmp:
        for filename, body in ((name, text), ("hosts.yaml", yaml_doc)):
            if body is None:
                continue
            path = Path(tmp) / filename
            path.write_text(body)
            try:
                inv = load_inventory(path)
            except InventoryError as exc:
                assert str(exc).strip() and "\n" not in str(exc)
            else:
                assert inv.hosts and all(isinstance(h.port, int) for h in inv.hosts)


@fuzz(200)
@given(value=st.lists(st.sampled_from(("ssh://", "paramiko://", "root@", "cp1", ":22", ":²",
                                        ":99999", "?roles=control_plane+etcd", "&sudo=maybe",
                                        "?x=1", "[::1]", "[", ",", "/x", "%zz")) | token,
                      max_size=6).map("".join))
@example(value="[")
def test_host_specs(value):
    """kubeaccept.inventory.ansible.parse_host_specs: any --hosts value that is not an inventory path
    is an Inventory or InventoryError (one usage line)."""
    try:
        inv = parse_host_specs(value)
    except InventoryError as exc:
        assert "\n" not in str(exc)
    else:
        assert inv.hosts


# --- 10. swap at boot -----------------------------------------------------------------------------
SWAP_UNIT = fixture("swap/swapfile2.swap")
ZRAM = fixture("swap/fedora-zram-generator.conf")
boot_line = st.one_of(
    st.tuples(st.sampled_from(("unit", "link", "zram-conf")),
              st.sampled_from(("/etc/systemd/system/swapfile2.swap",
                               "/etc/systemd/system/swap.target.wants/swapfile2.swap",
                               "/etc/systemd/system/dev-zram0.swap", "swapfile2.swap",
                               "/usr/lib/systemd/zram-generator.conf",
                               "/etc/systemd/zram-generator.conf.d/x.conf", "x.conf.d/y.conf",
                               "/swap.target.wants/a.swap", "", "/")) | token,
              st.sampled_from(("/dev/null", "/etc/systemd/system/swapfile2.swap"))
              | text_like(SWAP_UNIT, ZRAM).map(b64) | token).map(" ".join),
    st.sampled_from(("zram-generator", "cmdline systemd.swap=0 fstab", "cmdline systemd.zram=0",
                     "meminfo MemTotal: 8013220 kB", "meminfo MemTotal:", "cmdline systemd.zram",
                     "zram-null /etc/systemd/zram-generator.conf",
                     "generator-link /etc/systemd/system-generators/zram-generator /dev/null",
                     "disk /dev/disk/by-uuid/8e2f1b4c-7a3d-4e5f-9b6a-1c2d3e4f5a6b",
                     "exists /swapfile2", "zswap Y", "zswap", "unit", "link"))
    | junk_line)
fstab_text = text_like(fixture("swap/debian-installer.fstab"), fixture("swap/ubuntu-installer.fstab"),
                       "UUID=x none swap sw 0 0\n/swap.img none swap noauto\n\\040 x swap\n")


@fuzz(300)
@given(boot=st.none() | st.lists(boot_line, max_size=8).map("\n".join), fstab=fstab_text,
       swaps=st.sampled_from(("Filename Type Size Used Priority", "", "x")) | text_like(
           "Filename Type Size Used Priority\n/swap.img file 2097148 0 -2"),
       kubelet=st.none() | kubelet_text)
@example(boot="unit swapfile2.swap " + b64(SWAP_UNIT), fstab="", swaps="", kubelet=None)
@example(boot="zram-conf x.conf " + b64(ZRAM), fstab="", swaps="", kubelet=None)
@example(boot=None, fstab="/swap none swap sw", swaps="", kubelet="memorySwap: 1\nfailSwapOn: false")
def test_swap(boot, fstab, swaps, kubelet):
    """kubeaccept.facts.swapboot.parse (the swap-boot section), checks.swap.fstab_entries
    (/etc/fstab) and the node_swap check over them and kubelet's config: findings only."""
    for number, line, source, options in swap.fstab_entries(fstab):
        assert number >= 1 and line and isinstance(source, str) and options
    parsed = parse_swap_boot(boot)
    if parsed is not None:
        parsed.zram()
    services = boot and boot.replace("zram-conf", "svc-unit").replace("link ", "svc-want ")
    parse_swap_services(services)
    f = facts(sections={"swaps": swaps, **({"swap-boot": boot} if boot is not None else {}),
                        **({"swap-services": services} if services is not None else {})},
              files={"/etc/fstab": fstab, "/var/lib/kubelet/config.yaml": kubelet})
    only_findings(judge("node_swap", node=context(f)))


@pytest.mark.parametrize("name", sorted(NFT))
def test_fuzz_seeds_are_valid(name):
    """The real artifacts the mutations start from parse cleanly (else the fuzzer would only
    ever test the first error path)."""
    assert nftables.parse(json.dumps(NFT[name])).chains
    assert firewall.parse_iptables_save(IPTABLES).tables
    assert parse("n1", "FIXTURE", FLANNEL, "", 0).sysctls
