"""node_swap: swap that is on now or will be on after a reboot, decided as systemd decides it
(systemd-fstab-generator, unit enablement and masking, zram-generator), then kubelet's rule
for the node (failSwapOn, memorySwap.swapBehavior, cgroup v2 only)."""

from __future__ import annotations

import base64
from pathlib import Path

from kubeaccept.facts.swapboot import escape_path, source_path

from .factory import context, facts
from .factory import judge as run_check

FIX = Path(__file__).parent / "fixtures" / "swap"
DEBIAN_SWAP = "/dev/disk/by-uuid/8e2f1b4c-7a3d-4e5f-9b6a-1c2d3e4f5a6b"
NO_SWAP = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def boot(*lines: str, cmdline="BOOT_IMAGE=/vmlinuz root=/dev/sda1 ro quiet",
         meminfo="MemTotal:        8013220 kB") -> str:
    return "\n".join([*lines, f"cmdline {cmdline}", "zswap N"]
                     + ([f"meminfo {meminfo}"] if meminfo else []))


def judge(fstab: str, boot_lines: str | None, kubelet: str | None = None, cgroup="cgroup2fs",
          swaps=NO_SWAP, flags: str | None = None):
    files = {"/etc/fstab": fstab}
    if kubelet is not None:
        files["/var/lib/kubelet/config.yaml"] = kubelet
    if flags is not None:
        files["/var/lib/kubelet/kubeadm-flags.env"] = flags
    sections = {"swaps": swaps, "cgroupfs": cgroup}
    if boot_lines is not None:
        sections["swap-boot"] = boot_lines
    return run_check("node_swap", node=context(facts("n1", sections=sections, files=files)))


def test_unit_names_are_systemd_escape_path():
    """`systemd-escape --path` (systemd 252) names the unit of an fstab source."""
    assert escape_path(source_path("UUID=8e2f1b4c-7a3d")) == "dev-disk-by\\x2duuid-8e2f1b4c\\x2d7a3d"
    assert escape_path("/var/lib/swap-spare.img") == "var-lib-swap\\x2dspare.img"
    assert escape_path("/.hidden/x") == "\\x2ehidden-x"
    assert escape_path("/dev/disk/by-label/my swap") == "dev-disk-by\\x2dlabel-my\\x20swap"


def test_debian_installer_swap_partition_that_exists_fails():
    """systemd-fstab-generator: a `swap` line without noauto becomes a unit swap.target
    wants; the UUID's /dev/disk/by-uuid link exists, so it comes back at boot."""
    out = judge((FIX / "debian-installer.fstab").read_text(), boot(f"disk {DEBIAN_SWAP}"))
    assert [f.subject for f in out if not f.ok] == ["n1:/etc/fstab:14"]
    f = out[0]
    assert "/etc/fstab line 14 enables swap at boot" in f.observed
    assert "dev-disk-by\\x2duuid-8e2f1b4c\\x2d7a3d\\x2d4e5f\\x2d9b6a\\x2d1c2d3e4f5a6b.swap" in f.observed
    assert "running with swap on is not supported" in f.why and "sed -i '14s/^/#/'" in f.fix


def test_swap_device_that_does_not_exist_will_not_come_back():
    """systemd waits for the device (DefaultDeviceTimeoutSec, 90 s) and the swap unit fails:
    no swap after the reboot. Without nofail the boot is delayed; say so, do not fail."""
    out = judge((FIX / "debian-installer.fstab").read_text(), boot())
    assert [f.ok for f in out] == [True]
    assert "does not exist" in out[0].note and "waits for the device" in out[0].note
    nofail = (FIX / "debian-installer.fstab").read_text().replace("sw  ", "sw,nofail")
    assert "nofail: the boot goes on" in judge(nofail, boot())[0].note


def test_ubuntu_swap_file():
    """Ubuntu's installer: /swap.img with `sw`; the file exists -> swap at boot."""
    text = (FIX / "ubuntu-installer.fstab").read_text()
    out = judge(text, boot("exists /swap.img"))
    assert not out[0].ok and "swapfile" not in out[0].observed
    assert "/etc/fstab line 12 enables swap at boot: /swap.img" in out[0].observed
    assert "swap.img.swap" in out[0].observed


def test_noauto_is_not_activated_at_boot():
    """fstab(5) noauto: `swapon -a` skips it and systemd-fstab-generator does not add it to
    swap.target."""
    out = judge("/swap.img none swap sw,noauto 0 0\n", boot("exists /swap.img"))
    assert out[0].ok and "has noauto" in out[0].note


def test_masked_unit_of_an_fstab_line():
    """`systemctl mask swap.img.swap` links it to /dev/null in /etc: it never starts."""
    out = judge("/swap.img none swap sw 0 0\n",
                boot("exists /swap.img", "link /etc/systemd/system/swap.img.swap /dev/null"))
    assert out[0].ok and "masks it" in out[0].note
    masked_target = judge("/swap.img none swap sw 0 0\n",
                          boot("exists /swap.img", "link /etc/systemd/system/swap.target /dev/null"))
    assert masked_target[0].ok


def test_kernel_command_line_turns_fstab_swap_off():
    """systemd-fstab-generator(8): systemd.swap=0 disables swap units from fstab."""
    out = judge("/swap.img none swap sw 0 0\n", boot("exists /swap.img",
                                                     cmdline="ro quiet systemd.swap=0"))
    assert out[0].ok and "systemd.swap=0" in out[0].note


