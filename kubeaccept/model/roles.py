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


def roles_of_groups(groups, role_groups=None):
    """The roles a host has, given the names of the groups it belongs to (and the run's
    --role-groups mapping, group -> role)."""
    mapping = {**GROUP_ROLES, **(role_groups or {})}
    return frozenset(mapping[g] for g in groups if g in mapping)


# Host variables naming a host's role where no group does: geerlingguy.kubernetes's
# `kubernetes_role` (its defaults/main.yml: control_plane; `node` for workers; `master` in
# older playbooks), and kubeaccept's own `kubeaccept_roles` (a list, or words split by commas).
ROLE_VAR = "kubernetes_role"
VAR_ROLES = {"control_plane": CONTROL_PLANE, "master": CONTROL_PLANE, "node": WORKER}
OWN_VAR = "kubeaccept_roles"


def roles_of_vars(variables) -> frozenset:
    """The roles host variables give; ValueError naming a role kubeaccept does not know."""
    out = set()
    if (v := variables.get(ROLE_VAR)) is not None and str(v) in VAR_ROLES:
        out.add(VAR_ROLES[str(v)])
    own = variables.get(OWN_VAR)
    if own is not None:
        words = own if isinstance(own, list | tuple) else str(own).replace(",", " ").split()
        for w in map(str, words):
            if w not in ALL_ROLES:
                raise ValueError(f"{OWN_VAR} names {w!r}, not one of {', '.join(ALL_ROLES)}")
            out.add(w)
    return frozenset(out)


def parse_role_groups(text: str | None) -> dict[str, str]:
    """--role-groups "control_plane=k8smaster,masters worker=k8snodes" -> group -> role."""
    out: dict[str, str] = {}
    for entry in (text or "").replace(";", " ").split():
        role, eq, groups = entry.partition("=")
        if not eq or not groups.strip(","):
            raise ValueError(f"--role-groups: {entry!r} is not ROLE=GROUP[,GROUP...] (e.g. "
                             "control_plane=k8smaster worker=k8snodes)")
        if role not in ALL_ROLES:
            raise ValueError(f"--role-groups: {role!r} is not a role ({', '.join(ALL_ROLES)})")
        out.update(dict.fromkeys((g for g in groups.split(",") if g), role))
    return out


def with_stacked_etcd(roles_by_host: dict) -> dict:
    """kubeadm's default topology: without any etcd host, etcd runs on the control planes."""
    if any(ETCD in roles for roles in roles_by_host.values()):
        return roles_by_host
    return {name: roles | {ETCD} if CONTROL_PLANE in roles else roles
            for name, roles in roles_by_host.items()}
