"""Node roles, and the inventory groups they come from (kubespray's names first)."""

CONTROL_PLANE = "control_plane"
WORKER = "worker"
ETCD = "etcd"
LB = "lb"

ALL_ROLES = (CONTROL_PLANE, WORKER, ETCD, LB)
# A Kubernetes node: runs a kubelet.
NODE = (CONTROL_PLANE, WORKER)

# kubespray (kube_control_plane, kube_node, etcd; kube-master/kube-node before v2.15), kairen's
# kubeadm-ansible (master, node), kube-ansible (masters, nodes, etcds), and the kube_masters/
# kube_workers/haproxy layout of many kubeadm playbooks.
GROUP_ROLES = {
    "kube_control_plane": CONTROL_PLANE,
    "kube-master": CONTROL_PLANE,
    "kube_master": CONTROL_PLANE,
    "kube_masters": CONTROL_PLANE,
    "masters": CONTROL_PLANE,
    "master": CONTROL_PLANE,
    "control_plane": CONTROL_PLANE,
    "control-plane": CONTROL_PLANE,
    "kube_node": WORKER,
    "kube-node": WORKER,
    "kube_workers": WORKER,
    "workers": WORKER,
    "worker": WORKER,
    "nodes": WORKER,
    "node": WORKER,
    "etcd": ETCD,
    "etcds": ETCD,
    "lb": LB,
    "kube_lb": LB,
    "loadbalancer": LB,
    "load_balancer": LB,
    "haproxy": LB,
}

# Groups kubespray defines at run time from others (roles/dynamic_groups): their
# group_vars apply to these hosts although no inventory declares the group.
RUNTIME_GROUPS = {
    "kube_control_plane": ("kube-master",),
    "kube_node": ("kube-node",),
    "calico_rr": ("calico-rr",),
    "k8s_cluster": ("kube_node", "kube_control_plane", "calico_rr"),
}


def roles_of_groups(groups):
    """The roles a host has, given the names of the groups it belongs to."""
    return frozenset(GROUP_ROLES[g] for g in groups if g in GROUP_ROLES)


def with_stacked_etcd(roles_by_host: dict) -> dict:
    """kubeadm's default topology: without any etcd host, etcd runs on the control planes."""
    if any(ETCD in roles for roles in roles_by_host.values()):
        return roles_by_host
    return {name: roles | {ETCD} if CONTROL_PLANE in roles else roles
            for name, roles in roles_by_host.items()}
