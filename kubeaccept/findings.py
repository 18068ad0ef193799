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


def passed(check_id: str, subject: str, observed: str, expected: str, *evidence: str) -> Finding:
    return Finding(check_id, subject, True, observed, expected, evidence=tuple(evidence))
