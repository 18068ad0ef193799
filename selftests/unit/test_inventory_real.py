"""Inventories nobody here wrote (selftests/unit/fixtures/inventories/README.md says where each
comes from), read as Ansible, ssh and kubespray read them."""

from __future__ import annotations

import getpass
from pathlib import Path
from types import SimpleNamespace

import pytest

from kubeaccept import checks
from kubeaccept.inventory.ansible import load_inventory
from kubeaccept.model.hosts import InventoryError, unassigned
from kubeaccept.model.roles import CONTROL_PLANE, ETCD, LB, WORKER
from kubeaccept.remote.transport import LocalConnection, connect, plan
from kubeaccept.session import settings_for

from .ansible_reference import ansible_inventory_host, ansible_ssh_view

FIXTURES = Path(__file__).parent / "fixtures" / "inventories"
KUBESPRAY = FIXTURES / "kubespray"


@pytest.fixture(autouse=True)
def _no_ansible_env(monkeypatch):
    for name in ("ANSIBLE_HOST_KEY_CHECKING", "ANSIBLE_REMOTE_USER", "ANSIBLE_PRIVATE_KEY_FILE",
                 "ANSIBLE_REMOTE_PORT", "ANSIBLE_SSH_COMMON_ARGS", "ANSIBLE_SSH_ARGS"):
        monkeypatch.delenv(name, raising=False)


def settings_of(inv):
    opts = dict(connect_timeout=10, command_timeout=60, probe_timeout=3, probe_sources="auto",
                pod_subnet=None,
                service_subnet=None, vxlan_port=None, kube_version=None, cert_expiry_days=30,
                restart_threshold=10, flap_window=60, flap_threshold=4,
                dnsutils_image="x", cluster_dns=None)
    return settings_for(SimpleNamespace(**opts), inv)


# --- 1. connection variables: Ansible's precedence --------------------------------------


def test_ansible_ssh_names_win_over_ansible_names_at_any_level(tmp_path):
    """Ansible's ssh connection plugin reads host from [inventory_hostname, ansible_host,
    ansible_ssh_host], remote_user from [ansible_user, ansible_ssh_user], port from
    [ansible_port, ansible_ssh_port], and the LAST name that is set wins
    (ansible.config.manager._loop_entries), whatever level each was set at; for one name, host
    vars beat group vars beat all (VariableManager). `ansible-inventory --host` shows both names
    set; the ssh command ansible builds uses the ansible_ssh_* ones (see the reference test)."""
    path = FIXTURES / "precedence" / "hosts.ini"
    inv = load_inventory(path)
    cp1, cp2, w1 = inv.get("cp1"), inv.get("cp2"), inv.get("w1")
    w1_vars = ansible_inventory_host(path, "w1", tmp_path)
    assert (w1_vars["ansible_host"], w1_vars["ansible_ssh_host"]) == ("198.51.100.21", "10.0.0.21")
    assert ansible_inventory_host(path, "cp2", tmp_path)["ansible_ssh_port"] == 2200
    # host_vars/w1.yml ansible_host loses to the inventory line's ansible_ssh_host
    assert (w1.address, w1.user, w1.port) == ("10.0.0.21", "ubuntu", 22)
    # ansible_ssh_user on the line beats group_vars/all ansible_user; group_vars'
    # ansible_ssh_port beats the line's ansible_port
    assert (cp1.address, cp1.user, cp1.port) == ("203.0.113.11", "azureuser", 2200)
    # one name at two levels: the host's ansible_user beats group_vars/all's
    assert (cp2.address, cp2.user, cp2.port) == ("203.0.113.12", "admin", 2200)
    assert checks.node_ip(w1) == "10.0.0.21"


def test_kubespray_ci_connection_comes_from_ansible_environment(monkeypatch):
    """kubespray's CI exports ANSIBLE_REMOTE_USER and ANSIBLE_PRIVATE_KEY_FILE instead of
    inventory variables; Ansible's ssh plugin reads them (env entries of remote_user and
    private_key_file), and so does kubeaccept."""
    monkeypatch.setenv("ANSIBLE_REMOTE_USER", "kubespray")
    monkeypatch.setenv("ANSIBLE_PRIVATE_KEY_FILE", "/ci/id_rsa")
    inv = load_inventory(FIXTURES / "kubespray-ci" / "ubuntu24-ha-separate-etcd" / "ci_inventory.yml")
    assert {(h.user, h.key_file) for h in inv.hosts} == {("kubespray", "/ci/id_rsa")}
    assert inv.get("ubuntu-2404-4").address == "192.0.2.14"


