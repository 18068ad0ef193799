import os
import textwrap
from pathlib import Path

import pytest

from kubeaccept.inventory import load_hosts
from kubeaccept.inventory.ansible import load_inventory, resolve_inventory_path
from kubeaccept.inventory.specs import parse_host_specs
from kubeaccept.model.hosts import Host, InventoryError, unassigned, unchecked_host_keys
from kubeaccept.model.roles import CONTROL_PLANE, ETCD, LB, WORKER

EXAMPLES = Path(__file__).resolve().parents[2] / "inventory" / "examples"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


KUBESPRAY_HOSTS = """
all:
  hosts:
    cp1: {ansible_host: 203.0.113.11, ip: 198.51.100.11, ansible_become: "false"}
    cp2: {ansible_host: 203.0.113.12, ip: 198.51.100.12, ansible_become: "no"}
    cp3: {ansible_host: 203.0.113.13, ip: 198.51.100.13, ansible_port: 2222}
    worker10: {ansible_host: 203.0.113.30, ansible_user: admin}
    worker2:
      ansible_host: "{{ ip }}"
      ip: 198.51.100.22
      ansible_ssh_common_args: >-
        -o UserKnownHostsFile=/x/known_hosts -o StrictHostKeyChecking=yes
    bastion: {ansible_host: 203.0.113.99}
  children:
    kube_control_plane:
      hosts: {cp1: , cp2: , cp3: }
    kube_node:
      hosts: {cp3: , worker2: , worker10: }
    etcd:
      hosts: {cp1: , cp2: , cp3: }
    k8s_cluster:
      children: {kube_control_plane: , kube_node: }
    bastion:
      hosts: {bastion: }
"""


@pytest.fixture
def kubespray(tmp_path):
    hosts = write(tmp_path / "inventory" / "mycluster" / "hosts.yaml", KUBESPRAY_HOSTS)
    write(hosts.parent / "group_vars" / "all" / "all.yml", """
        ansible_user: ubuntu
        ansible_become: true
        ansible_ssh_private_key_file: ~/.ssh/cluster_key
        kube_version: v1.31.2
    """)
    write(hosts.parent / "group_vars" / "k8s_cluster" / "k8s-cluster.yml", """
        kube_pods_subnet: 10.233.64.0/18
        kube_service_addresses: 10.233.0.0/18
    """)
    return hosts


def test_kubespray_layout_roles_and_connection_vars(kubespray, monkeypatch):
    monkeypatch.delenv("ANSIBLE_HOST_KEY_CHECKING", raising=False)
    inv = load_inventory(kubespray)
    assert inv.source == str(kubespray)
    cp1, cp2, cp3 = inv.get("cp1"), inv.get("cp2"), inv.get("cp3")
    assert cp1.roles == {CONTROL_PLANE, ETCD}
    assert cp3.roles == {CONTROL_PLANE, ETCD, WORKER}
    assert inv.get("worker2").roles == {WORKER}
    assert inv.get("bastion").roles == frozenset()
    assert inv.get("bastion").groups == {"bastion"}
    assert cp1.groups == {"kube_control_plane", "etcd", "k8s_cluster"}

    assert cp1.user == "ubuntu" and inv.get("worker10").user == "admin"
    assert (cp1.become, cp2.become, cp3.become) == (False, False, True)
    assert cp1.key_file == os.path.expanduser("~/.ssh/cluster_key")
    assert (cp1.address, cp1.port, cp3.port) == ("203.0.113.11", 22, 2222)
    assert cp1.known_hosts is None and cp1.host_key_checking


def test_ssh_args_and_templated_address(kubespray):
    w2 = load_inventory(kubespray).get("worker2")
    assert w2.address == "198.51.100.22"
    assert w2.known_hosts == "/x/known_hosts"
    assert w2.host_key_checking is True
    assert w2.vars["ip"] == "198.51.100.22" and w2.vars["kube_version"] == "v1.31.2"
    assert "inventory_hostname" not in w2.vars and "groups" not in w2.vars


def test_host_key_checking_follows_ansible_config(kubespray, monkeypatch):
    """ANSIBLE_HOST_KEY_CHECKING=False (kubespray's ansible.cfg: host_key_checking=False). Ansible's
    ssh plugin then runs `ssh ... -o StrictHostKeyChecking=no ... <ansible_ssh_common_args>` and
    ssh keeps the FIRST value of an option (`ssh -G` shows it), so worker2's own
    StrictHostKeyChecking=yes does not turn checking back on: seen with ansible-core 2.19 and
    OpenSSH 9.2 (ansible -m ping -vvv with a recording ssh_executable, then ssh -G)."""
    monkeypatch.setenv("ANSIBLE_HOST_KEY_CHECKING", "False")
    inv = load_inventory(kubespray)
    assert not inv.get("cp1").host_key_checking
    assert not inv.get("worker2").host_key_checking
    assert inv.get("worker2").known_hosts == "/x/known_hosts"


