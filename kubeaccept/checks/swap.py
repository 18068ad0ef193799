"""Swap: on now, or on after the next boot, judged the way the node will judge it.

At boot, systemd (not `swapon -a`) activates swap: systemd-fstab-generator turns each
/etc/fstab `swap` line into a `.swap` unit pulled in by swap.target unless it says `noauto`
(or `systemd.swap=0` / `fstab=0` is on the kernel command line); `.swap` unit files start when
a boot target wants them; a service a boot target wants may turn swap on itself
(dphys-swapfile, zramswap, any swapon); zram-generator makes /dev/zramN swap from its config
(kubeaccept.facts.zramgen). A masked unit
never starts; a device that does not exist makes its unit wait (90 s) and fail. Then kubelet's
own rule decides whether swap is a problem: `failSwapOn` (default true), and with it false,
`memorySwap.swapBehavior` on cgroup v2 only (KEP-2400)."""

from __future__ import annotations

import re

from kubeaccept.checks import NodeContext
from kubeaccept.facts.config import KUBELET_CONFIG, ConfigError, load
from kubeaccept.facts.swapboot import SwapBoot, escape_path, source_path, unit_field
from kubeaccept.facts.swapservices import Service, SwapServices, analyse
from kubeaccept.model.findings import Finding, passed
from kubeaccept.model.registry import Context, check
from kubeaccept.model.roles import NODE

FLAGS = "/var/lib/kubelet/kubeadm-flags.env"
WHY = ("kubelet exits at start: \"failed to run Kubelet: running with swap on is not supported, "
       "please disable swap! or set --fail-swap-on flag to false\", and the node goes NotReady")


def fstab_entries(text: str) -> list[tuple[int, str, str, list[str]]]:
    """(line number, line, source, options) of each swap entry, as libmount reads fstab:
    whitespace-separated fields, `#` comments, octal escapes (\\040) in the source."""
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        fields = stripped.split()
        if len(fields) >= 3 and fields[2] == "swap":
            source = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[0])
            options = fields[3].split(",") if len(fields) > 3 else ["defaults"]
            out.append((number, stripped, source, options))
    return out