def test_enabled_swap_unit_not_in_fstab_fails():
    """systemd.swap(5) unit enabled with `systemctl enable` (a swap.target.wants symlink):
    started at boot though /etc/fstab has no swap."""
    unit = (FIX / "swapfile2.swap").read_text()
    out = judge("UUID=x / ext4 defaults 0 1\n", boot(
        f"unit /etc/systemd/system/swapfile2.swap {b64(unit)}",
        "link /etc/systemd/system/swap.target.wants/swapfile2.swap "
        "/etc/systemd/system/swapfile2.swap", "exists /swapfile2"))
    bad = [f for f in out if not f.ok]
    assert [f.subject for f in bad] == ["n1:swapfile2.swap"]
    assert "What=/swapfile2" in bad[0].observed and "swap.target.wants" in bad[0].observed
    assert "systemctl disable --now swapfile2.swap" in bad[0].fix


def test_swap_unit_installed_but_not_enabled_passes():
    unit = (FIX / "swapfile2.swap").read_text()
    out = judge("", boot(f"unit /etc/systemd/system/swapfile2.swap {b64(unit)}",
                         "exists /swapfile2"))
    assert out[0].ok and "is not enabled" in out[0].note
    assert "WantedBy=swap.target" in out[0].note


def test_fedora_zram_generator_defaults_fail():
    """zram-generator(8) with Fedora's zram-generator-defaults: /dev/zram0 is swap at boot."""
    conf = (FIX / "fedora-zram-generator.conf").read_text()
    lines = (f"zram-conf /usr/lib/systemd/zram-generator.conf {b64(conf)}",
             "zram-generator /usr/lib/systemd/system-generators/zram-generator")
    out = judge("", boot(*lines))
    assert not out[0].ok and out[0].subject == "n1:zram:zram0"
    assert "zram-size = min(ram, 8192)" in out[0].observed
    assert "7825 MB" in out[0].observed  # min(ram, 8192) with MemTotal 8013220 kB
    assert "systemctl mask dev-zram0.swap" in out[0].fix
    # the empty /etc file the package's comment recommends replaces /usr/lib's
    emptied = judge("", boot(*lines, f"zram-conf /etc/systemd/zram-generator.conf {b64('')}"))
    assert emptied[0].ok
    zero = judge("", boot(lines[1], "zram-conf /etc/systemd/zram-generator.conf "
                          + b64("[zram0]\nzram-size = 0\n")))
    assert zero[0].ok and "its size is 0 (0 with ram = 7825)" in zero[0].note
    not_installed = judge("", boot(lines[0]))
    assert not_installed[0].ok and "not installed" in not_installed[0].note


def test_active_swap_now_fails_whatever_boot_says():
    out = judge("", boot(), swaps=NO_SWAP + "\n/swapfile file 1048572 0 -2")
    assert not out[0].ok and out[0].subject == "n1:/proc/swaps"
    assert "swapoff -a" in out[0].fix


def test_kubelet_allows_limited_swap_on_cgroup_v2_only():
    """KEP-2400: failSwapOn: false + memorySwap.swapBehavior; swap is supported on cgroup v2
    only."""
    kubelet = ("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"
               "failSwapOn: false\nmemorySwap:\n  swapBehavior: LimitedSwap\n")
    fstab = "/swap.img none swap sw 0 0\n"
    ok = judge(fstab, boot("exists /swap.img"), kubelet)
    assert [f.ok for f in ok] == [True] and "LimitedSwap, cgroup v2" in ok[0].observed
    v1 = judge(fstab, boot("exists /swap.img"), kubelet, cgroup="tmpfs")
    assert not v1[0].ok and "cgroup v1" in v1[0].observed and "KEP-2400" in v1[0].why


def test_unlimited_swap_is_refused_by_kubelet_1_30():
    kubelet = "failSwapOn: false\nmemorySwap:\n  swapBehavior: UnlimitedSwap\n"
    out = judge("/swap.img none swap sw 0 0\n", boot("exists /swap.img"), kubelet)
    assert not out[0].ok and "removed in Kubernetes 1.30" in out[0].observed


def test_fail_swap_on_flag_overrides_the_config():
    """kubelet flags win over its config file: kubeadm-flags.env --fail-swap-on=false."""
    flags = 'KUBELET_KUBEADM_ARGS="--fail-swap-on=false --container-runtime-endpoint=x"\n'
    out = judge("/swap.img none swap sw 0 0\n", boot("exists /swap.img"), flags=flags)
    assert out[0].ok and "--fail-swap-on=false" in out[0].evidence[0]


def test_escaped_space_in_a_source():
    """fstab(5): spaces in a field are written \\040."""
    out = judge("/var/swap\\040file none swap defaults 0 0\n", boot("exists /var/swap file"))
    assert not out[0].ok and "var-swap\\x20file.swap" in out[0].observed


def test_without_swap_boot_facts_only_fstab_and_proc_swaps():
    out = judge("/swap.img none swap sw 0 0\n", None)
    assert not out[0].ok
    clean = judge("", None)
    assert clean[0].ok and "units and zram not read" in clean[0].observed