def test_strict_host_key_checking_no_turns_checking_off(tmp_path):
    hosts = write(tmp_path / "hosts.yaml", """
        kube_control_plane:
          hosts:
            cp1:
              ansible_ssh_extra_args: "-o StrictHostKeyChecking=no"
            cp2:
              ansible_host_key_checking: "false"
    """)
    inv = load_inventory(hosts)
    assert not inv.get("cp1").host_key_checking
    assert not inv.get("cp2").host_key_checking
    # printed in the header and the summary of every run
    line = unchecked_host_keys(inv)
    assert line.startswith("SSH host keys NOT verified for cp1, cp2: ")
    assert str(hosts) in line


def test_checked_host_keys_and_local_hosts_print_nothing(tmp_path):
    hosts = write(tmp_path / "hosts.yaml", """
        kube_control_plane:
          hosts:
            cp1: {}
            node1: {ansible_connection: local}
    """)
    assert unchecked_host_keys(load_inventory(hosts)) is None


def test_order_cluster_vars_and_lookup(kubespray):
    inv = load_inventory(kubespray)
    assert [h.name for h in inv.hosts] == ["cp1", "cp2", "cp3", "worker2", "worker10", "bastion"]
    assert [h.name for h in inv.by_role(WORKER)] == ["cp3", "worker2", "worker10"]
    assert [h.name for h in inv.by_role(ETCD, LB)] == ["cp1", "cp2", "cp3"]
    assert inv.cluster_vars["kube_pods_subnet"] == "10.233.64.0/18"
    assert inv.cluster_vars["kube_version"] == "v1.31.2"
    assert "ansible_host" not in inv.cluster_vars
    with pytest.raises(KeyError, match="nope"):
        inv.get("nope")
    hash(inv)


def test_ini_with_children_and_inline_vars(tmp_path):
    hosts = write(tmp_path / "hosts.ini", """
        [kube_control_plane]
        master1 ansible_host=198.51.100.1 ansible_port=2200 ansible_user=core ansible_become=no
        [etcd]
        master1
        [kube_node]
        node1 ansible_host=198.51.100.2 ansible_ssh_private_key_file=/keys/id ansible_become=yes
        [lb]
        lb1 ansible_host=198.51.100.3 ansible_become_password=s3cret
        [k8s_cluster:children]
        kube_control_plane
        kube_node
        [k8s_cluster:vars]
        kube_pods_subnet=10.244.0.0/16
    """)
    inv = load_inventory(hosts)
    m, n, lb = inv.get("master1"), inv.get("node1"), inv.get("lb1")
    assert (m.address, m.port, m.user, m.become) == ("198.51.100.1", 2200, "core", False)
    assert m.roles == {CONTROL_PLANE, ETCD} and "k8s_cluster" in m.groups
    assert (n.key_file, n.become, n.user, n.roles) == ("/keys/id", True, "root", {WORKER})
    assert lb.become_password == "s3cret" and lb.roles == {LB}
    assert "s3cret" not in repr(lb)
    assert inv.cluster_vars["kube_pods_subnet"] == "10.244.0.0/16"


def test_loading_prints_nothing(kubespray, capfd):
    load_inventory(kubespray)
    with pytest.raises(InventoryError):
        load_inventory(write(kubespray.parent / "broken.yaml", "all: [\n"))
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


def test_malformed_yaml_is_one_line_error_naming_the_file(tmp_path):
    bad = write(tmp_path / "hosts.yaml", """
        all:
          hosts:
            cp1: {ansible_host: 198.51.100.1
            cp2:
    """)
    with pytest.raises(InventoryError) as e:
        load_inventory(bad)
    msg = str(e.value)
    assert str(bad) in msg and "YAML" in msg and "line" in msg
    assert "\n" not in msg and "Traceback" not in msg


def test_malformed_group_vars_names_that_file(kubespray):
    write(kubespray.parent / "group_vars" / "all" / "all.yml", "a: [1,\n")
    with pytest.raises(InventoryError, match=r"group_vars/all/all\.yml line \d") as e:
        load_inventory(kubespray)
    assert "\n" not in str(e.value)


