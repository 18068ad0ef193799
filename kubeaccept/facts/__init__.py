"""A node's facts: gathered by ONE remote command (gather.sh), parsed here, read by checks."""

from __future__ import annotations

import base64
import math
import re
import secrets
import shlex
from dataclasses import dataclass, field
from functools import cached_property
from importlib.resources import files

from kubeaccept.facts import dnswire
from kubeaccept.model.hosts import Host, as_root

SCRIPT = (files(__package__) / "gather.sh").read_text()
BACKSTOP_MARGIN = 3  # seconds the node waits past the runner's command timeout
# GNU timeout's exit status when it stopped the command (TERM); 137 (KILL) is timeout's after
# -k too, but also any other SIGKILL (the OOM killer): said as such
TIMED_OUT = {124: "the node stopped it at its time limit (timeout sent TERM, exit status "
                  "124): a command on {host} hangs",
             137: "it was killed (exit status 137: SIGKILL, from timeout 5 s past its time "
                  "limit or from the kernel's OOM killer): a command on {host} hangs or ran "
                  "out of memory"}


class FactsError(Exception):
    """The facts command ran but did not produce a complete document."""


def command(host: Host, token: str, probe_timeout: float, probes: list[str],
            dns: str | None = None, command_timeout: float = 60) -> tuple[str, bytes]:
    """The shell command line for `host`, and what to send on its standard input."""
    args = " ".join(shlex.quote(a) for a in (token, f"{probe_timeout:g}", dns or "-", *probes))
    # The node ends the script itself shortly after the command timeout (and KILLs it 5 s
    # later): a command hung on the node, or a runner gone (Ctrl-C, a dead connection), leaves
    # nothing running there. Without a terminal, sshd does not signal a session's command.
    # The margin lets the runner's own deadline speak first: same cause, one message.
    limit = max(1, math.ceil(command_timeout)) + BACKSTOP_MARGIN
    return as_root(host, f"timeout -k 5 {limit} sh -c {shlex.quote(SCRIPT)} kubeaccept-facts "
                   f"{args}")


def new_token() -> str:
    return secrets.token_hex(8)


def parse(host: str, token: str, stdout: str, stderr: str, exit_status: int) -> NodeFacts:
    marker = f"@@{token} "
    sections: dict[str, str] = {}
    name = None
    body: list[str] = []
    for line in stdout.split("\n"):
        if line.startswith(marker):
            if name is not None:
                sections[name] = "\n".join(body).removesuffix("\n")
            name, body = line[len(marker):], []
        elif name is not None:
            body.append(line)
    if name is not None:
        sections[name] = "\n".join(body)
    if "end" not in sections:
        if exit_status in TIMED_OUT:
            detail = TIMED_OUT[exit_status].format(host=host)
        else:
            detail = (stderr.strip().splitlines() or [f"exit status {exit_status}"])[-1]
        raise FactsError(f"facts command did not complete on {host}: {detail}")
    return NodeFacts(host, sections)


@dataclass(frozen=True)
class FileFact:
    path: str
    exists: bool
    text: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class Listener:
    proto: str
    address: str
    port: int
    process: str  # "" when ss could not tell (not root)
    pid: int | None


_USERS = re.compile(r'\(\("([^"]+)",pid=(\d+)')


def number(text: str) -> int | None:
    """A decimal number as the tools on the node print it; None for anything else (str.isdigit
    also takes "²", which int() refuses)."""
    return int(text) if text.isascii() and text.isdigit() else None


