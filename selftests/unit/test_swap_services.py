"""Swap that services turn on at boot (kubeaccept.facts.swapservices, node_swap), judged on
what real programs produced: `systemctl --root` of systemd 252.38-1~deb12u1 over Debian's
dphys-swapfile 20100506-7.1 and zram-tools 0.3.3.1-1.1 as their postinst enables them
(fixtures/swap/systemctl-root.txt), and gather.sh's own sections run over such a root
(fixtures/swap/gather-chroot.txt). References: systemctl(1) is-enabled, systemd.unit(5)
(search path, `.wants/` directories in every unit directory, masks), systemd.service(5)
(ExecStart lists, an empty assignment resets), the packages' /sbin/dphys-swapfile and
/usr/sbin/zramswap scripts."""

from __future__ import annotations

import base64
import re
from pathlib import Path

from kubeaccept.facts.swapservices import Service, parse, swapon_in

from .factory import context, facts
from .factory import judge as run_check

FIX = Path(__file__).parent / "fixtures" / "swap"
PKG = FIX / "debian12"
UNITS = {"dphys-swapfile.service": (PKG / "dphys-swapfile.service").read_text(),
         "zramswap.service": (PKG / "zramswap.service").read_text()}
NO_SWAP = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def states() -> list[tuple[str, dict[str, str], list[tuple[str, str]], list[str]]]:
    """(step title, {unit: is-enabled word}, links, files) of each `# state` block."""
    out, title = [], ""
    text = (FIX / "systemctl-root.txt").read_text()
    for m in re.finditer(r"^## (.*?)$|^# state\n(.*?)^# end$", text, re.M | re.S):
        if m.group(1):
            title = m.group(1)
            continue
        body = m.group(2).splitlines()
        words = dict(re.match(r"is-enabled (\S+): (.*)", x).groups() for x in body
                     if x.startswith("is-enabled "))
        links = [tuple(x.split(" ")[1:3]) for x in body if x.startswith("link ")]
        files = [x.split(" ", 1)[1] for x in body if x.startswith("file ")]
        out.append((title, words, links, files))
    return out


def service(name: str, links, files) -> Service:
    """The unit as gather.sh reports it from that root: its files in the unit directories
    (the package's under /usr/lib), masks, and the links that want it."""
    unit_files = [(f"/usr/lib/systemd/system/{name}", UNITS[name])]
    unit_files += [(p, UNITS[name]) for p in files if p.rsplit("/", 1)[1] == name]
    unit_files += [(p, None) for p, t in links if p.rsplit("/", 1)[1] == name and t == "/dev/null"]
    wants = tuple((p, t) for p, t in links if p.rsplit("/", 1)[1] == name
                  and p.rsplit("/", 2)[1].endswith((".wants", ".requires")))
    return Service(name, tuple(unit_files), wants)


def test_is_enabled_says_what_systemctl_root_said():
    """Every state of the recorded run: after the postinst's `deb-systemd-helper enable`
    ("enabled"), `disable` (which fails on the SysV sync without update-rc.d, leaving the link:
    still "enabled"), `mask` with the wants link left ("masked"), `mask --runtime`
    ("masked-runtime"), an /etc copy re-enabled, a hand-made default.target.wants link, a
    vendor link in /usr/lib (is-enabled says "disabled"), an /etc unit file beside a /run
    mask (the /etc file wins: "disabled"), the postinst's unmask after an admin's mask."""
    seen = states()
    assert len(seen) == 9
    for title, words, links, files in seen:
        for name, word in words.items():
            assert service(name, links, files).is_enabled() == word, (title, name)
    assert {w for _, words, _, _ in seen for w in words.values()} == {
        "enabled", "disabled", "masked", "masked-runtime"}


def _sections(part: str) -> dict[str, str]:
    out, name = {}, None
    for line in part.splitlines():
        m = re.match(r"@@TOK (\S+)$", line)
        if m:
            name = m.group(1)
            out[name] = ""
        elif name:
            out[name] += line + "\n"
    return out


def gathered() -> tuple[dict[str, str], dict[str, str]]:
    installed, fixed = (FIX / "gather-chroot.txt").read_text().split("=== fixed\n")
    return _sections(installed), _sections(fixed)


def judge(sections: dict[str, str], **extra):
    s = {"swaps": NO_SWAP, "cgroupfs": "cgroup2fs", **sections, **extra}
    return run_check("node_swap", node=context(facts("n1", sections=s, files={"/etc/fstab": ""})))


def test_debian_swap_packages_as_installed_fail_each_with_its_fix():
    """gather.sh's sections over a root where dpkg would have installed dphys-swapfile,
    zram-tools and systemd-zram-generator (their postinst enables the services; Debian's
    /etc/systemd/zram-generator.conf ships `[zram0]`): four sources of swap at boot."""
    installed, _ = gathered()
    out = judge(installed)
    bad = {f.subject: f for f in out if not f.ok}
    assert sorted(bad) == ["n1:service:dphys-swapfile.service", "n1:service:extra.service",
                           "n1:service:zramswap.service", "n1:zram:zram0"]
    dphys = bad["n1:service:dphys-swapfile.service"]
    # CONF_SWAPFACTOR 2 × (7825 + 10) MB, capped by the shipped default CONF_MAXSWAP=2048
    assert "/var/swap of 2048 MB (2 × RAM, capped by CONF_MAXSWAP=2048)" in dphys.observed
    assert "systemctl is-enabled: enabled" in dphys.observed
    assert "/etc/systemd/system/multi-user.target.wants/dphys-swapfile.service" in dphys.observed
    assert "dphys-swapfile uninstall" in dphys.fix and "apt purge dphys-swapfile" in dphys.fix
    assert "running with swap on is not supported" in dphys.why
    zram = bad["n1:service:zramswap.service"]
    assert "/dev/zram0 swap of 256 MiB (its default)" in zram.observed
    assert "apt purge zram-tools" in zram.fix
    extra = bad["n1:service:extra.service"]
    assert "/usr/local/bin/make-swap, a script that turns swap on" in extra.observed
    assert "3912 MB" in bad["n1:zram:zram0"].observed  # min(7825 / 2, 4096)