def test_yaml_file_is_not_half_read_as_ini(tmp_path):
    # ansible's ini plugin would accept this as two ungrouped hosts
    with pytest.raises(InventoryError, match="YAML inventory has invalid structure"):
        load_inventory(write(tmp_path / "hosts.yaml", "cp1\ncp2\n"))


def test_ansible_settings_and_output_are_restored(kubespray):
    from ansible import constants as C
    from ansible.utils.display import Display

    before = (list(C.INVENTORY_ENABLED), C.INVENTORY_UNPARSED_IS_FAILED)
    load_inventory(kubespray)
    assert (list(C.INVENTORY_ENABLED), C.INVENTORY_UNPARSED_IS_FAILED) == before
    assert not {"warning", "display", "error_as_warning"} & set(vars(Display()))


def test_no_known_groups_is_kept_and_named_with_how_to_map_it(tmp_path):
    """Never refused: hosts in groups kubeaccept does not know are listed with the mapping
    that would give them a role."""
    inv = load_inventory(write(tmp_path / "hosts.ini", "[servers]\na\nb\n"))
    assert [h.roles for h in inv.hosts] == [frozenset(), frozenset()]
    (line, _) = unassigned(inv)
    assert "host a is not tested: none of its groups (servers) gives it a role" in line
    assert "--role-groups worker=servers" in line and "kubernetes_role" in line
    with pytest.raises(InventoryError, match="no hosts"):
        load_inventory(write(tmp_path / "empty.yaml", "all:\n  children:\n    kube_node:\n"))


# geerlingguy.kubernetes's inventories: groups of any name, the role in `kubernetes_role`
# (its defaults/main.yml says control_plane; workers say node; older playbooks master).
GEERLINGGUY = """\
all:
  children:
    k8smaster:
      hosts:
        km1: {ansible_host: 192.0.2.11}
      vars: {kubernetes_role: control_plane}
    k8snodes:
      hosts:
        kn1: {ansible_host: 192.0.2.21, kubernetes_role: node}
        kn2: {ansible_host: 192.0.2.22, kubernetes_role: master}
    storage:
      hosts:
        st1: {ansible_host: 192.0.2.31}
        st2: {ansible_host: 192.0.2.32, kubeaccept_roles: [worker]}
"""


def test_roles_from_host_variables_as_ansible_resolves_them(tmp_path):
    from .ansible_reference import ansible_inventory_host

    path = write(tmp_path / "hosts.yaml", GEERLINGGUY)
    inv = load_inventory(path)
    roles = {h.name: set(h.roles) for h in inv.hosts}
    assert roles == {"km1": {CONTROL_PLANE, ETCD}, "kn1": {WORKER},
                     "kn2": {CONTROL_PLANE, ETCD}, "st1": set(), "st2": {WORKER}}
    # the variable as Ansible itself resolves it (group vars under host vars)
    assert ansible_inventory_host(path, "km1", tmp_path)["kubernetes_role"] == "control_plane"
    assert ansible_inventory_host(path, "kn2", tmp_path)["kubernetes_role"] == "master"


def test_role_groups_map_any_group(tmp_path):
    path = write(tmp_path / "hosts.yaml", GEERLINGGUY)
    inv = load_hosts(str(path), tmp_path, "worker=storage lb=none")
    assert set(inv.get("st1").roles) == {WORKER}
    with pytest.raises(InventoryError, match=r"^--role-groups: 'workers' is not a role"):
        load_hosts(str(path), tmp_path, "workers=storage")
    with pytest.raises(InventoryError, match=r"is not ROLE=GROUP"):
        load_hosts(str(path), tmp_path, "worker")
    bad = write(tmp_path / "bad.yaml", "all:\n  hosts:\n    x: {kubeaccept_roles: boss}\n")
    with pytest.raises(InventoryError, match=r"host x: kubeaccept_roles names 'boss'"):
        load_inventory(bad)



def test_bad_boolean_is_reported(tmp_path):
    hosts = write(tmp_path / "hosts.yaml", "kube_node:\n  hosts:\n    n1: {ansible_become: hm}\n")
    with pytest.raises(InventoryError, match="ansible_become is 'hm', not a boolean"):
        load_inventory(hosts)


# resolve_inventory_path


