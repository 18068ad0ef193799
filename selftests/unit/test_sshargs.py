"""ssh's own reading of its arguments: the first value of an option wins, and a ProxyCommand's
words belong to the proxy. Where OpenSSH is installed, `ssh -G` (the options ssh would use)
is asked too, so the reference is ssh itself."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from kubeaccept.inventory import sshargs

# kubespray roles/kubespray_defaults (host named bastion), contrib/terraform/openstack's
# ansible_bastion_template.txt, Ansible's FAQ jump host forms, a first-wins pair, -p/-l flags.
CASES = [
    ("-o ProxyCommand='ssh -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no -W %h:%p "
     "-p 22 admin@203.0.113.5 '",
     {"proxycommand": "ssh -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no -W %h:%p "
                      "-p 22 admin@203.0.113.5", "stricthostkeychecking": None,
      "userknownhostsfile": None}),
    ("-o ProxyCommand='ssh -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -W %h:%p "
     "-q ubuntu@203.0.113.5 -i /k'",
     {"proxycommand": "ssh -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -W %h:%p "
                      "-q ubuntu@203.0.113.5 -i /k", "stricthostkeychecking": None}),
    ('-o ProxyCommand="ssh -W %h:%p -q user@gateway.example.com"',
     {"proxycommand": "ssh -W %h:%p -q user@gateway.example.com", "proxyjump": None}),
    ("-J user@gateway.example.com", {"proxyjump": "user@gateway.example.com"}),
    ("-o ProxyJump=ops@203.0.113.5:2222,ubuntu@10.0.0.5 -o 'ProxyCommand ssh -W %h:%p x'",
     {"proxyjump": "ops@203.0.113.5:2222,ubuntu@10.0.0.5", "proxycommand": None}),
    ("-o StrictHostKeyChecking=no -o ProxyCommand=\"ssh -W %h:%p -q root@203.0.113.7\"",
     {"stricthostkeychecking": "no", "proxycommand": "ssh -W %h:%p -q root@203.0.113.7"}),
    ("-o StrictHostKeyChecking=no -o StrictHostKeyChecking=yes -oUserKnownHostsFile=/k1 "
     "-o userknownhostsfile=/k2", {"stricthostkeychecking": "no", "userknownhostsfile": "/k1"}),
    ("-p 2222 -o Port=22 -l me -o User=other -Cq", {"port": "2222", "user": "me"}),
    ("-o Port=22 -p 2222 -o 'StrictHostKeyChecking accept-new'",
     {"port": "22", "stricthostkeychecking": "accept-new"}),
]

SSH_G_WORDS = {"no": "false", "yes": "true"}  # how ssh -G prints StrictHostKeyChecking


@pytest.mark.parametrize("args, expected", CASES)
def test_first_value_wins_and_proxy_words_stay_inside(args, expected):
    """ssh_config(5): "For each parameter, the first obtained value will be used";
    ProxyCommand and ProxyJump: "whichever is specified first will prevent later instances
    of the other from taking effect"."""
    got = sshargs.parse(sshargs.split(args))
    for name, value in expected.items():
        assert got.get(name) == value, name
    if shutil.which("ssh") is None:
        return
    out = subprocess.run(["ssh", "-F", "/dev/null", "-G", *sshargs.split(args), "target"],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    ssh = dict(line.split(" ", 1) for line in out.splitlines() if " " in line)
    for name, value in expected.items():
        if value is None:
            assert name not in ssh or name == "stricthostkeychecking" and ssh[name] == "ask" \
                or name == "userknownhostsfile" and ssh[name].endswith(".ssh/known_hosts2"), name
        elif name == "proxyjump":  # ssh -G writes later hops as user@[host]
            assert sshargs.parse_jumps(ssh[name]) == sshargs.parse_jumps(value)
        else:
            assert " ".join(ssh[name].split()) == SSH_G_WORDS.get(value, value), name


def test_ssh_refuses_j_after_a_proxy_command():
    with pytest.raises(sshargs.SshArgsError, match="Cannot specify -J with ProxyCommand"):
        sshargs.parse(sshargs.split("-o ProxyCommand='ssh -W %h:%p b' -J u@b"))
    if shutil.which("ssh"):
        r = subprocess.run(["ssh", "-F", "/dev/null", "-G", "-o", "ProxyCommand=ssh -W %h:%p b",
                            "-J", "u@b", "target"], capture_output=True, text=True, timeout=30)
        assert r.returncode != 0 and "Cannot specify -J with ProxyCommand" in r.stderr


def test_none_means_no_proxy():
    got = sshargs.parse(["-o", "ProxyCommand=none"])
    assert got.proxy_command is None and got.proxy_jump is None


def test_proxy_command_tokens():
    """ssh_config(5) TOKENS for ProxyCommand: %%, %h, %n, %p, %r."""
    assert sshargs.expand_proxy_command("nc %h %p # %r %n %% %x", "10.0.0.21", 2222, "ubuntu",
                                        "w1") == "nc 10.0.0.21 2222 # ubuntu w1 % %x"


@pytest.mark.parametrize("spec, jumps", [
    ("user@gateway.example.com", ["user@gateway.example.com:22"]),
    ("ops@203.0.113.5:2222,10.0.0.5", ["ops@203.0.113.5:2222", "10.0.0.5:22"]),
    ("ssh://ops@[2001:db8::1]:2200", ["ops@2001:db8::1:2200"]),
])
def test_jump_specs(spec, jumps):
    assert [str(j) for j in sshargs.parse_jumps(spec)] == jumps


def test_bad_jump_spec():
    with pytest.raises(sshargs.SshArgsError, match=r"cannot read 'ops@host:port' as"):
        sshargs.parse_jumps("ops@host:port")
