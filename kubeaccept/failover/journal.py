"""The restore journal: written before a host is powered off, removed once its restore is
verified. A runner that crashed in between leaves it behind for `kubeaccept-restore`."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

DEFAULT = Path("reports") / "failover-journal.json"


class Journal:
    def __init__(self, path: Path):
        self.path = path

    def write(self, host: str, inventory: str, power_on: str, kind: str,
              role_groups: str = "") -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        entry = {"host": host, "inventory": inventory, "power_on": power_on, "kind": kind,
                 "role_groups": role_groups,
                 "powered_off_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                 "runner_pid": os.getpid()}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(entry, indent=1) + "\n")
        tmp.replace(self.path)

    def read(self) -> dict | None:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except ValueError as exc:
            raise ValueError(f"{self.path}: not a kubeaccept restore journal ({exc})") from None

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