def test_repo_inventory_with_only_examples(tmp_path):
    write(tmp_path / "inventory" / "examples" / "kubespray" / "hosts.yaml", KUBESPRAY_HOSTS)
    write(tmp_path / "inventory" / "README.md", "read me\n")
    with pytest.raises(InventoryError) as e:
        resolve_inventory_path("inventory", tmp_path)
    assert str(e.value) == (
        "inventory/ holds no cluster inventory (examples/ is never used): copy your cluster's "
        "hosts.yaml to inventory/<cluster>/hosts.yaml or pass --hosts=PATH")


def test_repo_inventory_picks_the_one_cluster(tmp_path):
    write(tmp_path / "inventory" / "examples" / "hosts.ini", "[kube_node]\nx\n")
    write(tmp_path / "inventory" / "lab" / "hosts.yaml", KUBESPRAY_HOSTS)
    write(tmp_path / "inventory" / ".hidden" / "hosts.yaml", KUBESPRAY_HOSTS)
    mine = write(tmp_path / "inventory" / "mycluster" / "hosts.yaml", KUBESPRAY_HOSTS)
    assert resolve_inventory_path("inventory", tmp_path) == mine
    assert resolve_inventory_path("inventory/mycluster/", tmp_path) == mine
    assert resolve_inventory_path(str(mine), Path("/")) == mine


def test_repo_inventory_with_two_clusters(tmp_path):
    write(tmp_path / "inventory" / "prod" / "hosts.yaml", KUBESPRAY_HOSTS)
    write(tmp_path / "inventory" / "staging" / "inventory.ini", "[kube_node]\nx\n")
    with pytest.raises(InventoryError, match=r"^inventory/ holds several cluster inventories "
                       r"\(prod, staging\): pass --hosts=inventory/<cluster>$"):
        resolve_inventory_path("inventory", tmp_path)


def test_directory_with_two_inventory_files(tmp_path):
    write(tmp_path / "c" / "hosts.yaml", KUBESPRAY_HOSTS)
    write(tmp_path / "c" / "inventory.ini", "[kube_node]\nx\n")
    with pytest.raises(InventoryError, match=r"c/ holds several inventory files "
                       r"\(hosts\.yaml, inventory\.ini\)"):
        resolve_inventory_path("c", tmp_path)


def test_a_direct_file_and_non_paths(tmp_path):
    f = write(tmp_path / "anything.txt", "[kube_node]\nx\n")
    assert resolve_inventory_path("anything.txt", tmp_path) == f
    for value in ("10.0.0.1", "ssh://root@cp1:22", "cp1,cp2", "", "missing/hosts.yaml"):
        assert resolve_inventory_path(value, tmp_path) is None


# Shipped examples


@pytest.mark.parametrize("rel", ["kubespray/hosts.yaml", "hosts.ini"])
def test_examples_load_but_are_refused(rel):
    path = EXAMPLES / rel
    inv = load_inventory(path, allow_example=True)
    assert len(inv.by_role(CONTROL_PLANE)) == 3 and len(inv.by_role(WORKER)) >= 2
    assert {h.name for h in inv.by_role(ETCD)} == {h.name for h in inv.by_role(CONTROL_PLANE)}
    assert inv.cluster_vars["kube_pods_subnet"] == "10.244.0.0/16"
    assert all(h.address.startswith(("198.51.100.", "203.0.113.")) for h in inv.hosts)
    with pytest.raises(InventoryError, match=r"is an example inventory; copy it to inventory/"):
        load_hosts(str(path), Path.cwd())
    # the examples directory itself holds hosts.ini, so naming it is refused the same way
    with pytest.raises(InventoryError, match="is an example inventory"):
        load_hosts(str(EXAMPLES), Path.cwd())


def test_load_hosts_dispatches(kubespray, tmp_path):
    assert load_hosts("inventory", tmp_path).source == str(kubespray)
    assert load_hosts("cp1,cp2", tmp_path).source == "command line"


# Host specs


def test_host_specs():
    inv = parse_host_specs(
        "ssh://admin@198.51.100.1:2222?ssh_identity_file=/k&timeout=5&roles=control_plane+etcd,"
        "paramiko://198.51.100.2,node3,ubuntu@node4?sudo=true&roles=kube_node")
    a, b, c, d = inv.hosts
    assert a == Host("198.51.100.1", "198.51.100.1", 2222, "admin", "/k",
                     roles=frozenset({CONTROL_PLANE, ETCD}))
    assert (b.address, b.port, b.user, b.roles) == ("198.51.100.2", 22, "root", {WORKER})
    assert (c.name, c.become) == ("node3", False)
    assert (d.user, d.become, d.roles) == ("ubuntu", True, {WORKER})
    assert inv.source == "command line"
    assert parse_host_specs("n1", default_roles=frozenset({LB})).hosts[0].roles == {LB}


