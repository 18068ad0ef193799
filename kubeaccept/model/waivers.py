"""Known exceptions (`--waivers=FILE`): a failing check that an operator accepted for a while,
with a reason, an owner and an end date. Like kubeadm's --ignore-preflight-errors, but each
one auditable: a waived failure is reported as waived (not passed), a waiver past its date
no longer waives and says so, one that matched nothing is listed as stale.

    waivers:
      - check: node_swap_off        # a check id or a pattern (fnmatch: node_*)
        host: w*                    # a host name or pattern; "cluster" for the whole cluster;
                                    # default "*"
        reason: swap kept on the GPU nodes until their RAM upgrade (TICKET-123)
        owner: platform-team@example.com
        expires: 2027-01-31         # waives through this day (UTC), not after
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

KEYS = ("check", "host", "reason", "owner", "expires")
REQUIRED = ("check", "reason", "owner", "expires")


class WaiverError(ValueError):
    """str(): `FILE:LINE: what is wrong and what to write instead`."""


@dataclass(frozen=True)
class Waiver:
    check: str
    host: str
    reason: str
    owner: str
    expires: dt.date
    where: str  # FILE:LINE of the entry

    def covers(self, check: str, hosts: Iterable[str]) -> bool:
        """Whether it names this check and every host the failure is about."""
        hosts = list(hosts)
        return (fnmatch.fnmatchcase(check, self.check) and bool(hosts)
                and all(fnmatch.fnmatchcase(h, self.host) for h in hosts))

    def expired(self, today: dt.date) -> bool:
        return today > self.expires

    def describe(self) -> str:
        return (f"{self.where}: {self.check} on {self.host}: {self.reason} (owner "
                f"{self.owner}, until {self.expires.isoformat()})")

    def to_json(self) -> dict:
        return {"where": self.where, "check": self.check, "host": self.host,
                "reason": self.reason, "owner": self.owner,
                "expires": self.expires.isoformat()}


def today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def load(path: Path) -> list[Waiver]:
    """The file's waivers; WaiverError naming the file and line of the first mistake."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise WaiverError(f"{path}: cannot read the waiver file: {exc.strerror}") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise WaiverError(f"{path}:{line}: not YAML: {problem}") from None
    if root is None:
        return []
    if isinstance(root, yaml.MappingNode):
        top = {k.value: v for k, v in root.value if isinstance(k, yaml.ScalarNode)}
        if set(top) != {"waivers"}:
            raise WaiverError(f"{path}:{root.start_mark.line + 1}: expected a list of waivers "
                              "under `waivers:` (nothing else at the top)")
        root = top["waivers"]
    if not isinstance(root, yaml.SequenceNode):
        raise WaiverError(f"{path}:{root.start_mark.line + 1}: expected a list of waivers, "
                          "each with check, host, reason, owner and expires")
    return [_entry(path, i, node) for i, node in enumerate(root.value, 1)]


def _entry(path: Path, number: int, node) -> Waiver:
    line = node.start_mark.line + 1
    where = f"{path}:{line}"
    if not isinstance(node, yaml.MappingNode):
        raise WaiverError(f"{where}: waiver {number} is not a mapping of "
                          f"{', '.join(KEYS)}")
    values: dict[str, str] = {}
    for key, value in node.value:
        name = key.value if isinstance(key, yaml.ScalarNode) else "?"
        at = f"{path}:{key.start_mark.line + 1}"
        if name not in KEYS:
            raise WaiverError(f"{at}: waiver {number}: unknown key {name!r} (a waiver has "
                              f"{', '.join(KEYS)})")
        if not isinstance(value, yaml.ScalarNode) or not str(value.value).strip():
            raise WaiverError(f"{at}: waiver {number}: {name} must be a single non-empty "
                              "value")
        values[name] = str(value.value).strip()
    if missing := [k for k in REQUIRED if k not in values]:
        raise WaiverError(f"{where}: waiver {number} has no {', '.join(missing)}: every "
                          "waiver names its check, why, who owns it and until when")
    try:
        expires = dt.date.fromisoformat(values["expires"])
    except ValueError:
        raise WaiverError(f"{where}: waiver {number}: expires {values['expires']!r} is not a "
                          "date (YYYY-MM-DD)") from None
    return Waiver(values["check"], values.get("host", "*"), values["reason"],
                  values["owner"], expires, where)


def first_covering(waivers: Iterable[Waiver], check: str, hosts: Iterable[str],
                   day: dt.date) -> tuple[Waiver | None, Waiver | None]:
    """(the active waiver of this failure, else None; an expired one that would have)."""
    hosts = list(hosts)
    hits = [w for w in waivers if w.covers(check, hosts)]
    active = next((w for w in hits if not w.expired(day)), None)
    lapsed = next((w for w in hits if w.expired(day)), None)
    return active, (None if active else lapsed)