REFERENCE = [
    ("precedence/hosts.ini", None, {}),
    ("jump-hosts/hosts.yaml", None, {}),
    ("openstack-bastion/hosts.yaml", None, {}),
    # kubespray's plays apply its role default; ansible -e gives it the same value
    ("kubespray-aws/hosts", "kubespray/kubespray_defaults_ssh_common_args.yml", {}),
    ("kubespray-ci/ubuntu24-ha-separate-etcd/ci_inventory.yml", None,
     {"ANSIBLE_REMOTE_USER": "kubespray", "ANSIBLE_HOST_KEY_CHECKING": "False"}),
]


@pytest.mark.parametrize("rel, extra, env", REFERENCE, ids=[r[0].split("/")[0] for r in REFERENCE])
def test_same_ssh_connection_as_ansible_and_ssh(rel, extra, env, tmp_path, monkeypatch):
    """The reference: the ssh command ansible-core builds for each host (ansible -m ping with a
    recording ssh_executable), read back by `ssh -G`: address, port, user, host key checking,
    known_hosts file, ProxyCommand, ProxyJump must be what kubeaccept connects with."""
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    inv = load_inventory(FIXTURES / rel)
    view = ansible_ssh_view(FIXTURES / rel, tmp_path, FIXTURES / extra if extra else None, env)
    tested = [h for h in inv.hosts if h.roles]
    assert tested and {h.name for h in tested} <= set(view)
    for h in tested:
        ssh = view[h.name]
        assert (h.address, str(h.port), h.user) == (ssh["hostname"], ssh["port"], ssh["user"])
        assert h.host_key_checking == (ssh["stricthostkeychecking"] in ("true", "ask")), h.name
        if h.known_hosts:
            assert ssh["userknownhostsfile"].split()[0] == h.known_hosts
        else:
            assert ssh["userknownhostsfile"].split()[0].endswith("/.ssh/known_hosts")
        assert " ".join((h.proxy_command or "").split()) == ssh.get("proxycommand", ""), h.name
        assert h.proxy_jump == ssh.get("proxyjump") or h.proxy_jump and ssh.get("proxyjump")


# --- 2. ansible_connection=local ----------------------------------------------------------


def test_kubespray_local_inventory_runs_on_this_machine():
    """kubespray inventory/local: `node1 ansible_connection=local local_release_dir=...`: Ansible
    runs node1's tasks here, as the user running it, without SSH."""
    inv = load_inventory(KUBESPRAY / "local" / "hosts.ini")
    (node1,) = inv.hosts
    assert node1.connection == "local" and node1.user == getpass.getuser()
    assert node1.roles == {CONTROL_PLANE, ETCD, WORKER}
    # {{ansible_env.HOME}} is a fact Ansible gathers at run time: left as written
    assert node1.vars["local_release_dir"] == "{{ansible_env.HOME}}/releases"
    assert isinstance(connect(node1, 1), LocalConnection)
    assert connect(node1, 1).run("echo $((6*7))", timeout=10).stdout == "42\n"


# --- 3. bastions ----------------------------------------------------------------------------


def test_openstack_no_floating_nodes_go_through_the_bastion():
    """contrib/terraform/openstack writes group_vars/no_floating.yml from
    ansible_bastion_template.txt: a ProxyCommand with -o StrictHostKeyChecking=no and
    -o UserKnownHostsFile=/dev/null INSIDE it. Those are the bastion ssh's options: the node's
    own key stays checked against known_hosts (ssh -G shows no StrictHostKeyChecking for it)."""
    inv = load_inventory(FIXTURES / "openstack-bastion" / "hosts.yaml")
    nf1, master = inv.get("mycluster-k8s-node-nf-1"), inv.get("mycluster-k8s-master-1")
    assert nf1.proxy_command == ("ssh -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
                                 "-W %h:%p -q ubuntu@203.0.113.5 -i ~/.ssh/id_rsa")
    assert (nf1.host_key_checking, nf1.known_hosts) == (True, None)
    assert master.proxy_command is None and master.proxy_jump is None
    p = plan(nf1)
    assert p.proxy_command == ("ssh -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
                               "-W 10.0.0.21:22 -q ubuntu@203.0.113.5 -i ~/.ssh/id_rsa")
    assert p.check_host_key and p.known_hosts.endswith("/.ssh/known_hosts")


def test_kubespray_bastion_host_routes_every_node():
    """kubespray (roles/kubespray_defaults): when a host is named `bastion`, every play uses
    ansible_ssh_common_args = -o ProxyCommand='ssh -o UserKnownHostsFile=/dev/null
    -o StrictHostKeyChecking=no -W %h:%p -p <bastion port> <bastion user>@<bastion ansible_host>'.
    contrib/terraform/aws writes exactly such an inventory."""
    inv = load_inventory(FIXTURES / "kubespray-aws" / "hosts")
    cp = inv.get("ip-10-250-192-10.eu-central-1.compute.internal")
    assert cp.proxy_command == ("ssh -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no "
                                "-W %h:%p -p 22 admin@203.0.113.5")
    assert cp.host_key_checking and cp.known_hosts is None
    assert all(h.proxy_command == cp.proxy_command for h in inv.hosts if h.roles)
    assert inv.get("bastion").proxy_command is None
    assert unassigned(inv) == [
        "host bastion is not tested: none of its groups (bastion) gives it a role; it is "
        "kubespray's bastion, through which the other hosts are reached"]


