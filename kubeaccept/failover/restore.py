"""kubeaccept-restore: power on the host a crashed failover run left off, from the journal,
and verify it rejoined (also `pytest --failover-restore`)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from kubeaccept.api import kubeapi
from kubeaccept.failover import power, preflight
from kubeaccept.failover.gate import Gate, Options, verify_restore
from kubeaccept.failover.journal import DEFAULT, Journal
from kubeaccept.inventory import load_hosts
from kubeaccept.model.hosts import InventoryError
from kubeaccept.model.settings import Settings
from kubeaccept.session import Session


def restore(journal_path: Path, kubeconfig: str | None = None,
            options: Options | None = None, say=print) -> int:
    journal = Journal(journal_path)
    try:
        entry = journal.read()
    except ValueError as exc:
        say(f"kubeaccept-restore: {exc}")
        return 4
    if entry is None:
        say(f"kubeaccept-restore: no journal at {journal_path}: nothing to restore")
        return 0
    try:
        inventory = load_hosts(entry["inventory"], Path.cwd(), entry.get("role_groups"))
        host = inventory.get(entry["host"])
        _, on = power.methods(host)
    except (InventoryError, KeyError, power.PowerError) as exc:
        say(f"kubeaccept-restore: {journal_path}: {exc}; power on {entry.get('host')} by hand "
            f"({entry.get('power_on')}) and delete the journal")
        return 1
    settings = Settings()
    options = options or Options()
    say(f"kubeaccept-restore: powering on {host.name} ({on.describe()}), journal of "
        f"{entry.get('powered_off_at')}")
    start = time.monotonic()
    try:
        power.run(on, host, options.power_timeout, settings.connect_timeout)
    except power.PowerError as exc:
        say(f"kubeaccept-restore: power-on failed: {exc}; {host.name} is still off")
        return 1
    session = Session.open(inventory, settings, kubeconfig)
    try:
        conf, source = session.credentials(skip=[host.name])
    except kubeapi.ApiUnavailable as exc:
        say(f"kubeaccept-restore: {host.name} powered on, but it cannot be verified: {exc}")
        return 1
    finally:
        session.close()
    gate = Gate(inventory, settings, conf, source, options, journal, say)
    ctx, _, _, _ = gate.snapshot()
    missing = verify_restore(gate, host, preflight.etcd_view(ctx), start)
    if "rejoined_s" not in missing:
        say(f"kubeaccept-restore: {host.name} powered on but not back: "
            + "; ".join(f"{k}: {v}" for k, v in missing.items()))
        return 1
    journal.clear()
    say(f"kubeaccept-restore: {host.name} restored and verified in {missing['rejoined_s']} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="kubeaccept-restore", description=__doc__)
    p.add_argument("--journal", type=Path, default=DEFAULT,
                   help=f"the failover journal (default {DEFAULT})")
    p.add_argument("--kubeconfig", help="kubeconfig (default: admin.conf over SSH)")
    p.add_argument("--restore-timeout", type=float, default=Options.restore_timeout)
    args = p.parse_args(argv)
    return restore(args.journal, args.kubeconfig,
                   Options(restore_timeout=args.restore_timeout))


if __name__ == "__main__":
    sys.exit(main())
