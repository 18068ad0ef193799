"""Site checks: your own rules, run by kubeaccept beside its own (docs/site-checks.md).

    pytest --hosts=inventory tests inventory/examples/site --waivers=inventory/examples/site/waivers.yaml
"""

import pytest


@pytest.mark.roles("control_plane", "worker")
def test_clock_is_synchronised(host):
    """the clock is NTP-synchronised (timedatectl)"""
    out = host.run("timedatectl show -p NTPSynchronized --value")
    assert out.stdout.strip() == "yes", (
        f"NTPSynchronized={out.stdout.strip() or out.stderr.strip()}: start chronyd or "
        "systemd-timesyncd")


@pytest.mark.roles("worker")
def test_max_map_count_for_search_workloads(host):
    """vm.max_map_count is at least 262144 on workers"""
    assert host.sysctl("vm.max_map_count") >= 262144


def test_every_node_has_a_zone(kube):
    """every Node carries topology.kubernetes.io/zone"""
    missing = [n["metadata"]["name"] for n in kube.items("/api/v1/nodes")
               if "topology.kubernetes.io/zone" not in n["metadata"].get("labels", {})]
    assert not missing, f"Nodes without a zone label: {', '.join(missing)}"
