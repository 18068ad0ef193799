"""The end-of-run summary: hosts × areas, unreachable hosts apart, one fix per failing test."""

from __future__ import annotations

from kubeaccept.report.results import SHOWN_AREAS as AREAS
from kubeaccept.report.results import Result, Run, first_line

LINE = 160  # a fix line longer than this is cut
MARK = {"passed": "ok", "failed": "FAIL", "error": "ERROR", "waived": "waived",
        "skipped": "skip"}


def area_cell(run: Run, host: str | None, area: str) -> str:
    checks = [c["id"] for c in run.checks if c["area"] == area]
    outcomes = [run.cell(host, c)[0] for c in checks]
    outcomes = [o for o in outcomes if o]
    if not outcomes:
        return "·"
    for bad in ("failed", "error"):
        if n := outcomes.count(bad):
            return f"{MARK[bad]} {n}"
    if n := outcomes.count("waived"):
        return f"waived {n}"
    return "ok" if "passed" in outcomes else "skip"


def table(run: Run) -> list[str]:
    areas = [a for a in AREAS if any(c["area"] == a for c in run.checks)]
    rows = [["host", "roles", *areas]]
    for h in run.hosts:
        name = h["name"]
        if name in run.unreachable:
            rows.append([name, ",".join(h["roles"]), *["unreachable" for _ in areas]])
        else:
            rows.append([name, ",".join(h["roles"]), *[area_cell(run, name, a) for a in areas]])
    rows.append(["(cluster)", "", *[area_cell(run, None, a) for a in areas]])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
            for r in rows]


def counts_line(run: Run) -> str:
    c = run.counts()
    failing = [r for r in run.results if r.outcome in ("failed", "error")]
    hosts = sorted({r.host or "cluster" for r in failing})
    text = ", ".join(f"{n} {o}" for o, n in c.items() if n)
    where = f"; failing on {', '.join(hosts)}" if hosts else ""
    changed = ""
    if run.changes:
        failed = sum(c["failed"] for c in run.changes)
        changed = f"; {len(run.changes)} change(s) since the baseline, {failed} failing"
    return f"kubeaccept: {text} ({len(run.hosts)} hosts){where}{changed}"


def fix_line(r: Result) -> str:
    if r.outcome == "error" and r.host in ("", None) and not r.findings:
        return f"{r.test}: {first_line(r.message, LINE)}"
    fixes = r.fixes()
    if fixes:
        return f"{r.test}: {first_line(fixes[0], LINE)}" + (f" (+{len(fixes) - 1} more)"
                                                       if len(fixes) > 1 else "")
    if bad := [f for f in r.findings if not f.ok]:  # a site check's: what it asserted
        return f"{r.test}: {first_line(bad[0].observed, LINE)}"
    return f"{r.test}: {first_line(r.message, LINE) or 'see the failure above'}"


def lines(run: Run, quiet: bool = False) -> list[str]:
    if quiet:
        return [counts_line(run), *waiver_lines(run)]
    out = [*table(run), counts_line(run)]
    if run.unreachable:
        out.append("unreachable (their tests ERROR): " + "; ".join(
            f"{h}: {cause}" for h, cause in sorted(run.unreachable.items())))
    failing = [r for r in run.results if r.outcome in ("failed", "error")
               and r.host not in run.unreachable]
    if run.changes:
        out.append("changed since the baseline (! = fails):")
        out += [f"  {'!' if c['failed'] else ' '} {c['where']}: {c['what']}: {c['before']} → "
                f"{c['now']}" for c in run.changes]
    if failing:
        out.append("fix:")
        out += [f"  {fix_line(r)}" for r in failing]
    out += waiver_lines(run)
    if run.site_commands:
        out.append("site checks ran (your commands: kubeaccept's allow-list audits only its own):")
        out += [f"  {host}: {' | '.join(cmds)}"[:LINE * 2]
                for host, cmds in sorted(run.site_commands.items())]
    return out


def waiver_lines(run: Run) -> list[str]:
    """Waived tests, expired waivers, stale ones: what --waivers did this run."""
    out = []
    for state, words in (("active", "waived"), ("expired", "EXPIRED, no longer waives"),
                         ("stale", "STALE, matched no failure")):
        for w in (w for w in run.waivers if w["state"] == state):
            what = f" ({', '.join(w['waived'])})" if w["waived"] else ""
            out.append(f"waiver {words}: {w['where']}: {w['check']} on {w['host']}{what}: "
                       f"{w['reason']} (owner {w['owner']}, until {w['expires']})")
    return out
