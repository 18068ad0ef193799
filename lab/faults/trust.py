"""Faults of the run itself (selftests/lab/test_trust.py): an unreachable host, a hung or
missing command, a sudo that asks for a password; the suite must stay bounded and say so."""

from __future__ import annotations

from .. import cluster
from .actions import (
    HANG,
    HANG_SECONDS,
    SUDO_PASSWORD,
    SUDO_USER,
    _sh,
)
from .fault import Fault

FAULTS = {f.name: f for f in (
    Fault("sshd-down", "sshd stopped: SSH connections refused", "w1",
          action=lambda rt: rt.stop("sshd")),
    Fault("ssh-blackhole", "INPUT drops SSH: SYNs get no answer", "w1",
          action=_sh("iptables -I INPUT 1 -p tcp --dport 22 -j DROP")),
    Fault("ssh-reject", "INPUT rejects SSH with icmp-host-prohibited (firewalld's way)", "w1",
          action=_sh("iptables -I INPUT 1 -p tcp --dport 22 -j REJECT "
                     "--reject-with icmp-host-prohibited")),
    Fault("command-hangs", "`ss` hangs (sleeps) on the node", "w1",
          action=_sh(f"printf '#!/bin/sh\\nexec sleep {HANG_SECONDS}\\n' > {HANG} && "
                     f"chmod 755 {HANG} && mount --bind {HANG} /usr/bin/ss"),
          undo=_sh("umount /usr/bin/ss 2>/dev/null; true")),
    Fault("dns-blackhole", "DNS to the CoreDNS pods dropped on their node: lookups time out",
          cluster.COREDNS_NODE,
          action=_sh("iptables -I FORWARD 1 -p udp --dport 53 -j DROP && "
                     "iptables -I FORWARD 1 -p tcp --dport 53 -j DROP")),
    Fault("sudo-password", f"a login user {SUDO_USER} whose sudo asks for a password "
          f"({SUDO_PASSWORD!r})", "w1",
          action=_sh(f"useradd -M -d /nonexistent -s /bin/sh {SUDO_USER} && "
                     f"echo '{SUDO_USER}:{SUDO_PASSWORD}' | chpasswd && "
                     f"echo '{SUDO_USER} ALL=(ALL) ALL' > /etc/sudoers.d/{SUDO_USER} && "
                     f"chmod 440 /etc/sudoers.d/{SUDO_USER}"),
          undo=_sh(f"rm -f /etc/sudoers.d/{SUDO_USER}; userdel {SUDO_USER} 2>/dev/null; true")),
    Fault("command-missing", "`ss` is not installed on the node", "w1",
          # /dev/null is not executable: `command -v ss` finds nothing, as without iproute2
          action=_sh("mount --bind /dev/null /usr/bin/ss"),
          undo=_sh("umount /usr/bin/ss 2>/dev/null; true")),
)}