def fstab_swap_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) of swap entries (kept for callers of the old interface)."""
    return [(n, line) for n, line, _, _ in fstab_entries(text)]


class _Judge:
    """Collects, per swap source, whether it is on now / will be on at boot, and why."""

    def __init__(self, ctx: NodeContext, boot: SwapBoot | None):
        self.ctx, self.boot = ctx, boot
        self.name = ctx.host.name
        self.on: list[Finding] = []  # sources of swap (failing unless kubelet allows swap)
        self.notes: list[str] = []   # sources that will not be on, and why

    def source(self, subject: str, observed: str, fix: str, evidence: tuple[str, ...]) -> None:
        self.on.append(Finding(f"{self.name}:{subject}", False, observed,
                               "no swap now and none at boot", WHY, fix, evidence))

    # --- now ------------------------------------------------------------------------------
    def active(self) -> None:
        active = self.ctx.facts.swaps
        if active:
            names = [a.split()[0] for a in active]
            self.source("/proc/swaps", f"{len(active)} active swap area(s): {', '.join(names)}",
                        "swapoff -a now, and remove what enables it at boot (below)",
                        tuple(f"/proc/swaps: {line}" for line in active))

    # --- fstab ----------------------------------------------------------------------------
    def fstab(self) -> set[str]:
        """Judge each fstab swap line; returns the unit names it generates."""
        units = set()
        text = self.ctx.facts.file("/etc/fstab").text or ""
        boot = self.boot
        off = boot and (boot.cmdline_flag("systemd.swap") in ("0", "no", "false", "off")
                        or boot.cmdline_flag("fstab") in ("0", "no", "false", "off")
                        or boot.cmdline_flag("rd.fstab") in ("0", "no", "false", "off"))
        for number, line, source, options in fstab_entries(text):
            path = source_path(source)
            unit = escape_path(path) + ".swap"
            units.add(unit)
            where = f"/etc/fstab line {number}"
            evidence = (f"/etc/fstab:{number}: {line}",)
            if "noauto" in options:
                self.notes.append(f"{where} ({source}) has noauto: neither systemd nor "
                                  "`swapon -a` activates it at boot")
                continue
            if off:
                self.notes.append(f"{where} ({source}): the kernel command line "
                                  f"({boot.cmdline[:80]}) turns systemd-fstab-generator's "
                                  "swap units off")
                continue
            masked = boot and (boot.masked(unit) or boot.masked("swap.target"))
            if masked:
                self.notes.append(f"{where} ({source}): {masked} masks it: it never starts")
                continue
            if boot and path.startswith("/") and not self._exists(path):
                self.notes.append(
                    f"{where} ({source}): {path} does not exist, so {unit} will not come back"
                    + (" (nofail: the boot goes on without it)" if "nofail" in options else
                       " — the boot waits for the device (90 s by default) before giving up; "
                       "add nofail or remove the line"))
                continue
            self.source(f"/etc/fstab:{number}",
                        f"/etc/fstab line {number} enables swap at boot: {line} "
                        f"(systemd-fstab-generator makes {unit}, wanted by swap.target)",
                        f"comment out line {number} of /etc/fstab "
                        f"(sed -i '{number}s/^/#/' /etc/fstab), or add noauto to its options",
                        evidence)
        return units

    def _exists(self, path: str) -> bool:
        if path.startswith("/dev/disk/"):
            return path in self.boot.disks or path.replace("\\x2f", "/") in self.boot.disks
        return path in self.boot.exists

    # --- swap units -----------------------------------------------------------------------
    def units(self, from_fstab: set[str]) -> None:
        boot = self.boot
        for name in boot.swap_units():
            if name in from_fstab:
                continue  # judged with its fstab line
            unit = boot.unit(name)
            if boot.masked(name):
                self.notes.append(f"{name}: masked ({boot.masked(name)}): it never starts")
                continue
            enablers = boot.enablers(name)
            if unit is None or unit.text is None and not enablers:
                continue
            what = unit_field(unit.text or "", "What") if unit and unit.text else None
            if not enablers:
                wanted = unit_field(unit.text or "", "WantedBy") or ""
                self.notes.append(f"{name} ({unit.path}) is not enabled"
                                  + (f" (its [Install] says WantedBy={wanted}: "
                                     f"`systemctl enable {name}` would start it at boot)"
                                     if wanted else "") + ": it does not start at boot")
                continue
            if boot.masked("swap.target") and all("swap.target" in e for e in enablers):
                self.notes.append(f"{name}: swap.target is masked: it does not start")
                continue
            if what and what.startswith("/") and not self._exists(what):
                self.notes.append(f"{name}: What={what} does not exist: it will fail at boot")
                continue
            self.source(name, f"{name} ({unit.path if unit else '?'}, What={what or '?'}) is "
                        f"started at boot by {', '.join(enablers)}",
                        f"systemctl disable --now {name} (or systemctl mask {name})",
                        tuple([f"{unit.path}: What={what}" if unit else name] + enablers))

    # --- zram -----------------------------------------------------------------------------
    def zram(self) -> None:
        """zram-generator as its 1.1.2 release decides (kubeaccept.facts.zramgen)."""
        boot = self.boot
        out = boot.zram()
        configured = out.files or boot.cmdline_flag("systemd.zram") is not None
        if not configured:
            return
        if not boot.zram_generator:
            if out.swaps or out.undecided:
                self.notes.append(f"{', '.join(out.files) or 'systemd.zram'} configures zram "
                                  "swap but zram-generator is not installed")
            return
        if boot.generator_masked():
            self.notes.append(f"{boot.generator_masked()} links zram-generator to /dev/null: "
                              "it does not run")
            return
        if out.disabled:
            self.notes.append(f"{out.disabled}: zram-generator makes no device")
            return
        if out.error:
            self.notes.append(f"zram-generator stops on its configuration and makes no device "
                              f"({out.error}; it logs it to the kernel log, `dmesg`)")
            return
        for dev, why in out.dropped:
            self.notes.append(f"zram [{dev}]: not made: {why}")
        files = ", ".join(out.files) or "no file"
        for dev, why in out.undecided:
            self.on.append(Finding(
                f"{self.name}:zram:{dev}", False,
                f"zram-generator may make swap at boot and this could not be decided: {why} "
                f"(files read: {files})", "no swap now and none at boot", WHY,
                "after a boot, `zramctl` and `swapon --show` say; `systemctl mask "
                "dev-zramN.swap` keeps zram swap off whatever the size",
                (f"zram-generator files read in order: {files}",)))
        for dev in out.devices:
            if not dev.swap:
                self.notes.append(f"zram [{dev.name}] is a file system at {dev.mount_point} "
                                  "(mount-point set), not swap")
                continue
            unit = f"dev-{dev.name}.swap"
            mask = (boot.masked(unit) or boot.masked(f"systemd-zram-setup@{dev.name}.service")
                    or boot.masked("swap.target"))
            if mask:
                self.notes.append(f"zram [{dev.name}]: {mask} masks it")
                continue
            keys = " ".join(f"{k} = {v}" for k, v in sorted(dev.keys.items())) or "(defaults)"
            source = ("systemd.zram on the kernel command line" if not out.files
                      else f"files read in order: {files}")
            self.source(f"zram:{dev.name}",
                        f"zram-generator makes /dev/{dev.name} swap at boot "
                        f"({dev.size_mb:.0f} MB; [{dev.name}] {keys}; {source}), "
                        f"as {unit} wanted by swap.target",
                        f"systemctl mask {unit} (a link in /etc beats the generated unit), or "
                        f"remove [{dev.name}] from {files} (Debian: apt purge "
                        "systemd-zram-generator; Fedora: dnf remove zram-generator-defaults)",
                        (f"zram-generator: [{dev.name}] {keys}", f"read: {files}",
                         f"MemTotal: {boot.memtotal_kb} kB"))

    # --- services -------------------------------------------------------------------------
    def services(self, svcs: SwapServices) -> None:
        """Services a boot target wants whose Exec lines turn swap on (dphys-swapfile,
        zram-tools' zramswap, zram-config, any swapon/mkswap)."""
        memtotal = self.boot.memtotal_kb if self.boot else None
        for name, svc in sorted(svcs.services.items()):
            # a masked service is read as the unit under its mask, to say what it would do
            bare = Service(name, tuple(f for f in svc.files if f[1] is not None), svc.wants)
            effect = analyse(bare, svcs, memtotal)
            if effect is None:
                continue
            state = svc.is_enabled()
            if svc.masked():
                self.notes.append(f"{name}: masked ({svc.masked()}): it never starts, though "
                                  f"{effect.what}")
                continue
            wants = svc.boot_wants()
            if not wants:
                self.notes.append(f"{name} is linked only from "
                                  f"{', '.join(p for p, _ in svc.wants) or 'nothing'}, which "
                                  "no boot reaches: it does not start at boot")
                continue
            if not effect.swap:
                self.notes.append(f"{name}: {effect.what}")
                continue
            frag = svc.fragment()
            self.source(f"service:{name}",
                        f"{name} ({frag[0] if frag else '?'}; systemctl is-enabled: {state}) "
                        f"is started at boot by {', '.join(wants)}, and {effect.what}",
                        effect.fix + f"; `systemctl mask {name}` also keeps a manual start "
                        "from turning swap on",
                        tuple(wants) + effect.evidence)


def kubelet_allows(ctx: NodeContext) -> tuple[bool | None, str, str]:
    """(allows swap, why, evidence): None when kubelet's config cannot be read."""
    try:
        cfg = load(ctx.facts.file(KUBELET_CONFIG)) or {}
    except ConfigError as exc:
        return None, str(exc), ""
    flags = ctx.facts.file(FLAGS).text or ""
    m = re.search(r"--fail-swap-on(?:=(\w+))?", flags)
    if m:
        fail = (m.group(1) or "true").lower() not in ("false", "0")
        src = f"{FLAGS}: {m.group(0)}"
    else:
        fail = cfg.get("failSwapOn") is not False
        src = f"{KUBELET_CONFIG}: failSwapOn: {'false' if not fail else 'true (default)'}"
    if fail:
        return False, "failSwapOn is true", src
    memory_swap = cfg.get("memorySwap") or {}
    if not isinstance(memory_swap, dict):  # kubelet refuses to decode such a config
        return None, (f"{KUBELET_CONFIG}: memorySwap is a {type(memory_swap).__name__}, not a "
                      "mapping"), ""
    behavior = str(memory_swap.get("swapBehavior") or "NoSwap")
    version = ctx.version
    cgroup2 = (ctx.facts.section("cgroupfs") or "").strip() == "cgroup2fs"
    if behavior == "UnlimitedSwap" and (version is None or version >= (1, 30)):
        return False, ("swapBehavior UnlimitedSwap was removed in Kubernetes 1.30: kubelet "
                       "refuses its configuration"), src
    if behavior not in ("NoSwap", "LimitedSwap", "UnlimitedSwap"):
        return False, f"swapBehavior {behavior!r} is not one kubelet knows", src
    if not cgroup2:
        return False, ("this node runs cgroup v1: kubelet supports swap only on cgroup v2 "
                       "(KEP-2400), so memory it cannot account for may be swapped"), src
    return True, f"failSwapOn: false, swapBehavior: {behavior}, cgroup v2", src


@check("node_swap",
       ("no swap on now and none systemd will start at boot (fstab as systemd-fstab-generator"
        " reads it, enabled `.swap` units, zram-generator), unless kubelet allows swap "
        "(failSwapOn, swapBehavior, cgroup v2)"),
       area="node",
       roles=NODE,
       reads=("/proc/swaps",
              "/etc/fstab",
              "systemd swap units and zram-generator config, /proc/meminfo MemTotal",
              "boot services that turn swap on: unit files, drop-ins, ExecStart* scripts, "
              "/etc/dphys-swapfile, /etc/default/zramswap",
              "kubelet config.yaml, kubeadm-flags.env"),
       asserts=("swap on now (`/proc/swaps`) or that systemd will start at the next boot, "
                "decided as systemd decides it: `/etc/fstab` `swap` lines as "
                "systemd-fstab-generator turns them into units wanted by swap.target "
                "(`noauto` skipped, `nofail`, `UUID=`/`LABEL=`/`PARTUUID=` sources resolved "
                "through `/dev/disk/by-*`, a missing device does not come back, a unit masked"
                " by `systemctl mask` or `swap.target` masked never starts, "
                "`systemd.swap=0`/`fstab=0` on the kernel command line), `.swap` unit files "
                "pulled in by a boot target's `.wants/`/`.requires/` symlink (not-enabled "
                "ones noted), services a boot target wants whose ExecStart* turns swap on "
                "(Debian's dphys-swapfile with its CONF_SWAPFILE/CONF_SWAPSIZE, zram-tools' "
                "zramswap with SIZE/PERCENT, zram-config, any swapon/mkswap in the unit or "
                "the script it runs; masks in /etc and /run, drop-ins, `systemctl "
                "is-enabled`'s word quoted), zram-generator's devices as its 1.1.2 release "
                "makes them (main file `/run` > `/etc` > `/usr/local/lib` > `/usr/lib`, "
                "drop-ins sorted by name across all four, links to /dev/null, "
                "`systemd.zram` on the kernel command line with or without a config, "
                "`host-memory-limit` against MemTotal, `zram-size` evaluated, size 0, "
                "`fs-type`/`mount-point` not swap, a configuration error that stops the "
                "generator, the generator installed or masked); zswap is noted, never failed. "
                "Then kubelet's rule: `failSwapOn` (config, or `--fail-swap-on` in "
                "kubeadm-flags.env) true fails every source; false passes only with "
                "`swapBehavior` NoSwap/LimitedSwap on cgroup v2 (UnlimitedSwap refused from "
                "1.30; cgroup v1 fails, KEP-2400). Each finding names the source (file and "
                "line, unit and the symlink enabling it, zram config) and the fix"),
       prevents=("kubelet exits: `running with swap on is not supported, please disable "
                 "swap!` — after the next reboot when only the boot configuration has it"))
def node_swap(ctx: Context) -> list[Finding]:
    node = ctx.node
    name = node.host.name
    boot = node.facts.swap_boot
    judge = _Judge(node, boot)
    judge.active()
    units = judge.fstab()
    if boot is not None:
        judge.units(units)
        judge.zram()
        if boot.zswap in ("Y", "1"):
            judge.notes.append("zswap is on: it compresses pages on their way to swap and is "
                               "no swap by itself")
    services = node.facts.swap_services
    if services is not None:
        judge.services(services)
    note = "; ".join(judge.notes)
    scope = ("/proc/swaps, /etc/fstab, swap units, zram-generator" if boot is not None else
             "/proc/swaps and /etc/fstab (no swap-boot facts: units and zram not read)")
    scope = scope[:-1] + ", services not read)" if services is None and boot is None else (
        scope + (", boot services" if services is not None else
                 " (no swap-services facts: services not read)"))
    if not judge.on:
        lines = len(fstab_entries(node.facts.file("/etc/fstab").text or ""))
        evidence = ("/proc/swaps: header only",
                    f"/etc/fstab: {lines} swap line(s), none activated at boot")
        return [Finding(name, True, f"no swap now and none at boot ({scope})",
                        "no swap now and none at boot", evidence=evidence, note=note)]
    allows, why, src = kubelet_allows(node)
    if allows is None:
        return [Finding(name, False, f"swap found, and kubelet's config cannot be read: "
                        f"{why}", "no swap, or swap kubelet allows",
                        fix=f"repair {KUBELET_CONFIG}")]
    if allows:
        sources = "; ".join(f.observed for f in judge.on)
        return [passed(name, f"swap allowed by kubelet ({why}): {sources}",
                       "no swap, or swap kubelet allows", src)]
    out = []
    for f in judge.on:
        extra = "" if why == "failSwapOn is true" else f" ({why})"
        out.append(Finding(f.subject, False, f.observed + extra, f.expected,
                           f.why if why == "failSwapOn is true" else
                           f"kubelet allows swap only where it can manage it: {why}",
                           f.fix, f.evidence + ((src,) if src else ()), note))
    return out