@pytest.mark.parametrize("spec", ["docker://abc", "local://", "ansible://all"])
def test_unsupported_scheme(spec):
    with pytest.raises(InventoryError, match=r"^unsupported host spec .*: kubeaccept connects "
                       r"over SSH \(ssh:// or paramiko://\)$"):
        parse_host_specs(f"node1,{spec}")


@pytest.mark.parametrize("spec, match", [
    ("ssh://n1?roles=boss", "unknown role boss"),
    ("ssh://n1?ssh_config=/c", "unknown option ssh_config"),
    ("ssh://n1:abc", "port is not a number"),
    ("inventory/prod/hosts.yaml", "neither an existing inventory"),
    ("hosts.yaml", "neither an existing inventory"),
    (" , ", "--hosts is empty"),
])
def test_bad_host_specs(spec, match):
    with pytest.raises(InventoryError, match=match):
        parse_host_specs(spec)


SSH_CONFIG = """\
# as operators write it: aliases, a bastion, the cluster's own known_hosts
Host bastion
    HostName 203.0.113.10
    User ubuntu
Host node1
    HostName 10.0.0.11
    User ubuntu
    Port 2222
    IdentityFile ~/.ssh/cluster.pem
    UserKnownHostsFile ~/.ssh/known_hosts.cluster
Host 10.0.0.*
    ProxyJump bastion
    StrictHostKeyChecking no
"""


@pytest.fixture
def ssh_config(tmp_path, monkeypatch):
    from kubeaccept.inventory import sshargs

    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "config").write_text(SSH_CONFIG)
    # not this machine's /etc/ssh/ssh_config: the test must not depend on it
    monkeypatch.setattr(sshargs, "CONFIG_FILES", ("~/.ssh/config",))
    return tmp_path


def test_ssh_config_is_read_as_ssh_reads_it(ssh_config):
    """OpenSSH (ssh_config(5)): options come from the command line, then ~/.ssh/config, then
    /etc/ssh/ssh_config, the first value obtained wins; Host patterns match the name given on
    the command line (Ansible gives ansible_host, else the inventory name); HostName replaces
    it for the connection."""
    hosts = write(ssh_config / "hosts.yaml", """
        kube_control_plane:
          hosts:
            node1: {}
            node2: {ansible_host: 10.0.0.12, ansible_user: admin}
            node3: {ansible_host: 10.0.0.13, ansible_ssh_common_args: "-o ProxyJump=none"}
    """)
    inv = load_inventory(hosts)
    n1 = inv.get("node1")
    assert (n1.address, n1.user, n1.port) == ("10.0.0.11", "ubuntu", 2222)
    assert n1.key_file == str(ssh_config / ".ssh" / "cluster.pem")
    assert n1.known_hosts == str(ssh_config / ".ssh" / "known_hosts.cluster")
    assert n1.host_key_checking and n1.proxy_jump is None  # "node1" is not 10.0.0.*
    n2 = inv.get("node2")
    assert (n2.address, n2.user, n2.port) == ("10.0.0.12", "admin", 22)  # ansible's -o User
    assert n2.proxy_jump == "bastion" and not n2.host_key_checking
    assert "node2" in unchecked_host_keys(inv) and "node1" not in unchecked_host_keys(inv)
    assert inv.get("node3").proxy_jump is None  # the command line's "none" came first


def test_ssh_config_given_with_F_replaces_the_default_files(ssh_config):
    other = ssh_config / "other.conf"
    other.write_text("Host node1\n    HostName 10.9.9.9\n")
    hosts = write(ssh_config / "hosts.yaml", f"""
        kube_control_plane:
          hosts:
            node1: {{ansible_ssh_common_args: "-F {other}"}}
    """)
    n1 = load_inventory(hosts).get("node1")
    assert (n1.address, n1.user, n1.port) == ("10.9.9.9", "root", 22)


def test_an_unreadable_ssh_config_is_one_line_naming_it(ssh_config):
    (ssh_config / ".ssh" / "config").write_text("Host node1\n    HostName\n")
    hosts = write(ssh_config / "hosts.yaml", "kube_control_plane:\n  hosts:\n    node1: {}\n")
    with pytest.raises(InventoryError, match=r"node1.*ssh config .*/\.ssh/config"):
        load_inventory(hosts)
