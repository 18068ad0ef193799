"""OpenSSH command-line options as `ssh` itself reads them, for Ansible's ssh arguments.

Ansible's ssh connection runs `ssh <ssh_args> [-o StrictHostKeyChecking=no] -o Port=.. -o
User=.. <ssh_common_args> <ssh_extra_args> host`. For every option OpenSSH keeps the FIRST
value it is given (`ssh -G` shows it), and everything inside a ProxyCommand belongs to the
proxy's own ssh, never to the target.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass

# -F's file, kept with the options under a name no ssh option has
CONFIG_FILE = "-f"
# ssh_config read when no -F is given, in ssh's order (the first value of an option wins)
CONFIG_FILES = ("~/.ssh/config", "/etc/ssh/ssh_config")
# what kubeaccept takes from ssh_config: how to reach and verify the host
CONFIG_KEYS = ("hostname", "user", "port", "identityfile", "userknownhostsfile",
               "stricthostkeychecking", "proxyjump", "proxycommand")
# Command-line flags that set the same thing as an -o option.
_FLAG_OPTIONS = {"-p": "port", "-l": "user", "-J": "proxyjump", "-i": "identityfile",
                 "-F": CONFIG_FILE}
# Flags of ssh(1) that take an argument we do not use (so it is not read as an option).
_FLAGS_WITH_ARG = set("BbcDEeFIiJLlmOoPpQRSWw")


class SshArgsError(ValueError):
    """ssh itself would refuse these arguments; str() says why."""


@dataclass(frozen=True)
class SshOptions:
    options: dict[str, str]          # lower-case option name -> first value given

    def get(self, name: str) -> str | None:
        return self.options.get(name.lower())

    @property
    def proxy_command(self) -> str | None:
        value = self.get("proxycommand")
        return None if value is None or value.lower() == "none" else value

    @property
    def proxy_jump(self) -> str | None:
        value = self.get("proxyjump")
        return None if value is None or value.lower() == "none" else value


def split(argstring: str | None) -> list[str]:
    """Split as Ansible does (shlex), dropping empty words."""
    return [w.strip() for w in shlex.split(argstring or "") if w.strip()]


def _option(text: str) -> tuple[str, str]:
    """`Key=value`, `Key value` or `Key = value`, as ssh_config lines are read."""
    m = re.match(r"\s*([^\s=]+)[\s=]*(.*)$", text, re.S)
    if not m:
        return "", ""
    name, value = m.group(1), m.group(2).strip()
    if name.lower() != "proxycommand":  # ProxyCommand keeps the rest of the line verbatim
        value = value.strip("\"'")
    return name, value


def parse(args: list[str]) -> SshOptions:
    """The options ssh would use given these arguments (first value wins, as in ssh_config)."""
    options: dict[str, str] = {}

    def keep(name: str, value: str, from_j: bool = False) -> None:
        name = name.lower()
        if name in ("proxycommand", "proxyjump") and (
                "proxycommand" in options or "proxyjump" in options):
            # Whichever of the two comes first wins; ssh refuses -J after a ProxyCommand.
            if from_j and "proxycommand" in options:
                raise SshArgsError("ssh refuses -J after a ProxyCommand "
                                   "(\"Cannot specify -J with ProxyCommand\")")
            return
        options.setdefault(name, value)

    i = 0
    while i < len(args):
        word = args[i]
        i += 1
        if not word.startswith("-") or word.startswith("--"):
            continue
        for pos in range(1, len(word)):  # a cluster like -qo Key=value
            flag = word[pos]
            if flag not in _FLAGS_WITH_ARG:
                continue
            value = word[pos + 1:]
            if not value and i < len(args):
                value, i = args[i], i + 1
            if flag == "o":
                keep(*_option(value))
            elif f"-{flag}" in _FLAG_OPTIONS:
                keep(_FLAG_OPTIONS[f"-{flag}"], value.strip(), from_j=flag == "J")
            break
    return SshOptions(options)


def with_config(opts: SshOptions, host: str) -> SshOptions:
    """The options ssh would use for `host` (the name given on its command line, ansible_host):
    the command line's first, then ssh_config's (-F's file, else ~/.ssh/config and
    /etc/ssh/ssh_config, Host and Match blocks as ssh matches them; paramiko reads them)."""
    import paramiko

    given = opts.get(CONFIG_FILE)
    files = [given] if given else CONFIG_FILES
    options = dict(opts.options)
    proxy_given = "proxycommand" in options or "proxyjump" in options
    for path in files:
        path = os.path.expanduser(path)
        if not given and not os.path.isfile(path):
            continue
        try:
            found = paramiko.SSHConfig.from_path(path).lookup(host)
        except Exception as exc:  # noqa: BLE001 - paramiko raises many types for one bad line
            raise SshArgsError(f"ssh config {path}: {exc}") from None
        for key in CONFIG_KEYS:
            value = found.get(key)
            if value is None or key in options:
                continue
            if key in ("proxycommand", "proxyjump"):
                if proxy_given:
                    continue  # the command line's proxy wins, and only one of the two counts
                proxy_given = True
            if key == "hostname" and value == host:
                continue  # paramiko's default, not the file's
            options[key] = value[0] if isinstance(value, list) else str(value)
    return SshOptions(options)


def expand_proxy_command(command: str, host: str, port: int, user: str,
                         original: str) -> str:
    """ssh's %-tokens of ProxyCommand: %h host, %p port, %r user, %n the name as given, %%."""
    out, i = [], 0
    tokens = {"h": host, "p": str(port), "r": user, "n": original, "%": "%"}
    while i < len(command):
        ch = command[i]
        if ch == "%" and i + 1 < len(command) and command[i + 1] in tokens:
            out.append(tokens[command[i + 1]])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def proxy_argv(expanded: str) -> list[str]:
    """How ssh starts a ProxyCommand: `$SHELL -c "exec <command>"`."""
    return [os.environ.get("SHELL") or "/bin/sh", "-c", f"exec {expanded}"]


@dataclass(frozen=True)
class Jump:
    user: str | None
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.user + '@' if self.user else ''}{self.host}:{self.port}"


def parse_jumps(spec: str) -> list[Jump]:
    """ProxyJump / -J: [user@]host[:port] or ssh://[user@]host[:port], comma-separated."""
    jumps = []
    for part in (p.strip() for p in spec.split(",")):
        text = part.removeprefix("ssh://")
        user, _, hostport = text.rpartition("@")
        host, port = hostport, "22"
        if hostport.startswith("["):  # [v6 address]:port
            host, _, rest = hostport[1:].partition("]")
            port = rest.removeprefix(":") or "22"
        elif hostport.count(":") == 1:
            host, port = hostport.split(":")
        if not host or not port.isdigit():
            raise SshArgsError(f"ProxyJump {spec!r}: cannot read {part!r} as [user@]host[:port]")
        jumps.append(Jump(user or None, host, int(port)))
    return jumps
