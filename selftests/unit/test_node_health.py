"""cluster_node_health: Node conditions beyond Ready, cordons and node.kubernetes.io taints.
Names as k8s.io/api v0.37.2 core/v1 declares them (types.go, well_known_taints.go); the
condition reasons and messages as the kubelet v1.37.2 sets them (pkg/kubelet/nodestatus/
setters.go) and the node lifecycle controller (NodeStatusUnknown); node-problem-detector's
permanent conditions as its config/kernel-monitor.json declares them (KernelDeadlock /
DockerHung on "task docker:\\w+ blocked for more than \\w+ seconds\\.", healthy
ReadonlyFilesystem reason FilesystemIsNotReadOnly); nodes-lab-*.json are Node objects the lab's kube-apiserver and
kube-controller-manager v1.37.2 returned with the faults node-pressure and node-cordoned."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from kubeaccept.model.apistate import ApiState

from .factory import judge

NOW = datetime(2026, 12, 7, 20, 0, 0, tzinfo=UTC)
FIXTURES = Path(__file__).parent / "fixtures" / "nodes"


def ts(ago: timedelta) -> str:
    return (NOW - ago).strftime("%Y-%m-%dT%H:%M:%SZ")


def cond(kind, status, reason="", message="", ago=timedelta(hours=2)):
    return {"type": kind, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": ts(ago)}


def healthy_conditions():
    return [cond("MemoryPressure", "False", "KubeletHasSufficientMemory"),
            cond("DiskPressure", "False", "KubeletHasNoDiskPressure"),
            cond("PIDPressure", "False", "KubeletHasSufficientPID"),
            cond("Ready", "True", "KubeletReady")]


def node(name, conditions=None, taints=(), unschedulable=False):
    spec = {"taints": list(taints)} if taints else {}
    if unschedulable:
        spec["unschedulable"] = True
    return {"metadata": {"name": name}, "spec": spec,
            "status": {"conditions": conditions or healthy_conditions()}}


def run(*nodes):
    return judge("cluster_node_health", api=ApiState("https://192.0.2.100:6443",
                                                     nodes=list(nodes), now=NOW))


def test_healthy_nodes_pass_with_their_conditions_named():
    out = run(node("w1"), node("cp1", taints=[{"key": "node-role.kubernetes.io/control-plane",
                                               "effect": "NoSchedule"}]))
    assert all(f.ok for f in out) and len(out) == 2
    assert "MemoryPressure=False, DiskPressure=False, PIDPressure=False" in out[0].observed


def test_disk_pressure_with_its_taint_since_when_and_what_it_stops():
    conds = healthy_conditions()
    conds[1] = cond("DiskPressure", "True", "KubeletHasDiskPressure",
                    "kubelet has disk pressure", timedelta(minutes=7))
    taint = {"key": "node.kubernetes.io/disk-pressure", "effect": "NoSchedule",
             "timeAdded": ts(timedelta(minutes=7))}
    (bad,) = [f for f in run(node("w2", conds, [taint])) if not f.ok]
    assert bad.subject == "w2:DiskPressure" and bad.expected == "DiskPressure=False"
    assert bad.observed.startswith("DiskPressure=True (KubeletHasDiskPressure): kubelet has "
                                   "disk pressure for 7m (since ")
    assert "taint node.kubernetes.io/disk-pressure:NoSchedule for 7m" in bad.observed
    assert "evicts pods" in bad.why and "crictl rmi --prune" in bad.fix


def test_a_custom_problem_condition_fails_a_ready_style_one_must_be_true():
    conds = [*healthy_conditions(),
             cond("KernelDeadlock", "True", "DockerHung", "task docker:7 blocked for more "
                  "than 120 seconds."),
             cond("ReadonlyFilesystem", "False", "FilesystemIsNotReadOnly"),
             cond("GPUDriverReady", "False", "DriverNotLoaded")]
    bad = {f.subject: f for f in run(node("w1", conds)) if not f.ok}
    assert set(bad) == {"w1:KernelDeadlock", "w1:GPUDriverReady"}
    assert "DockerHung" in bad["w1:KernelDeadlock"].observed
    assert bad["w1:GPUDriverReady"].expected == "GPUDriverReady=True"


def test_cordoned_node_with_the_controllers_taint():
    taint = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule",
             "timeAdded": ts(timedelta(days=3))}
    (bad,) = [f for f in run(node("w1", taints=[taint], unschedulable=True)) if not f.ok]
    assert bad.subject == "w1:cordoned"
    assert bad.observed == ("cordoned (spec.unschedulable=true); taint node.kubernetes.io/"
                            f"unschedulable:NoSchedule for 3d (since {ts(timedelta(days=3))})")
    assert "kubectl uncordon w1" in bad.fix


def test_taints_left_without_a_cause_and_out_of_service():
    taints = [{"key": "node.kubernetes.io/memory-pressure", "effect": "NoSchedule"},
              {"key": "node.kubernetes.io/out-of-service", "value": "nodeshutdown",
               "effect": "NoExecute", "timeAdded": ts(timedelta(hours=5))},
              {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}]
    bad = {f.subject: f for f in run(node("w2", taints=taints)) if not f.ok}
    assert set(bad) == {"w2:node.kubernetes.io/memory-pressure",
                        "w2:node.kubernetes.io/out-of-service"}
    assert "no condition or cordon explains it" in bad[
        "w2:node.kubernetes.io/memory-pressure"].why
    assert "force-deleted" in bad["w2:node.kubernetes.io/out-of-service"].why
    assert "kubectl taint nodes w2 node.kubernetes.io/out-of-service-" in bad[
        "w2:node.kubernetes.io/out-of-service"].fix


def test_unknown_conditions_of_a_silent_kubelet_are_left_to_cluster_nodes_ready():
    conds = [cond(k, "Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.")
             for k in ("MemoryPressure", "DiskPressure", "PIDPressure", "Ready")]
    assert all(f.ok for f in run(node("w1", conds)))


def test_no_node_at_all_fails():
    (f,) = run()
    assert not f.ok and "lists no Node" in f.observed
