"""The detection matrix: healthy lab -> every test passes; each fault -> exactly the expected
tests fail, with the expected words; healed -> all pass again. Serial and with -n 2."""

from __future__ import annotations

import pytest

from lab.faults import DETECTION

from .suite import CHECKS, run_suite

MODES = {"serial": (), "xdist": ("-n", "2")}


def expected_failures(lab, fault, host) -> dict[str, tuple[str, ...]]:
    out = {}
    for template, words in fault.expect:
        if template.endswith("[*]"):
            check = template.removesuffix("[*]")
            out.update({f"{check}[{h.name}]": words for h in lab.hosts if h.is_node})
        elif template.endswith("[others]"):
            check = template.removesuffix("[others]")
            out.update({f"{check}[{h.name}]": words for h in lab.hosts
                        if h.is_node and h.name != host.name})
        else:  # cluster_* tests have no host in their id
            out[template.format(host=host.name)] = words
    return out


def all_tests(lab) -> set[str]:
    """Every test id of a run on the lab: each per-host check on each host of its roles,
    each cluster check once."""
    names = set()
    for c in CHECKS:
        if c.per_host:
            names |= {f"{c.id}[{h.name}]" for h in lab.hosts if set(h.roles) & set(c.roles)}
        else:
            names.add(c.id)
    return names


@pytest.mark.parametrize("mode", MODES)
def test_healthy_lab_passes(lab, tmp_path, mode, matrix):
    run = run_suite(str(lab.inventory), tmp_path / "junit.xml", *MODES[mode])
    matrix.append((mode, "(none)", "-", ", ".join(sorted(run.failing())) or "nothing fails"))
    assert run.returncode == 0, run.output[-3000:]
    assert set(run.outcomes) == all_tests(lab), run.output[-2000:]
    assert set(run.outcomes.values()) == {"passed"}
    props = run.properties["node_rp_filter[w1]"]
    assert props["check_id"] == "node_rp_filter" and props["host"] == "w1"
    assert "rp_filter" in props["evidence"]


@pytest.mark.parametrize("fault_name", list(DETECTION))
@pytest.mark.parametrize("mode", MODES)
def test_fault_is_detected(lab, tmp_path, mode, fault_name, matrix):
    fault = DETECTION[fault_name]
    try:
        _, host = lab.inject(fault_name)
        run = run_suite(str(lab.inventory), tmp_path / "junit.xml", *MODES[mode])
    finally:
        lab.heal()
    expected = expected_failures(lab, fault, host)
    matrix.append((mode, fault_name, host.name, ", ".join(sorted(run.failing() & set(expected)))
                   + (f" (+ transient: {', '.join(sorted(run.failing() - set(expected)))})"
                      if run.failing() - set(expected) else "")))
    extra = run.failing() - set(expected)
    assert set(expected) <= run.failing() and extra <= set(fault.may_also_fail), (
        f"{fault_name} on {host.name}: expected {sorted(expected)} to fail, "
        f"got {sorted(run.failing())}\n{run.output[-3000:]}")
    for test, words in expected.items():
        assert run.outcomes[test] == "failed", run.messages.get(test)
        for w in words:
            assert w in run.messages[test], f"{test}: {w!r} not in:\n{run.messages[test]}"
        props = run.properties[test]
        assert props.get("remediation") and props.get("check_id") == test.split("[")[0]
        assert "Traceback" not in run.messages[test]
    assert run.returncode == (1 if expected else 0), run.output[-2000:]
    for test, words in fault.notes:
        note = run.properties[test.format(host=host.name)].get("note", "")
        assert all(w in note for w in words), f"{test}: {words} not in note {note!r}"


def test_healed_lab_passes_again(lab, tmp_path):
    run = run_suite(str(lab.inventory), tmp_path / "junit.xml")
    assert run.returncode == 0, run.output[-3000:]
    assert set(run.outcomes.values()) == {"passed"} and set(run.outcomes) == all_tests(lab)
