"""What Ansible itself does with an inventory, to compare kubeaccept's reading with.

- `ansible_inventory_host`: `ansible-inventory -i INV --host HOST` (the variables, flattened).
- `ansible_ssh_view`: the ssh command ansible-core really builds for every host (`ansible -m
  ping`, with a stand-in ssh_executable that only records its arguments and fails), read back
  by OpenSSH itself (`ssh -G`: the options ssh would use, first value wins).
Nothing leaves the machine: the stand-in never connects.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
ANSIBLE, ANSIBLE_INVENTORY = BIN / "ansible", BIN / "ansible-inventory"


def _env(tmp: Path, extra: dict | None = None) -> dict:
    (tmp / "ansible.cfg").write_text("")  # no ansible.cfg of the machine or the cwd
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update({"ANSIBLE_CONFIG": str(tmp / "ansible.cfg"), "ANSIBLE_LOCAL_TEMP": str(tmp / "t"),
                "ANSIBLE_SSH_CONTROL_PATH_DIR": str(tmp / "cp"), "ANSIBLE_NOCOLOR": "1",
                **(extra or {})})
    return env


def need_ansible() -> None:
    if not ANSIBLE.exists() or not ANSIBLE_INVENTORY.exists():
        pytest.skip(f"ansible-core's commands are not in {BIN}")


def ansible_inventory_host(inventory: Path, host: str, tmp: Path) -> dict:
    need_ansible()
    out = subprocess.run([str(ANSIBLE_INVENTORY), "-i", str(inventory), "--host", host],
                         env=_env(tmp), capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout)


SSH_G = ("hostname", "port", "user", "stricthostkeychecking", "userknownhostsfile",
         "proxycommand", "proxyjump")


def ansible_ssh_view(inventory: Path, tmp: Path, extra_vars: Path | None = None,
                     env: dict | None = None) -> dict[str, dict[str, str]]:
    """{host: {ssh -G option: value}} for every host Ansible would reach over ssh."""
    need_ansible()
    if not shutil.which("ssh"):
        pytest.skip("no OpenSSH client (ssh -G) on this machine")
    fake = tmp / "record-ssh"
    fake.write_text(f"#!{sys.executable}\nimport json, sys\n"
                    "sys.stderr.write('ARGV' + json.dumps(sys.argv[1:]))\nsys.exit(255)\n")
    fake.chmod(0o755)
    tree = tmp / "tree"
    cmd = [str(ANSIBLE), "-i", str(inventory), "all", "-m", "ping", "-t", str(tree)]
    if extra_vars:
        cmd += ["-e", f"@{extra_vars}"]
    subprocess.run(cmd, env=_env(tmp, {"ANSIBLE_SSH_EXECUTABLE": str(fake), **(env or {})}),
                   capture_output=True, text=True, timeout=120)
    view = {}
    for result in sorted(tree.iterdir()):
        msg = json.loads(result.read_text()).get("msg", "")
        if "ARGV" not in msg:
            continue  # not an ssh host (ansible_connection=local ran the ping here)
        argv = json.loads(msg[msg.index("ARGV") + 4:])
        # argv = [options..., address, remote command]: ask ssh what it would use
        got = subprocess.run(["ssh", "-F", "/dev/null", "-G", *argv[:-2], argv[-2]],
                             capture_output=True, text=True, timeout=30, check=True).stdout
        options = dict(line.split(" ", 1) for line in got.splitlines() if " " in line)
        view[result.name] = {k: " ".join(options[k].split()) for k in SSH_G if k in options}
    return view
