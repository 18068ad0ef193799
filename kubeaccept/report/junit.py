"""pytest's JUnit file, rewritten to validate against the schema Jenkins' xUnit plugin
publishes (junit-10.xsd; GitLab reads the same elements):

- classname `<host>.<area>` (`cluster.<area>` for a cluster check): Jenkins splits it at the
  last dot, so its tree is host → area → check, and it shows classname, not the name
  (goss #313). The name stays `<check id>[<host>]`, unique and stable across runs.
- the failure message carries the fix; the testcase's properties (check id, host, role,
  observed, expected, evidence…), which the schema does not allow inside a testcase, become
  `name: value` lines of its system-out (shown by Jenkins and GitLab per test case).
- the run's own facts (inventory, phase, version, unreachable hosts) are testsuite properties,
  written here because record_testsuite_property does not work under xdist (pytest #7767).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from kubeaccept.report.results import Run, first_line


def classname(host: str | None, area: str) -> str:
    return f"{host or 'cluster'}.{area}"


def rewrite(path: Path, run: Run, version: str) -> None:
    tree = ET.parse(path)
    root = tree.getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    by_key = {_key(r.nodeid): r for r in run.results}
    for suite in suites:
        _suite_properties(suite, run, version)
        for case in suite.findall("testcase"):
            result = by_key.get((case.get("classname", ""), case.get("name", "")))
            for attr in ("file", "line"):  # not in the schema
                case.attrib.pop(attr, None)
            props = case.find("properties")
            lines = []
            if props is not None:
                lines = [f"{p.get('name')}: {p.get('value')}" for p in props.iter("property")]
                case.remove(props)
            if result is None:
                continue
            case.set("classname", classname(result.host, result.area))
            if result.host:
                role = run.role_of(result.host)
                lines[:0] = [f"role: {role}"] if role else []
            failed = [f for f in result.findings if not f.ok]
            for f in failed:
                lines += [f"observed: {f.subject}: {f.observed}", f"expected: {f.expected}"]
            for tag in ("failure", "error"):
                el = case.find(tag)
                fixes = result.fixes()
                if el is not None and fixes:
                    el.set("message", f"{first_line(el.get('message', ''))} | fix: "
                           + " | ".join(fixes))
            if lines:
                out = case.find("system-out")
                if out is None:
                    out = ET.SubElement(case, "system-out")
                out.text = "\n".join(lines) + ("\n\n" + out.text if out.text else "")
    ET.indent(tree, space=" ")
    tree.write(path, encoding="utf-8", xml_declaration=True)


def _suite_properties(suite: ET.Element, run: Run, version: str) -> None:
    props = suite.find("properties")
    if props is None:
        props = ET.Element("properties")
        suite.insert(0, props)
    values = [("kubeaccept_version", version), ("inventory", run.inventory),
              ("phase", run.phase), ("hosts", str(len(run.hosts)))]
    values += [(f"unreachable.{h}", cause) for h, cause in sorted(run.unreachable.items())]
    for name, value in values:
        ET.SubElement(props, "property", name=name, value=value)


def _key(nodeid: str) -> tuple[str, str]:
    """pytest's junitxml naming (mangle_test_address): path without .py, '/' → '.',
    then the test's name."""
    path, _, name = nodeid.partition("::")
    classnames = path.removesuffix(".py").replace("/", ".").split("::")
    parts = name.split("::")
    return ".".join(classnames + parts[:-1]), parts[-1]
