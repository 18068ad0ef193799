"""python -m lab up|down|status|inject|heal|faults|logins|power-off|power-on"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from .build import DEFAULT_CACHE_DIR
from .faults import BY_PURPOSE, DETECTION, FAULTS
from .lab import Lab
from .plan import DEFAULT_STATE_DIR
from .power import power_off, power_on
from .system import LabError, check_machine


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lab", description=__doc__)
    p.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR,
                   help=f"keys, inventory and logs of the lab (default {DEFAULT_STATE_DIR})")
    sub = p.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="build the lab (idempotent)")
    up.add_argument("--workers", type=int, default=2)
    up.add_argument("--control-plane", action="store_true",
                    help="run real etcd, kube-apiserver, kube-controller-manager and "
                    "kube-scheduler (built from Go modules the first time) instead of stand-ins")
    up.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR,
                    help=f"where built binaries are kept (default {DEFAULT_CACHE_DIR})")
    sub.add_parser("down", help="remove every namespace, link, process and file of the lab")
    sub.add_parser("status", help="hosts, processes, injected faults")
    inj = sub.add_parser("inject", help="inject a fault")
    inj.add_argument("fault", choices=sorted(FAULTS))
    inj.add_argument("host", nargs="?")
    sub.add_parser("heal", help="restore every host's healthy configuration")
    sub.add_parser("faults", help="list the faults and what they break")
    sub.add_parser("logins", help="SSH logins accepted per host")
    for verb in ("power-off", "power-on"):
        pw = sub.add_parser(verb, help=f"{verb.replace('-', ' ')} a host, as its BMC would "
                            "(the failover gate's power control)")
        pw.add_argument("host")
    args = p.parse_args(argv)
    lab = Lab(args.state_dir)
    try:
        return COMMANDS[args.cmd](lab, args)
    except LabError as exc:
        print(f"kubeaccept lab: {exc}", file=sys.stderr)
        return 1


def cmd_up(lab: Lab, args) -> int:
    # Ctrl-C or a CI job's SIGTERM half-way: take down what was made, leave nothing behind
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        took = lab.up(args.workers, args.control_plane, args.cache_dir)
    except KeyboardInterrupt:
        print("kubeaccept lab: interrupted: removing what was made", file=sys.stderr)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not stop the clean-up
        lab.down()  # from this process's state: it knows the pids it has not saved yet
        return 130
    print(("lab already up" if not took else f"lab up in {took:.1f}s") +
          f": {len(lab.hosts)} hosts; run the suite with:")
    print(f"  pytest --hosts={lab.inventory}")
    return 0


def cmd_down(lab: Lab, args) -> int:
    check_machine()
    removed = lab.down()
    print("removed: " + (", ".join(removed) if removed else "nothing (no lab)"))
    return 0


def cmd_status(lab: Lab, args) -> int:
    if not lab.hosts:
        print("no lab")
        return 1
    for h in lab.hosts:
        pids = lab.state["pids"].get(h.name, {})
        print(f"{h.name:6} {h.ip:15} {'+'.join(h.roles):22} {h.runtime:10} "
              f"{len(pids)} processes")
    for f in lab.state.get("faults", []):
        print(f"fault: {f['fault']} on {f['host']}")
    problems = lab.problems()
    for line in problems:
        print(f"problem: {line}")
    print(f"inventory: {lab.inventory}")
    return 1 if problems else 0


def cmd_inject(lab: Lab, args) -> int:
    fault, host = lab.inject(args.fault, args.host)
    print(f"injected {fault.name} on {host.name}: {fault.what}")
    return 0


def cmd_heal(lab: Lab, args) -> int:
    lab.heal()
    print(f"healed {len(lab.hosts)} hosts")
    return 0


def cmd_faults(lab: Lab, args) -> int:
    for purpose, faults in BY_PURPOSE.items():
        for f in faults.values():
            if faults is DETECTION:
                tests = ", ".join(t for t, _ in f.expect)
                print(f"{f.name:22} {f.what}  (default host {f.host}; fails {tests})")
            else:
                print(f"{f.name:22} {f.what}  (default host {f.host}; for {purpose})")
    return 0


def cmd_logins(lab: Lab, args) -> int:
    for name, count in lab.logins().items():
        print(f"{name} {count}")
    return 0


def cmd_power_off(lab: Lab, args) -> int:
    power_off(lab, args.host)
    print(f"{args.host}: powered off")
    return 0


def cmd_power_on(lab: Lab, args) -> int:
    power_on(lab, args.host)
    print(f"{args.host}: powered on")
    return 0


COMMANDS = {"up": cmd_up, "down": cmd_down, "status": cmd_status, "inject": cmd_inject,
            "power-off": cmd_power_off, "power-on": cmd_power_on, "heal": cmd_heal,
            "faults": cmd_faults, "logins": cmd_logins}

if __name__ == "__main__":
    sys.exit(main())
