"""Everything the non-destructive suite may run on a node, in one place: the command lines it
sends over SSH, and every program those lines start, with the arguments it may get. Each is
read-only. The lab's audit (selftests/lab/test_safety.py) traces every exec under each host's
sshd during a suite run and fails on anything not allowed here."""

from __future__ import annotations

import re
import shlex

from kubeaccept.facts import SCRIPT

# sudo as the inventory asks for it (ansible_become): never a password prompt
_SUDO = r"(?:sudo (?:-n|-S -p '') -- )?"
ADMIN_CONF = "/etc/kubernetes/admin.conf"

# The lines sent over SSH: the facts script (one per host per run) and, for the API checks
# without --kubeconfig, the admin kubeconfig read on one control plane.
REMOTE_LINES: dict[str, re.Pattern] = {
    "facts": re.compile(_SUDO + r"timeout -k 5 \d+ "
                        + re.escape(f"sh -c {shlex.quote(SCRIPT)} kubeaccept-facts ")
                        + r"[0-9a-f]{16} [0-9.]+ (?:-|[0-9a-fA-F.:]+)(?: [0-9a-fA-F.:\[\]]+:\d+)*",
                        re.S),
    "admin.conf": re.compile(_SUDO + re.escape(f"cat {ADMIN_CONF}")),
}

_ANY = re.compile(r".*", re.S)
_ETCDCTL = (r"--endpoints=https://127\.0\.0\.1:2379 --cacert=\S+ --cert=\S+ --key=\S+ "
            r"--dial-timeout=2s --command-timeout=4s -w json "
            r"(?:member list|endpoint status --cluster|endpoint health --cluster)")
_ADDR = r"[0-9a-fA-F.:\[\]]+"

# The facts script's two awk programs, as written in it: swap sources from fstab and .swap
# units, and ss's lines split by protocol (-v t=TOKEN, the section marker)
_AWK_PROGRAMS = re.findall(r"awk (?:-v t=\"\$tok\" )?'(.*?)'", SCRIPT, re.S)
_AWK = (re.escape(_AWK_PROGRAMS[0]) + r"(?: /etc/fstab| /(?:etc|run)/systemd/system/\S*\.swap)*",
        r"-v t=[0-9a-f]{16} " + re.escape(_AWK_PROGRAMS[1]))

# program -> the arguments (joined by spaces) it may be run with
PROGRAMS: dict[str, re.Pattern] = {name: re.compile(rx, re.S) for name, rx in {
    # readers and text tools of the facts script (never with an output or in-place flag)
    "cat": r"[^>]*", "head": r"-(?:n \d+|c \d+)(?: \S+)?", "tail": r"-n \d+",
    "tr": r".*", "base64": r"(?:-w0)?", "wc": r"-c", "ls": r"-d .*", "readlink": r"\S+",
    "stat": r"-fc %T /sys/fs/cgroup", "grep": r"-v .*", "id": r"-u", "uname": r"-r",
    "awk": "|".join(_AWK),
    "sed": r"(?!.*(?:^| )-i)(?:-E |-n )?.*", "printf": _ANY.pattern, "echo": _ANY.pattern,
    "xargs": r"-r -P \d+ -n 1 sh -c .*", "timeout": r"(?:-k \d+ )?\d+ .*",
    "nc": r"-z -w \S+ " + _ADDR + r" \d+",
    # a scratch file for etcdctl's stderr, removed right after
    "mktemp": r"", "rm": r"-f /tmp/tmp\.\w+",
    # state, never changed
    "ip": r"-o (?:-4 addr|link) show", "ss": r"-H(?:tu|[tu])lnp",
    "iptables-save": r"", "iptables-legacy-save": r"", "nft": r"-j list ruleset",
    "firewall-cmd": r"--state|--get-default-zone|--list-all-zones|--list-all-policies",
    "etcdctl": _ETCDCTL,
    "crictl": r"ps -q --name \^etcd\$|exec \w+ etcdctl " + _ETCDCTL,
    "kubelet": r"--version", "containerd": r"--version", "dockerd": r"--version",
    "cri-dockerd": r"--version", "crio": r"--version",
    "dig": r"\+time=\d+ \+tries=1 \+short @" + _ADDR + r" [\w.-]+",
    "nslookup": r"-timeout=\d+ -retry=0 [\w.-]+ " + _ADDR,
    # the cluster-DNS query: the query's bytes into the UDP socket (fd 3), its reply out in hex
    "dd": r"bs=512 count=1 iflag=fullblock status=none|bs=4096 count=1 status=none",
    "od": r"-An -tx1 -v",
    "sudo": r"(?:-n|-S -p ) -- .*",
}.items()}

# What the SSH server itself runs for a session: not the suite's doing
SSH_SERVER = {"sshd", "sshd-session", "sshd-auth"}


def remote_line(line: str) -> str | None:
    """The name of the allowed remote line `line` is, or None."""
    return next((name for name, rx in REMOTE_LINES.items() if rx.fullmatch(line)), None)


# the facts script's TCP probe (see gather.sh), run by xargs as `sh -c PROBE TIMEOUT TARGET`
PROBE = re.search(r"\nprobe='(.*?)'\n", SCRIPT, re.S).group(1)
# its DNS query, run as `bash -c UDP SERVER QUERY`
UDP = re.search(r"\n *udp='(.*?)'\n", SCRIPT, re.S).group(1)
_TCP = re.compile(r"exec 3<>/dev/tcp/" + _ADDR + r"/\d+")
SHELLS = {"sh", "bash", "dash", "zsh", "ksh"}


def _shell(name: str, args: list[str]) -> str | None:
    """A shell may run: the session's line (an allowed remote line), the facts script, its
    probe, or bash's /dev/tcp connect."""
    if len(args) < 2 or args[0] != "-c":
        return f"{name} {args[:1]!r}: only `-c` with an allowed script"
    code = args[1]
    if remote_line(code) or code in (SCRIPT, PROBE) or (
            name == "bash" and (_TCP.fullmatch(code) or code == UDP)):
        return None
    return f"{name} -c {code[:80]!r}: not an allowed script"


def program(argv: list[str]) -> str | None:
    """Why `argv` is not allowed, or None if it is."""
    if not argv:
        return "empty argv"
    name = argv[0].rsplit("/", 1)[-1]
    if name in SHELLS:
        return _shell(name, argv[1:])
    rx = PROGRAMS.get(name)
    if rx is None:
        return f"{name} is not on the allow-list"
    if not rx.fullmatch(" ".join(argv[1:])):
        return f"{name} with arguments {argv[1:]!r} is not allowed"
    return None
