"""Faults the lab can inject, by purpose: the detection matrix's (detection.py), the run's
own fault handling (trust.py) and the failover gate's (gate.py). `heal` puts every host back
to its healthy configuration, whatever was injected."""

from __future__ import annotations

from . import detection, gate, trust
from .actions import HANG_SECONDS, SECRETS, SUDO_PASSWORD, SUDO_USER  # noqa: F401 - for the self-tests
from .fault import Fault  # noqa: F401

DETECTION = detection.FAULTS
TRUST = trust.FAULTS
GATE = gate.FAULTS
# purpose -> its faults, in the order `python -m lab faults` lists them
BY_PURPOSE = {"the detection matrix": DETECTION, "the failover gate": GATE,
              "the run's own fault handling": TRUST}
FAULTS = {**DETECTION, **GATE, **TRUST}
