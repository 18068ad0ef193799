"""The speed and scale targets, judged from the benchmark's rows (reports/bench.json)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from itertools import pairwise

from kubeaccept.suite.xdist import auto_workers

RATIO, RATIO_HOSTS = 20, 50
WALL, WALL_HOSTS = 15.0, 200
# Memory grows at most linearly: the MiB per added host may wander (runs, allocator) but not
# climb; a later size's slope above this multiple of the first's is growth faster than linear.
SLOPE_SLACK = 1.5


@dataclass(frozen=True)
class Target:
    name: str
    ok: bool | None  # None: the sizes it needs were not measured
    measured: str


def _row(results: list[dict], suite: str, hosts: int) -> dict | None:
    return next((r for r in results if r["suite"] == suite and r["hosts"] == hosts), None)


def _missing(name: str, hosts: int) -> Target:
    return Target(name, None, f"not measured (run with --sizes including {hosts})")


def check(results: list[dict], workers: int) -> list[Target]:
    out = []
    name = f"≥ {RATIO}× the baseline at {RATIO_HOSTS} hosts"
    k, b = _row(results, "kubeaccept", RATIO_HOSTS), _row(results, "baseline", RATIO_HOSTS)
    if k and b:
        ratio = b["wall_s"] / k["wall_s"]
        out.append(Target(name, ratio >= RATIO,
                          f"{ratio:.1f}× ({k['wall_s']:.2f} s against {b['wall_s']:.2f} s; "
                          f"{RATIO}× would be {b['wall_s'] / RATIO:.2f} s)"))
    else:
        out.append(_missing(name, RATIO_HOSTS))
    for suite, suffix in (("kubeaccept", ""), ("kubeaccept-auto", ", -n auto")):
        name = f"≤ {WALL:g} s at {WALL_HOSTS} hosts{suffix}"
        r = _row(results, suite, WALL_HOSTS)
        if r is None:
            out.append(_missing(name, WALL_HOSTS))
            continue
        over = r["wall_s"] - WALL
        out.append(Target(name, over <= 0, f"{r['wall_s']:.2f} s"
                          + (f", {over:.2f} s over" if over > 0 else "")))
    logins = []
    for r in results:
        if r["suite"].startswith("kubeaccept"):
            # -n auto: what kubeaccept picks (the lab's inventory also holds its LB)
            allowed = max(1, auto_workers(r["hosts"] + 1, os.cpu_count() or 1)
                          if r["xdist"] == "auto" else workers)
            logins.append((r["logins_per_host"] <= allowed,
                           f"{r['hosts']} hosts -n {r['xdist']}: {r['logins_per_host']} "
                           f"(≤ {allowed})"))
    out.append(Target("SSH logins per host ≤ xdist workers",
                      all(ok for ok, _ in logins) if logins else None,
                      "; ".join(t for _, t in logins) or "not measured"))
    slopes, ok = [], True
    for suite in ("kubeaccept", "kubeaccept-auto"):
        rows = sorted((r["hosts"], r["peak_rss_mib"]) for r in results if r["suite"] == suite)
        s = [(m2 - m1) / (h2 - h1) for (h1, m1), (h2, m2) in pairwise(rows)]
        if s:
            ok = ok and all(x <= SLOPE_SLACK * max(s[0], 0.05) for x in s[1:])
            slopes.append(f"{suite}: " + " → ".join(f"{x:.2f}" for x in s) + " MiB per host")
    out.append(Target("runner memory ≤ linear in hosts", ok if slopes else None,
                      "; ".join(slopes) or "not measured (needs two sizes)"))
    return out


def show(targets: list[Target]) -> str:
    word = {True: "met", False: "NOT MET", None: "not measured"}
    return "\n".join(f"target {t.name}: {word[t.ok]}: {t.measured}" for t in targets)
