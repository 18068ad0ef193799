"""A self-contained HTML report (no external file, font or script): first a matrix of hosts
(grouped by role) × checks (grouped by area), a cell's finding on hover and click; then each
failure with why it matters and the fix; unreachable hosts; changes since the baseline."""

from __future__ import annotations

import json
from html import escape

from kubeaccept.report.results import SHOWN_AREAS as AREAS
from kubeaccept.report.results import Result, Run, first_line, subject_host

SYMBOL = {"passed": "✓", "failed": "✗", "error": "!", "waived": "w", "skipped": "–", "": "·"}

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.2em;color:#222}
h1{font-size:1.3em;margin:0 0 .3em}
.counts span{display:inline-block;padding:.1em .6em;margin-right:.4em;border-radius:3px}
table.matrix{border-collapse:collapse;margin:.8em 0}
.matrix th,.matrix td{border:1px solid #ccc;padding:2px 5px;text-align:center}
.matrix th.check{writing-mode:vertical-rl;transform:rotate(180deg);font-weight:normal;
 font-family:monospace;font-size:12px;height:14em;text-align:left}
.matrix th.area{background:#eee}
.matrix th.host{text-align:left;font-family:monospace;font-weight:normal}
.matrix tr.role th{background:#f4f4f4;text-align:left;font-style:italic}
td.c{cursor:pointer;min-width:1.4em}
.passed{background:#d8f0d8}.failed{background:#f6c8c8;font-weight:bold}
.error{background:#f8dfa8;font-weight:bold}.skipped{background:#e6e6e6}
.waived{background:#e8d8f0}
td.none{color:#bbb}
td.sel{outline:3px solid #225}
#detail{border:1px solid #999;padding:.6em;margin:.6em 0;display:none;max-width:80em}
#detail.open{display:block}
pre{white-space:pre-wrap;background:#f7f7f7;padding:.4em;margin:.2em 0}
.failure{border-left:4px solid #c33;padding-left:.6em;margin:1em 0}
.failure.error{border-color:#d90;background:none;font-weight:normal}
.why{color:#555}.fix{font-family:monospace}
"""

SCRIPT = """
(function(){
 var data=JSON.parse(document.getElementById('data').textContent);
 var panel=document.getElementById('detail');
 function esc(s){var d=document.createElement('div');d.textContent=s==null?'':String(s);
  return d.innerHTML;}
 function show(td){
  document.querySelectorAll('td.sel').forEach(function(e){e.classList.remove('sel');});
  td.classList.add('sel');
  var tests=(td.dataset.tests||'').split(' ').filter(Boolean), h='';
  tests.forEach(function(t){var r=data[t]; if(!r)return;
   h+='<h3>'+esc(t)+' <span class="'+r.outcome+'">'+esc(r.outcome)+'</span></h3>';
   var fs=r.findings.filter(function(f){return !td.dataset.host||!r.cluster||
     f.subject.split(':')[0]===td.dataset.host;});
   fs.forEach(function(f){
    h+='<div><b>'+esc(f.subject)+'</b>: '+esc(f.observed)+' (expected '+esc(f.expected)+')';
    if(!f.ok&&f.why)h+='<div class="why">why it matters: '+esc(f.why)+'</div>';
    if(!f.ok&&f.fix)h+='<div class="fix">fix: '+esc(f.fix)+'</div>';
    if(f.evidence.length)h+='<pre>'+esc(f.evidence.join('\\n'))+'</pre>';
    h+='</div>';});
   if(!fs.length&&r.message)h+='<pre>'+esc(r.message)+'</pre>';});
  panel.innerHTML=h||'no test'; panel.classList.add('open');
  panel.dataset.showing=tests.join(' ');
 }
 document.querySelectorAll('td.c').forEach(function(td){
  td.addEventListener('click',function(){show(td);});});
 function find(t){return Array.prototype.find.call(document.querySelectorAll('td.c'),
  function(td){return (td.dataset.tests||'').split(' ').indexOf(t)>=0;});}
 var q=new URLSearchParams(location.search), m=location.hash.match(/^#test=(.+)$/);
 if(q.get('click')){var c=find(q.get('click')); if(c)c.click();}
 else if(m){var td=find(decodeURIComponent(m[1])); if(td)show(td);}
 document.body.dataset.ready='1';
})();
"""


def _hover(run: Run, results: list[Result], host: str | None) -> str:
    lines = []
    for r in results:
        bad = [f for f in r.findings if not f.ok and
               (host is None or r.host or subject_host(f.subject) == host)]
        if bad:
            lines += [f"{f.subject}: {f.observed}" for f in bad[:3]]
        elif r.outcome in ("failed", "error", "skipped", "waived"):
            lines.append(first_line(r.message))
        else:
            lines.append(f"{r.test}: {r.outcome}")
    return "\n".join(lines)


def _cell(run: Run, host: str | None, check: str) -> str:
    outcome, results = run.cell(host, check)
    if not results:
        return '<td class="none">·</td>'
    tests = " ".join(r.test for r in results)
    attrs = f' data-host="{escape(host)}"' if host else ""
    return (f'<td class="c {outcome}" data-tests="{escape(tests)}" data-check="{check}"'
            f'{attrs} title="{escape(_hover(run, results, host))}">{SYMBOL[outcome]}</td>')


def matrix(run: Run) -> str:
    areas = [(a, [c for c in run.checks if c["area"] == a]) for a in AREAS]
    areas = [(a, cs) for a, cs in areas if cs]
    checks = [c for _, cs in areas for c in cs]
    head1 = "".join(f'<th class="area" colspan="{len(cs)}">{escape(a)}</th>' for a, cs in areas)
    head2 = "".join(f'<th class="check" title="{escape(c["title"])}">{escape(c["id"])}</th>'
                    for c in checks)
    rows = [f"<tr><th></th>{head1}</tr>", f"<tr><th></th>{head2}</tr>"]
    groups: dict[str, list[dict]] = {}
    for h in run.hosts:
        groups.setdefault(h["roles"][0] if h["roles"] else "no role", []).append(h)
    span = len(checks) + 1
    for role, hosts in groups.items():
        rows.append(f'<tr class="role"><th colspan="{span}">{escape(role.replace("_", " "))}'
                    "</th></tr>")
        for h in hosts:
            name = h["name"]
            label = escape(name) + (" (unreachable)" if name in run.unreachable else "")
            cells = "".join(_cell(run, name, c["id"]) for c in checks)
            rows.append(f'<tr data-host="{escape(name)}"><th class="host">{label}</th>'
                        f"{cells}</tr>")
    rows.append(f'<tr class="role"><th colspan="{span}">whole cluster</th></tr>')
    cells = "".join(_cell(run, None, c["id"]) for c in checks)
    rows.append(f'<tr data-host=""><th class="host">cluster</th>{cells}</tr>')
    return '<table class="matrix" id="matrix">' + "\n".join(rows) + "</table>"


def failures(run: Run) -> str:
    out = []
    for r in run.results:
        if r.outcome not in ("failed", "error"):
            continue
        parts = [f'<div class="failure {r.outcome}" id="f-{escape(r.test)}">'
                 f"<h3>{escape(r.test)} — {r.outcome}</h3>"]
        bad = [f for f in r.findings if not f.ok]
        for f in bad:
            parts.append(f"<div><b>{escape(f.subject)}</b>: {escape(f.observed)} "
                         f"(expected {escape(f.expected)})</div>")
            if f.why:
                parts.append(f'<div class="why">why it matters: {escape(f.why)}</div>')
            if f.fix:
                parts.append(f'<div class="fix">fix: {escape(f.fix)}</div>')
            if f.evidence:
                parts.append(f"<pre>{escape(chr(10).join(f.evidence))}</pre>")
        if not bad:
            parts.append(f"<pre>{escape(r.message)}</pre>")
        parts.append("</div>")
        out.append("".join(parts))
    return "\n".join(out) or "<p>No failures.</p>"


def changes(run: Run) -> str:
    if not run.changes:
        return ""
    rows = "".join(f"<tr><td>{escape(c['where'])}</td><td>{escape(c['what'])}</td>"
                   f"<td>{escape(str(c['before']))}</td><td>{escape(str(c['now']))}</td></tr>"
                   for c in run.changes)
    return ('<h2>Changed since the baseline</h2><table class="matrix" id="changes"><tr>'
            "<th>where</th><th>what</th><th>before</th><th>now</th></tr>" + rows + "</table>")


def site_commands(run: Run) -> str:
    if not run.site_commands:
        return ""
    rows = "".join(f"<tr><td>{escape(h)}</td><td><pre>{escape(chr(10).join(cmds))}</pre></td>"
                   "</tr>" for h, cmds in sorted(run.site_commands.items()))
    return ("<h2>Commands your site checks ran</h2><p>These are the site checks' own commands: "
            "kubeaccept's allow-list audits only its own, so keeping these read-only is yours."
            '</p><table class="matrix" id="site-commands"><tr><th>host</th><th>commands</th>'
            "</tr>" + rows + "</table>")


def waivers(run: Run) -> str:
    if not run.waivers:
        return ""
    rows = "".join(f'<tr class="{escape(w["state"])}"><td>{escape(w["state"])}</td>'
                   f"<td>{escape(w['where'])}</td><td>{escape(w['check'])}</td>"
                   f"<td>{escape(w['host'])}</td><td>{escape(w['reason'])}</td>"
                   f"<td>{escape(w['owner'])}</td><td>{escape(w['expires'])}</td>"
                   f"<td>{escape(', '.join(w['waived']))}</td></tr>" for w in run.waivers)
    return ('<h2>Waivers</h2><table class="matrix" id="waivers"><tr><th>state</th>'
            "<th>where</th><th>check</th><th>host</th><th>reason</th><th>owner</th>"
            "<th>expires</th><th>waived</th></tr>" + rows + "</table>")


def render(run: Run) -> str:
    counts = run.counts()
    badges = "".join(f'<span class="{o}">{n} {o}</span>' for o, n in counts.items() if n)
    data = {r.test: {"outcome": r.outcome, "message": r.message, "cluster": r.host is None,
                     "findings": [{"subject": f.subject, "ok": f.ok, "observed": f.observed,
                                   "expected": f.expected, "why": f.why, "fix": f.fix,
                                   "evidence": list(f.evidence)} for f in r.findings]}
            for r in run.results}
    blob = json.dumps(data, ensure_ascii=False).replace("</", "<\\/")
    unreachable = "".join(f"<li><b>{escape(h)}</b>: {escape(c)}</li>"
                          for h, c in sorted(run.unreachable.items()))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>kubeaccept: {escape(run.inventory)}</title><style>{CSS}</style></head>
<body>
<h1>kubeaccept — {escape(run.inventory)} ({escape(run.phase)})</h1>
<div class="counts">{badges} · {len(run.hosts)} hosts · {escape(run.started)} →
{escape(run.finished)} · exit status {run.exit_status}</div>
<p>Rows: hosts by role, then checks of the whole cluster (a cluster check's cell in a host's row
shows its findings about that host). Hover a cell for its finding, click it for the details.</p>
{matrix(run)}
<div id="detail"></div>
{f'<h2>Unreachable hosts (their tests ERROR)</h2><ul id="unreachable">{unreachable}</ul>'
 if unreachable else ''}
{changes(run)}
{waivers(run)}
{site_commands(run)}
<h2>Failures</h2>
<div id="failures">{failures(run)}</div>
<script type="application/json" id="data">{blob}</script>
<script>{SCRIPT}</script>
</body></html>
"""