def test_jump_host_forms(tmp_path):
    """Ansible's FAQ forms: -o ProxyCommand="ssh -W %h:%p -q user@gateway.example.com" and -J;
    a gist's StrictHostKeyChecking=no OUTSIDE the ProxyCommand does turn checking off."""
    inv = load_inventory(FIXTURES / "jump-hosts" / "hosts.yaml")
    cp1, w1, w2, w3 = (inv.get(n) for n in ("cp1", "w1", "w2", "w3"))
    assert (cp1.proxy_command, cp1.host_key_checking) == (
        "ssh -W %h:%p -q user@gateway.example.com", True)
    assert (w1.proxy_jump, w1.proxy_command) == ("user@gateway.example.com", None)
    assert [str(j) for j in plan(w2).jumps] == ["ops@203.0.113.5:2222", "ubuntu@10.0.0.5:22"]
    assert (w3.proxy_command, w3.host_key_checking) == ("ssh -W %h:%p -q root@203.0.113.7", False)


def test_ssh_refusing_the_arguments_is_an_inventory_error(tmp_path):
    hosts = tmp_path / "hosts.yaml"
    hosts.write_text("kube_node:\n  hosts:\n    w1:\n      ansible_ssh_common_args: "
                     "\"-o ProxyCommand='ssh -W %h:%p gw' -J user@gw\"\n")
    with pytest.raises(InventoryError, match=r"host w1: ssh refuses -J after a ProxyCommand"):
        load_inventory(hosts)


# --- 4. kubespray's k8s_cluster group, made at run time --------------------------------------


def test_group_vars_k8s_cluster_apply_without_a_static_k8s_cluster_group(tmp_path):
    """kubespray's docs inventory declares no k8s_cluster group: roles/dynamic_groups makes it
    (group_by) from kube_node, kube_control_plane and calico_rr at run time, so
    group_vars/k8s_cluster/*.yml applies. `ansible-inventory --host` (no play run) does not show
    those variables; kubespray's plays, and kubeaccept, do."""
    path = KUBESPRAY / "docs-example" / "inventory.ini"
    static = ansible_inventory_host(path, "node1", tmp_path)
    assert "kube_pods_subnet" not in static and static["bin_dir"] == "/usr/local/bin"
    inv = load_inventory(path)
    cv = inv.cluster_vars
    assert (cv["kube_pods_subnet"], cv["kube_service_addresses"], cv["kube_network_plugin"]) == (
        "10.233.64.0/18", "10.233.0.0/18", "calico")
    assert cv["loadbalancer_apiserver_port"] == 6443  # group_vars/all/all.yml
    assert inv.get("node4").vars["kube_proxy_mode"] == "ipvs"
    assert "k8s_cluster" in inv.get("node1").groups
    s = settings_of(inv)
    # kubespray's skydns_server: the 3rd address of kube_service_addresses
    assert (s.pod_subnet, s.service_subnet, s.dns_ip) == ("10.233.64.0/18", "10.233.0.0/18",
                                                          "10.233.0.3")
    # node3: etcd on a worker (the docs' example)
    roles = {h.name: h.roles for h in inv.hosts}
    assert roles == {"node1": {CONTROL_PLANE, ETCD}, "node2": {CONTROL_PLANE, ETCD, WORKER},
                     "node3": {ETCD, WORKER}, "node4": {WORKER}, "node5": {WORKER},
                     "node6": {WORKER}}


def test_kubespray_local_reads_the_sample_group_vars_through_its_symlink():
    inv = load_inventory(KUBESPRAY / "local" / "hosts.ini")
    assert inv.cluster_vars["kube_pods_subnet"] == "10.233.64.0/18"
    assert settings_of(inv).service_subnet == "10.233.0.0/18"


def test_kubespray_sample_as_shipped_has_no_hosts():
    with pytest.raises(InventoryError, match=r"inventory.ini has no hosts: put the cluster's "):
        load_inventory(KUBESPRAY / "sample" / "inventory.ini")


# --- 5. other playbooks' group names; hosts in no known group ------------------------------


def test_kairen_kubeadm_ansible_master_node_with_stacked_etcd():
    """kairen/kubeadm-ansible: [master] [node]; no etcd group: kubeadm's default stacked etcd
    runs on the control plane."""
    inv = load_inventory(FIXTURES / "kairen-kubeadm-ansible" / "hosts.ini")
    assert {h.name: h.roles for h in inv.hosts} == {
        "192.16.35.12": {CONTROL_PLANE, ETCD}, "192.16.35.10": {WORKER},
        "192.16.35.11": {WORKER}}
    assert unassigned(inv) == []


