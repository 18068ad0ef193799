"""What a check says about one subject: a Finding."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Finding:
    subject: str  # host, or host:detail (an interface, a port, a file)
    ok: bool
    observed: str
    expected: str
    why: str = ""  # the failure it leads to, quoting the field report where there is one
    fix: str = ""
    evidence: tuple[str, ...] = field(default_factory=tuple)  # command / file / value seen
    note: str = ""  # information worth showing even when the finding passes
    # Why the subject was not judged: "unreachable" (its host could not be logged into) or
    # "missing tool" (a command the check reads is not installed). A test whose only failures
    # are unjudged errors instead of failing.
    unjudged: str = ""
    # The check that judged it: stamped by the registry's decorator on what a check returns
    # (a check never writes its own id).
    check_id: str = ""


def passed(subject: str, observed: str, expected: str, *evidence: str,
           check_id: str = "") -> Finding:
    return Finding(subject, True, observed, expected, evidence=tuple(evidence),
                   check_id=check_id)


def not_checked(subject: str, host: str, error: str) -> Finding:
    """A subject that could not be judged because `host` gave no facts (`error`)."""
    return Finding(subject, False, f"{host}: {error}", "the host's facts",
                   unjudged="unreachable")


# the Debian package that brings each command the facts script needs
PACKAGES = {"ss": "iproute2", "ip": "iproute2", "iptables-save": "iptables",
            "dig": "bind9-dnsutils", "etcdctl": "etcd-client"}


def needs_tool(check_id: str, host: str, tool: str, purpose: str) -> Finding:
    """A check that could not judge `host` because `tool` is not installed there."""
    package = PACKAGES.get(tool, tool)
    return Finding(f"{host}:{tool}", False,
                   f"{host}: {tool} is not installed (package {package}); {check_id} needs it "
                   f"{purpose}", f"{tool} on the node", fix=f"install {package} on {host}",
                   unjudged="missing tool", check_id=check_id)


# A finding as JSON: findings.json, and the record each test's report carries from xdist's
# workers to the controller.
def finding_json(f: Finding) -> dict:
    d = {"check_id": f.check_id}  # first, as findings.json has always had it
    d.update((k.name, getattr(f, k.name)) for k in dataclasses.fields(f))
    d["evidence"] = list(f.evidence)
    return d


def finding_from_json(d: dict) -> Finding:
    return Finding(**{**d, "evidence": tuple(d.get("evidence", ()))})
