"""Node roles, and the inventory groups they come from (kubespray's names first)."""

CONTROL_PLANE = "control_plane"
WORKER = "worker"
ETCD = "etcd"
LB = "lb"

ALL_ROLES = (CONTROL_PLANE, WORKER, ETCD, LB)
# A Kubernetes node: runs a kubelet.
NODE = (CONTROL_PLANE, WORKER)

GROUP_ROLES = {
    "kube_control_plane": CONTROL_PLANE,
    "kube-master": CONTROL_PLANE,
    "kube_master": CONTROL_PLANE,
    "masters": CONTROL_PLANE,
    "control_plane": CONTROL_PLANE,
    "control-plane": CONTROL_PLANE,
    "kube_node": WORKER,
    "kube-node": WORKER,
    "workers": WORKER,
    "worker": WORKER,
    "nodes": WORKER,
    "etcd": ETCD,
    "lb": LB,
    "kube_lb": LB,
    "loadbalancer": LB,
    "load_balancer": LB,
    "haproxy": LB,
}


def roles_of_groups(groups):
    """The roles a host has, given the names of the groups it belongs to."""
    return frozenset(GROUP_ROLES[g] for g in groups if g in GROUP_ROLES)