@dataclass
class NodeFacts:
    host: str
    sections: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"host": self.host, "sections": self.sections}

    @classmethod
    def from_json(cls, data: dict) -> NodeFacts:
        return cls(data["host"], dict(data["sections"]))

    def section(self, name: str) -> str | None:
        return self.sections.get(name)

    def memo(self, key: str, make):
        """A value derived from these facts alone, computed once: one NodeFacts serves every
        test of the run (e.g. the parsed firewall rules, read by two checks)."""
        cache = self.__dict__.setdefault("_memo", {})
        if key not in cache:
            cache[key] = make()
        return cache[key]

    def missing(self, name: str) -> str | None:
        """The command the facts script did not find for this section ("!missing TOOL")."""
        text = (self.section(name) or "").strip()
        return text.split()[1] if text.startswith("!missing ") and len(text.split()) > 1 \
            else None

    @cached_property
    def sysctls(self) -> dict[str, str]:
        out = {}
        for line in (self.section("sysctl") or "").splitlines():
            key, _, value = line.partition(" ")
            if key:
                out[key] = value.strip()
        return out

    @cached_property
    def swaps(self) -> list[str]:
        """Active swap areas: /proc/swaps without its header."""
        lines = (self.section("swaps") or "").splitlines()
        return [ln for ln in lines[1:] if ln.strip()]

    def file(self, path: str) -> FileFact:
        raw = self.sections.get(f"file {path}")
        if raw is None or raw.strip() == "!missing":
            return FileFact(path, False)
        if raw.strip() == "!unreadable":
            return FileFact(path, True, error="unreadable (run as root: ansible_become=true)")
        try:
            return FileFact(path, True, base64.b64decode(raw.strip()).decode(errors="replace"))
        except ValueError as exc:
            return FileFact(path, True, error=f"undecodable: {exc}")

    @cached_property
    def runtime_sockets(self) -> list[str]:
        return (self.section("sockets") or "").split()

    @cached_property
    def listeners(self) -> list[Listener]:
        out = []
        for proto in ("tcp", "udp"):
            for line in (self.section(f"listen-{proto}") or "").splitlines():
                cols = line.split()
                if len(cols) < 5 or ":" not in cols[3]:
                    continue
                address, _, port = cols[3].rpartition(":")
                if number(port) is None:
                    continue
                m = _USERS.search(line)
                out.append(Listener(proto, address.split("%")[0].strip("[]"), number(port),
                                    m.group(1) if m else "", int(m.group(2)) if m else None))
        return out

    @cached_property
    def addresses(self) -> list[tuple[str, str]]:
        """(interface, address) of every IPv4 address."""
        out = []
        for line in (self.section("addresses") or "").splitlines():
            cols = line.split()
            if len(cols) >= 4 and cols[2] == "inet":
                out.append((cols[1], cols[3].split("/")[0]))
        return out

    @cached_property
    def links(self) -> list[str]:
        out = []
        for line in (self.section("links") or "").splitlines():
            cols = line.split(":", 2)
            if len(cols) >= 2:
                out.append(cols[1].strip().split("@")[0])
        return out

    def iface_of(self, address: str) -> str | None:
        return next((i for i, a in self.addresses if a == address), None)

    @cached_property
    def probes(self) -> dict[str, str]:
        out = {}
        for line in (self.section("probes") or "").splitlines():
            target, _, result = line.partition(" ")
            if target:
                out[target] = result
        return out

    @cached_property
    def etcd(self) -> dict[str, str] | None:
        """etcdctl's answers on this node: query ("member list", ...) -> output; None when the
        node has no kubeadm etcd; {"!no-etcdctl": ""} when there is nothing to ask with."""
        text = self.section("etcd")
        if text is None:
            return None
        out, query = {}, None
        for line in text.splitlines():
            if line.startswith("!"):
                query = line[1:].removeprefix("etcdctl ")
                out[query] = ""
            elif query is not None:
                out[query] += line
        return out

    @cached_property
    def certificates(self) -> dict[str, bytes]:
        """Path -> PEM of each certificate found (see gather.sh for which)."""
        out = {}
        for line in (self.section("certificates") or "").splitlines():
            path, _, data = line.partition(" ")
            try:
                out[path] = base64.b64decode(data.strip())
            except ValueError:
                out[path] = b""
        return out

    @cached_property
    def kubeconfig_servers(self) -> dict[str, str]:
        """Path of each kubeadm kubeconfig on the node -> its `server:` ("" when it has none);
        None of them on the node: {}."""
        out = {}
        for line in (self.section("kubeconfigs") or "").splitlines():
            path, _, server = line.partition(" ")
            if path.startswith("/"):
                out[path] = server.strip().strip("\"'")
        return out

    @cached_property
    def dns(self) -> dict | None:
        """The cluster-DNS query: {"tool", "command", "rc", "output"}; tool "udp" (bash's
        /dev/udp; output: the decoded reply as `dig +short` prints it), "dig", "nslookup",
        or "" when the node has none of them; None when it was not asked."""
        text = self.section("dns")
        if text is None:
            return None
        out = {"tool": "", "command": "", "rc": -1, "output": ""}
        lines = []
        for line in text.splitlines():
            if line.startswith("!cmd "):
                out["command"] = line[5:]
                out["tool"] = out["command"].split()[0]
            elif line.startswith("!rc "):
                rc = number(line[4:])
                out["rc"] = -1 if rc is None else rc
            else:
                lines.append(line)
        if out["tool"] == "udp":  # "udp SERVER NAME TIMEOUT": the reply's bytes, decoded here
            _, server, name, timeout = (out["command"].split() + ["?"] * 4)[:4]
            out["command"] = (f"A {name} to {server}:53/udp, 1 try, {timeout} s (as `dig "
                              f"+tries=1 @{server} {name}` asks)")
            lines = dnswire.tell(lines, out["rc"], server, timeout)
        out["output"] = "\n".join(lines).strip()
        return out

    @cached_property
    def kube_version(self) -> tuple[int, int] | None:
        """From the kube-apiserver static pod's image tag, else `kubelet --version`."""
        manifest = self.file("/etc/kubernetes/manifests/kube-apiserver.yaml").text or ""
        for text in (manifest, self.section("kubelet-version") or ""):
            m = re.search(r"(?:kube-apiserver:|Kubernetes )v(\d+)\.(\d+)", text)
            if m:
                return int(m.group(1)), int(m.group(2))
        return None

    @cached_property
    def bridges(self) -> dict[str, list[str]] | None:
        """Linux bridges -> their ports, from sysfs: the kernel gives a bridge a `bridge/`
        directory and a `brif/<port>` link per port (linux/if_bridge.h). None: not gathered."""
        text = self.section("bridges")
        if text is None:
            return None
        out: dict[str, list[str]] = {}
        for line in text.splitlines():
            parts = line.strip().removeprefix("/sys/class/net/").split("/")
            if len(parts) == 2 and parts[1] == "bridge":
                out.setdefault(parts[0], [])
            elif len(parts) == 3 and parts[1] == "brif":
                out.setdefault(parts[0], []).append(parts[2])
        return out

    @cached_property
    def runtime_files(self) -> dict[str, FileFact]:
        """The runtime's other config files gathered (containerd's *.toml and conf.d, dockerd's
        systemd unit, drop-ins and environment files): path -> FileFact. The key "!truncated"
        is present when more files existed than were gathered."""
        out: dict[str, FileFact] = {}
        for line in (self.section("runtime-files") or "").splitlines():
            path, _, data = line.strip().partition(" ")
            if path == "!truncated":
                out[path] = FileFact(path, False)
            elif data in ("!unreadable", "!too-large"):
                why = ("unreadable (run as root: ansible_become=true)" if data == "!unreadable"
                       else "larger than 256 KiB, not gathered")
                out[path] = FileFact(path, True, error=why)
            elif path:
                try:
                    text = base64.b64decode(data).decode(errors="replace")
                    out[path] = FileFact(path, True, text)
                except ValueError as exc:
                    out[path] = FileFact(path, True, error=f"undecodable: {exc}")
        return out

    def file_bytes(self, path: str) -> bytes | None:
        """A gathered file's exact bytes (encodings, byte order marks); None when absent."""
        raw = self.sections.get(f"file {path}")
        if raw is None or raw.strip().startswith("!"):
            for line in (self.section("runtime-files") or "").splitlines():
                if line.startswith(path + " ") and not line[len(path) + 1:].startswith("!"):
                    raw = line[len(path) + 1:]
                    break
            else:
                return None
        try:
            return base64.b64decode(raw.strip())
        except ValueError:
            return None

    @cached_property
    def runtime_versions(self) -> dict[str, tuple[int, int, int]]:
        """containerd, dockerd, cri-dockerd, crio -> version, from their `--version`."""
        out = {}
        for line in (self.section("runtime-versions") or "").splitlines():
            program, _, text = line.partition(" ")
            m = re.search(r"\bv?(\d+)\.(\d+)\.(\d+)", text)
            if program and m:
                out[program] = (int(m.group(1)), int(m.group(2)), int(m.group(3)))
        return out

    @cached_property
    def cni_dir(self):
        """/etc/cni/net.d as gathered (kubeaccept.facts.cni.CniDir); None when the node's
        facts predate the `cni-conf` section."""
        from kubeaccept.facts.cni import parse as parse_cni_dir
        return parse_cni_dir(self.section("cni-conf"))

    @cached_property
    def swap_boot(self):
        """What systemd will do about swap at boot (kubeaccept.facts.swapboot); None when the
        node's facts predate the `swap-boot` section."""
        from kubeaccept.facts.swapboot import parse as parse_swap_boot
        return parse_swap_boot(self.section("swap-boot"))

    @cached_property
    def swap_services(self):
        """Boot services that turn swap on (kubeaccept.facts.swapservices); None when the
        node's facts predate the `swap-services` section."""
        from kubeaccept.facts.swapservices import parse as parse_swap_services
        return parse_swap_services(self.section("swap-services"))
