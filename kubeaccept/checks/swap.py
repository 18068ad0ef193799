"""Swap: kubelet refuses to run with swap unless its config allows it."""

from __future__ import annotations

from ..findings import Finding, passed
from . import NodeContext
from .parse import KUBELET_CONFIG, ConfigError, load

WHY = ("kubelet exits at start: \"failed to run Kubelet: running with swap on is not supported, "
       "please disable swap! or set --fail-swap-on flag to false\", and the node goes NotReady")


def fstab_swap_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) of active swap entries."""
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 3 and fields[2] == "swap":
            out.append((number, line.strip()))
    return out


def swap(ctx: NodeContext) -> list[Finding]:
    cid, name = "node_swap", ctx.host.name
    try:
        kubelet = load(ctx.facts.file(KUBELET_CONFIG)) or {}
    except ConfigError as exc:
        return [Finding(cid, name, False, f"cannot tell whether swap is allowed: {exc}",
                        "no swap", fix=f"repair {KUBELET_CONFIG}")]
    if kubelet.get("failSwapOn") is False:
        behavior = (kubelet.get("memorySwap") or {}).get("swapBehavior", "NoSwap")
        return [passed(cid, name, f"swap allowed by kubelet (failSwapOn: false, "
                       f"swapBehavior: {behavior})", "no swap, or swap allowed by kubelet",
                       f"{KUBELET_CONFIG}: failSwapOn: false")]
    findings = []
    active = ctx.facts.swaps
    evidence = tuple(f"/proc/swaps: {line.split()[0]}" for line in active)
    if active:
        findings.append(Finding(
            cid, f"{name}:/proc/swaps", False,
            f"{len(active)} active swap area(s): {', '.join(a.split()[0] for a in active)}",
            "no active swap", WHY,
            "swapoff -a (or allow swap in kubelet: failSwapOn: false + memorySwap)", evidence))
    fstab = ctx.facts.file("/etc/fstab")
    for number, line in fstab_swap_lines(fstab.text or ""):
        findings.append(Finding(
            cid, f"{name}:/etc/fstab:{number}", False,
            f"/etc/fstab line {number} enables swap at boot: {line}",
            "no swap entry in /etc/fstab", WHY + " after the next reboot",
            f"comment out line {number} of /etc/fstab (sed -i '{number}s/^/#/' /etc/fstab)",
            (f"/etc/fstab:{number}: {line}",)))
    if not findings:
        findings.append(passed(cid, name, "no active swap, no swap in /etc/fstab", "no swap",
                               "/proc/swaps: header only"))
    return findings