def test_kairen_kube_ansible_masters_nodes_etcds():
    inv = load_inventory(FIXTURES / "kairen-kube-ansible" / "hosts.ini")
    m1 = inv.get("k8s-m1")
    assert m1.roles == {CONTROL_PLANE, ETCD} and (m1.user, m1.password) == ("vagrant", "vagrant")
    assert inv.get("k8s-n2").roles == {WORKER}


def test_kube_masters_kube_workers_haproxy():
    inv = load_inventory(FIXTURES / "kube-masters-workers" / "hosts")
    assert [(h.name, sorted(h.roles)) for h in inv.hosts] == [
        ("192.168.206.31", [CONTROL_PLANE, ETCD]), ("192.168.206.32", [CONTROL_PLANE, ETCD]),
        ("192.168.206.33", [WORKER]), ("192.168.206.34", [WORKER]),
        ("192.168.206.35", [WORKER]), ("192.168.206.36", [LB])]
    assert unassigned(inv) == []


def test_a_host_in_no_known_group_is_named_with_its_groups(tmp_path):
    hosts = tmp_path / "hosts.ini"
    hosts.write_text("[kube_control_plane]\ncp1\n[kube_node]\nw1\n[monitoring]\nprom1\n"
                     "[k8s_nodes]\nextra1\n")
    inv = load_inventory(hosts)
    extra1, prom1 = unassigned(inv)
    assert prom1.startswith("host prom1 is not tested: none of its groups (monitoring) gives "
                            "it a role; put it in one of the groups kubeaccept knows "
                            "(kube_control_plane, kube-master, ")
    assert "kube_workers, workers, worker, nodes, node, etcd, etcds, lb, " in prom1
    assert extra1.startswith("host extra1 is not tested: none of its groups (k8s_nodes)")


# --- 6. separate etcd hosts -------------------------------------------------------------------


def test_kubespray_ci_separate_etcd_roles():
    """kubespray CI ubuntu24-ha-separate-etcd: 3 kube_control_plane, 1 kube_node, 3 etcd,
    disjoint: the control planes carry no etcd."""
    inv = load_inventory(FIXTURES / "kubespray-ci" / "ubuntu24-ha-separate-etcd" / "ci_inventory.yml")
    assert [h.name for h in inv.by_role(CONTROL_PLANE)] == [f"ubuntu-2404-{i}" for i in range(3)]
    assert [h.name for h in inv.by_role(ETCD)] == [f"ubuntu-2404-{i}" for i in (4, 5, 6)]
    assert all(ETCD not in h.roles for h in inv.by_role(CONTROL_PLANE))
    assert unassigned(inv) == []


# --- reading never acts -----------------------------------------------------------------


def test_reading_kubespray_group_vars_writes_nothing(tmp_path):
    """kubespray's k8s-cluster.yml holds kubeadm_certificate_key: "{{ lookup('password',
    credentials_dir + '/kubeadm_certificate_key.creds ...') }}": Ansible's password lookup
    CREATES that file. Reading an inventory must not: the lookup is not run, the value stays
    as written."""
    import shutil

    tree = tmp_path / "kubespray"
    shutil.copytree(KUBESPRAY, tree, symlinks=True)
    before = sorted(p.relative_to(tree) for p in tree.rglob("*"))
    inv = load_inventory(tree / "local" / "hosts.ini")
    assert sorted(p.relative_to(tree) for p in tree.rglob("*")) == before
    assert inv.get("node1").vars["kubeadm_certificate_key"].startswith("{{ lookup('password',")
    from ansible.plugins.loader import lookup_loader

    assert "get" not in vars(lookup_loader)  # the guard is gone after loading


def test_connection_variable_from_a_lookup(tmp_path, monkeypatch):
    """env lookups are run (read-only); a pipe lookup (runs a command) is not, and a connection
    variable that needs one is an inventory error, not a login with the template's text."""
    monkeypatch.setenv("CLUSTER_USER", "ops")
    hosts = tmp_path / "hosts.yaml"
    hosts.write_text("kube_node:\n  hosts:\n    w1:\n"
                     "      ansible_user: \"{{ lookup('env', 'CLUSTER_USER') }}\"\n")
    assert load_inventory(hosts).get("w1").user == "ops"
    hosts.write_text("kube_node:\n  hosts:\n    w1:\n"
                     f"      ansible_password: \"{{{{ lookup('pipe', 'touch {tmp_path}/ran') }}}}\"\n")
    with pytest.raises(InventoryError, match=r"host w1: cannot read ansible_password: .*lookup "
                       r"'pipe' is not run while reading an inventory"):
        load_inventory(hosts)
    assert not (tmp_path / "ran").exists()
