"""pytest side of the failover gate: `--failover`, the `destructive` marker, the gate's
fixture, JUnit properties and the terminal summary."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubeaccept.api import kubeapi
from kubeaccept.failover.gate import Gate, Options
from kubeaccept.failover.journal import DEFAULT, Journal
from kubeaccept.failover.restore import restore
from kubeaccept.model.roles import CONTROL_PLANE
from kubeaccept.suite.state import STATE
from kubeaccept.suite.verdict import failure_message

RESULTS = pytest.StashKey[list]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kubeaccept")
    group.addoption("--failover", metavar="HOST|etcd-leader|each", default=None,
                    help="run ONLY the failover gate, which powers control planes off and on: "
                    "a control plane's name, etcd-leader, or each (one at a time)")
    group.addoption("--failover-budget", type=float, default=None,
                    help="seconds the endpoint, etcd, writes and DNS may take to recover "
                    "(default: computed from HAProxy, keepalived and etcd settings)")
    group.addoption("--failover-restore-timeout", type=float, default=Options.restore_timeout,
                    help="seconds from power-on until the host must have rejoined (default "
                    f"{Options.restore_timeout:g})")
    group.addoption("--failover-journal", default=None,
                    help=f"restore journal (default {DEFAULT})")
    group.addoption("--failover-restore", action="store_true",
                    help="power on the host a crashed failover run left off (from the "
                    "journal), verify it rejoined, and exit")


def _journal(config: pytest.Config) -> Path:
    path = Path(config.option.failover_journal or DEFAULT)
    return path if path.is_absolute() else Path(config.rootpath) / path


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "destructive: changes the cluster; runs only with "
                            "--failover")
    spec = config.option.failover
    config.stash[RESULTS] = []
    if not spec:
        return
    if getattr(config.option, "numprocesses", None) or hasattr(config, "workerinput"):
        raise pytest.UsageError("--failover runs alone and serially: drop -n (run the "
                                "parallel suite first, then the gate)")
    state = config.stash.get(STATE, None)
    if state is None:
        raise pytest.UsageError("--failover needs --hosts=INVENTORY")
    names = [h.name for h in state.inventory.by_role(CONTROL_PLANE)]
    if len(names) < 2:
        raise pytest.UsageError(f"--failover: {state.inventory.source} has "
                                f"{len(names)} control plane(s): nothing can fail over")
    if spec not in ("etcd-leader", "each", *names):
        raise pytest.UsageError(f"--failover={spec}: not a control plane of "
                                f"{state.inventory.source} (control planes: "
                                f"{', '.join(names)}; or etcd-leader, each)")


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config):
    if config.option.failover_restore:
        return restore(_journal(config), config.option.kubeconfig,
                       Options(restore_timeout=config.option.failover_restore_timeout))
    return None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "failover_target" not in metafunc.fixturenames:
        return
    spec = metafunc.config.option.failover or "etcd-leader"
    state = metafunc.config.stash.get(STATE, None)
    targets = [spec]
    if spec == "each" and state:
        targets = [h.name for h in state.inventory.by_role(CONTROL_PLANE)]
    metafunc.parametrize("failover_target", targets, ids=targets)


def pytest_collection_modifyitems(session, config: pytest.Config, items) -> None:
    """Destructive tests only with --failover, and then nothing else."""
    wanted = bool(config.option.failover)
    keep = [i for i in items if bool(i.get_closest_marker("destructive")) == wanted]
    dropped = [i for i in items if i not in keep]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.fixture(scope="session")
def failover_gate(request: pytest.FixtureRequest) -> Gate:
    state = request.config.stash[STATE]
    opt = request.config.option
    try:
        conf, source = state.credentials()
    except kubeapi.ApiUnavailable as exc:
        pytest.fail(f"failover gate: {exc}", pytrace=False)
    options = Options(budget=opt.failover_budget,
                      restore_timeout=opt.failover_restore_timeout)
    tr = request.config.pluginmanager.get_plugin("terminalreporter")
    say = (lambda line: tr.write_line(f"kubeaccept: {line}")) if tr else print
    return Gate(state.inventory, state.settings, conf, source, options,
                Journal(_journal(request.config)), say)


@pytest.fixture
def failover(request: pytest.FixtureRequest, failover_gate: Gate):
    """failover(target): run the gate, record its timings, fail with what it found."""

    def run(target: str) -> None:
        out = failover_gate.run(target)
        item = request.node
        props = item.user_properties
        props += [("check_id", "cluster_failover"), ("host", out.target)]
        if out.budget:
            props += [("budget_s", f"{out.budget.seconds:g}"), ("budget", out.budget.text())]
        props += [(k, "" if v is None else f"{v:g}") for k, v in out.timings.items()]
        request.config.stash[RESULTS].append(out)
        lines = []
        if out.refused:
            lines.append(f"cluster_failover[{target}]: pre-flight refused, nothing was "
                         "powered off:")
            lines += [f"- {r}" for r in out.refused]
            props.append(("remediation", "make the cluster healthy (see the lines above), "
                          "then run the gate again"))
        if out.interrupted:
            request.session.shouldstop = f"failover gate interrupted ({out.interrupted})"
            lines.append(f"interrupted by {out.interrupted}; "
                         + (f"RESTORE FAILED: {out.restore_error}" if out.restore_error else
                            f"{out.target} restored and verified in "
                            f"{out.timings.get('rejoined_s')} s"))
        elif out.restore_error:
            request.session.shouldstop = f"failover restore failed on {out.target}"
            lines.append(f"RESTORE FAILED: {out.restore_error}")
        failed = [f for f in out.findings if not f.ok]
        if failed:
            lines.append(failure_message(out.findings, failed))
            fixes = sorted({f.fix for f in failed if f.fix})
            if fixes:
                props.append(("remediation", " | ".join(fixes)))
        props.append(("evidence", "\n".join(f"{f.subject}: {f.observed}"
                                            for f in out.findings)))
        if out.budget and out.budget.notes:
            props.append(("note", "; ".join(out.budget.notes)))
        if lines:
            pytest.fail("\n".join(lines), pytrace=False)
    return run


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    results = config.stash.get(RESULTS, [])
    if not results:
        return
    tr = terminalreporter
    tr.section("kubeaccept failover")
    for out in results:
        if out.refused:
            tr.write_line(f"{out.target}: refused: {out.refused[0]}")
            continue
        t = out.timings

        def f(key, t=t):
            v = t.get(key)
            return "-" if v is None else f"{v:g} s"
        tr.write_line(f"{out.target}: budget {out.budget.text() if out.budget else '-'}")
        tr.write_line(f"  longest endpoint outage {f('vip_longest_outage_s')} (last failure "
                      f"{f('vip_last_failure_s')}), new etcd leader {f('etcd_new_leader_s')}, "
                      f"first write {f('first_write_s')}, DNS back {f('dns_back_s')}, "
                      f"rejoined {f('rejoined_s')} after power-on")
        if out.interrupted:
            tr.write_line(f"  interrupted: {out.interrupted}")
        if out.restore_error:
            tr.write_line(f"  RESTORE FAILED: {out.restore_error}")
