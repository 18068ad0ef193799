"""What a check says about one subject: a Finding."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Finding:
    check_id: str
    subject: str  # host, or host:detail (an interface, a port, a file)
    ok: bool
    observed: str
    expected: str
    why: str = ""  # the failure it leads to, quoting the field report where there is one
    fix: str = ""
    evidence: tuple[str, ...] = field(default_factory=tuple)  # command / file / value seen
    note: str = ""  # information worth showing even when the finding passes
    # not judged: the host it needs could not be logged into (the test errors, not fails,
    # unless the check found a real problem as well)
    unreachable: bool = False


def passed(check_id: str, subject: str, observed: str, expected: str, *evidence: str) -> Finding:
    return Finding(check_id, subject, True, observed, expected, evidence=tuple(evidence))


def not_checked(check_id: str, subject: str, host: str, error: str) -> Finding:
    """A subject that could not be judged because `host` gave no facts (`error`)."""
    return Finding(check_id, subject, False, f"{host}: {error}", "the host's facts",
                   unreachable=True)