def test_after_the_fixes_nothing_comes_back():
    """The same root after `systemctl disable dphys-swapfile.service`, `systemctl mask
    zramswap.service dev-zram0.swap` and `systemctl disable extra.service`: green, and the
    note says what is masked."""
    _, fixed = gathered()
    out = judge(fixed)
    assert [f.ok for f in out] == [True]
    assert "zramswap.service: masked (/etc/systemd/system/zramswap.service)" in out[0].note
    assert "zram [zram0]: /etc/systemd/system/dev-zram0.swap masks it" in out[0].note


def test_dphys_swapfile_of_size_zero_fails_to_start_and_makes_no_swap():
    """/sbin/dphys-swapfile `setup` with CONF_SWAPSIZE=0: `dd count=0` leaves an empty file
    and mkswap refuses it under `set -e` (mkswap-empty.txt: util-linux 2.38.1's message)."""
    installed, _ = gathered()
    conf = (PKG / "etc-dphys-swapfile").read_text() + "CONF_SWAPSIZE=0\n"
    services = re.sub(r"^svc-conf /etc/dphys-swapfile .*$", f"svc-conf /etc/dphys-swapfile "
                      f"{b64(conf)}", installed["swap-services"], flags=re.M)
    out = judge({**installed, "swap-services": services})
    assert "n1:service:dphys-swapfile.service" not in {f.subject for f in out if not f.ok}
    message = (FIX / "mkswap-empty.txt").read_text().splitlines()[1]
    assert message in out[0].note


def test_vendor_wants_link_starts_it_though_is_enabled_says_disabled():
    """systemd.unit(5): `.wants/` directories count in every unit directory, /usr/lib too;
    systemctl is-enabled only reports links in /etc and /run (step 10 of the recorded run)."""
    text = (f"svc-unit /usr/lib/systemd/system/zramswap.service {b64(UNITS['zramswap.service'])}\n"
            "svc-want /usr/lib/systemd/system/multi-user.target.wants/zramswap.service "
            "../zramswap.service\n")
    out = judge({"swap-services": text})
    assert not out[0].ok and "systemctl is-enabled: disabled" in out[0].observed


def test_runtime_mask_and_drop_in_reset():
    """A mask in /run stops the service (masked-runtime) unless /etc holds a unit file; a
    drop-in's empty `ExecStart=` clears the package's lines (systemd.service(5))."""
    unit = b64(UNITS["dphys-swapfile.service"])
    want = ("svc-want /etc/systemd/system/multi-user.target.wants/dphys-swapfile.service "
            "/lib/systemd/system/dphys-swapfile.service\n")
    masked = judge({"swap-services": f"svc-unit /usr/lib/systemd/system/dphys-swapfile.service "
                    f"{unit}\nsvc-link /run/systemd/system/dphys-swapfile.service /dev/null\n"
                    + want})
    assert masked[0].ok and "masked (/run/systemd/system/dphys-swapfile.service)" in \
        masked[0].note
    reset = b64("[Service]\nExecStart=\nExecStart=/bin/true\n")
    cleared = judge({"swap-services": f"svc-unit /usr/lib/systemd/system/dphys-swapfile.service "
                     f"{unit}\nsvc-unit /etc/systemd/system/dphys-swapfile.service.d/off.conf "
                     f"{reset}\n" + want})
    assert cleared[0].ok


def test_any_swapon_in_an_enabled_unit_and_not_swapon_show():
    """A unit that runs swapon itself is swap at boot; `swapon --show` only lists. The unit
    text here is written for the test (zram-config's name is Ubuntu's; Debian has no such
    package to unpack)."""
    def run(cmd: str, name="local-swap.service"):
        unit = b64(f"[Service]\nType=oneshot\nExecStart={cmd}\n[Install]\nWantedBy=multi-user.target\n")
        return judge({"swap-services": f"svc-unit /etc/systemd/system/{name} {unit}\n"
                      f"svc-want /etc/systemd/system/multi-user.target.wants/{name} "
                      f"/etc/systemd/system/{name}\n"})
    on = run("/sbin/swapon /swapfile")
    assert not on[0].ok and "runs swapon" in on[0].observed
    assert run("/bin/sh -c 'mkswap /dev/vdb && swapon /dev/vdb'")[0].ok is False
    assert run("/sbin/swapon --show")[0].ok
    zc = run("/usr/bin/init-zram-swapping", "zram-config.service")
    assert not zc[0].ok and "(zram-config)" in zc[0].observed
    assert swapon_in("# swapon /x\necho done") is None


def test_parse_keeps_masks_and_drop_ins_apart():
    svcs = parse("svc-link /etc/systemd/system/a.service /dev/null\n"
                 f"svc-unit /usr/lib/systemd/system/a.service {b64('[Service]')}\n"
                 f"svc-unit /etc/systemd/system/a.service.d/x.conf {b64('[Service]')}\n")
    a = svcs.services["a.service"]
    assert a.masked() == "/etc/systemd/system/a.service" and a.is_enabled() == "masked"
    assert [p for p, _ in a.dropins()] == ["/etc/systemd/system/a.service.d/x.conf"]
