"""The order tests run in, so that the runner is busy while facts are being gathered."""

from __future__ import annotations

from kubeaccept.checks.all import load
from kubeaccept.model.hosts import Inventory
from kubeaccept.model.roles import CONTROL_PLANE
from kubeaccept.model.settings import Settings
from kubeaccept.remote.factstore import GATHER_AT_ONCE
from kubeaccept.suite.state import node_param, site_host


def run_order(items: list, hosts: list, inventory: Inventory, settings: Settings) -> list:
    """Tests in an order that keeps the runner busy while facts are being gathered: those
    that need no facts first (the API's), then the hosts' tests one wave of GATHER_AT_ONCE
    hosts at a time, in the order they are gathered (a test that reads other hosts' facts, in
    the wave of the last of them), checks in file order within a wave; the tests that need
    every host's facts (`cluster`) last. Check-major order made the runner wait for each host
    in turn on the first check and run all the others after the last gathering (3 s of 12 s
    at 200 hosts)."""
    # Control planes are gathered first but done last (etcdctl, and a TCP probe of each
    # node's kubelet: 5-6 s at 200 hosts where a worker takes 1-2 s): their tests, and those
    # that read their probes, go in the last wave.
    last = len(hosts) // GATHER_AT_ONCE + 1
    wave = {h.name: last - 1 if CONTROL_PLANE in h.roles else i // GATHER_AT_ONCE
            for i, h in enumerate(hosts)}
    checks = load()

    def key(pair):
        i, item = pair
        if host := node_param(item) or site_host(item):  # a site test: in its host's wave
            check = checks.get(getattr(item, "originalname", ""))
            names = [host.name, *(check.peers(host, inventory, settings)
                                  if check and check.peers else ())]
            return 1 + max(wave.get(n, last) for n in names), i
        return (last + 1 if "cluster" in getattr(item, "fixturenames", ()) else 0), i
    return [item for _, item in sorted(enumerate(items), key=key)]
