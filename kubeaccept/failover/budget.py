"""The outage budget, computed from the cluster's own settings: how long HAProxy needs to
notice a dead apiserver, how long keepalived needs to move the VIP, how long etcd needs to
elect a new leader. Pure functions over configuration text."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# HAProxy's defaults (configuration manual, "5.2 Server and default-server options").
HAPROXY_INTER, HAPROXY_FALL, HAPROXY_RISE = 2.0, 3, 2
ETCD_ELECTION = 1.0  # etcd's --election-timeout default, 1000 ms
KEEPALIVED_ADVERT = 1.0  # keepalived's advert_int default
# Sampling granularity and TCP reconnects of clients after a backend changes.
MARGIN = 2.0


@dataclass(frozen=True)
class Budget:
    seconds: float
    parts: tuple[tuple[str, float], ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)
    override: bool = False

    def text(self) -> str:
        if self.override:
            return f"{self.seconds:g} s (--failover-budget)"
        return f"{self.seconds:.1f} s = " + " + ".join(f"{what} {s:.1f} s"
                                                     for what, s in self.parts)


def duration(text: str, default_unit: str = "ms") -> float | None:
    """HAProxy/etcd time values: "2s", "500ms", "1m", "2000" (in `default_unit`)."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(us|ms|s|m|h|d)?", text.strip())
    if not m:
        return None
    scale = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
    return float(m.group(1)) * scale[m.group(2) or default_unit]


@dataclass(frozen=True)
class HealthCheck:
    server: str
    checked: bool
    inter: float = HAPROXY_INTER
    fastinter: float = HAPROXY_INTER
    fall: int = HAPROXY_FALL
    rise: int = HAPROXY_RISE
    # how long one check of a dead host (no answer at all) takes: inter, or with `timeout
    # check` set, min(timeout connect, inter) for its connect phase (HAProxy's manual,
    # "timeout check")
    timeout: float = HAPROXY_INTER

    @property
    def detection(self) -> float:
        """Worst case from a server's death to HAProxy marking it DOWN: the wait for the next
        check, then `fall` checks that each run into their timeout (a dead host answers
        nothing), spaced by fastinter."""
        return self.inter + (self.fall - 1) * self.fastinter + self.fall * self.timeout


def _options(words: list[str]) -> dict[str, str]:
    out = {}
    for i, w in enumerate(words):
        if w in ("inter", "fastinter", "downinter", "fall", "rise") and i + 1 < len(words):
            out[w] = words[i + 1]
        elif w in ("check", "no-check"):
            out[w] = "1"
    return out


def haproxy_checks(cfg: str, backend_servers: set[str] | None = None) -> list[HealthCheck]:
    """The health check of every `server` line (in `backend_servers` when given), with the
    `default-server` and `timeout check` of its section and of `defaults` applied."""
    defaults: dict[str, str] = {}
    section_defaults: dict[str, str] = {}
    check_default = section_check = connect_default = section_connect = None
    in_defaults = False
    out = []
    for raw in cfg.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        if not raw[0].isspace():
            kind = words[0]
            section_defaults = dict(defaults) if kind in ("backend", "listen") else {}
            section_check, section_connect = check_default, connect_default
            in_defaults = kind == "defaults"
            continue
        if words[0] == "default-server":
            (defaults if in_defaults else section_defaults).update(_options(words[1:]))
        elif words[0] == "timeout" and len(words) > 2 and words[1] in ("check", "connect"):
            value = duration(words[2])
            if words[1] == "check":
                section_check = value
                check_default = value if in_defaults else check_default
            else:
                section_connect = value
                connect_default = value if in_defaults else connect_default
        elif words[0] == "server" and len(words) >= 3:
            if backend_servers is not None and words[1] not in backend_servers:
                continue
            opts = {**section_defaults, **_options(words[3:])}
            inter = duration(opts.get("inter", "2000")) or HAPROXY_INTER
            timeout = inter
            if section_check and section_connect:
                timeout = min(section_connect, inter)
            out.append(HealthCheck(
                words[1], "check" in opts and "no-check" not in opts, inter,
                duration(opts.get("fastinter", "")) or inter,
                int(opts.get("fall", HAPROXY_FALL)), int(opts.get("rise", HAPROXY_RISE)),
                timeout))
    return out


def keepalived_advert(cfg: str) -> float | None:
    m = re.search(r"^\s*advert_int\s+(\d+(?:\.\d+)?)", cfg, re.M)
    if m:
        return float(m.group(1))
    return KEEPALIVED_ADVERT if "vrrp_instance" in cfg else None


def etcd_election(manifest: str) -> float | None:
    m = re.search(r"--election-timeout[= ](\d+)", manifest)
    return int(m.group(1)) / 1000 if m else None


def compute(checks: list[HealthCheck], lb_found: bool, election: float | None,
            keepalived: float | None, target_holds_vip: bool,
            override: float | None = None) -> Budget:
    notes = []
    parts: list[tuple[str, float]] = []
    checked = [c for c in checks if c.checked]
    unchecked = sorted(c.server for c in checks if not c.checked)
    if unchecked:
        notes.append(f"HAProxy does not health-check {', '.join(unchecked)}: it keeps "
                     "sending requests to a dead apiserver there")
    if checked:
        worst = max(checked, key=lambda c: c.detection)
        parts.append((f"HAProxy detection (inter {worst.inter:g}s, fall {worst.fall}, "
                      f"check timeout {worst.timeout:g}s)", worst.detection))
    else:
        c = HealthCheck("-", True)
        parts.append((f"HAProxy detection at its defaults (inter {c.inter:g}s, fall "
                      f"{c.fall})", c.detection))
        if not lb_found:
            notes.append("the load balancer's haproxy.cfg was not readable: HAProxy's "
                         "defaults assumed")
    if keepalived is not None and target_holds_vip:
        # the BACKUP takes over after 3 missed adverts plus its skew time (< 1 advert)
        parts.append((f"keepalived VIP move (advert_int {keepalived:g}s x 4)", 4 * keepalived))
    elect = election or ETCD_ELECTION
    parts.append((f"etcd election (2 x election timeout {elect:g}s"
                  + ("" if election else ", default") + ")", 2 * elect))
    parts.append(("margin", MARGIN))
    total = sum(s for _, s in parts)
    if override is not None:
        return Budget(override, tuple(parts), tuple(notes), True)
    return Budget(round(total, 1), tuple(parts), tuple(notes))
