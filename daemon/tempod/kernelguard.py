"""The guard that keeps tempod's kernel clock backend off every machine but a tempo VM.

This module owns one decision: may this process write the system clock? The kernel
backend slews, steps and re-tunes CLOCK_REALTIME; on the shared development host (or
any lab namespace, which shares the host's kernel) that would move everyone's clock.
So writing is allowed only when all of these hold, checked from the running kernel's
own facts (nothing a deploy or a config file can set):

1. the kernel was booted with ``tempo.kernel_clock=allow`` on its command line
   (/proc/cmdline). Only the project's VM boot configuration puts it there (the VM
   provider's direct-kernel-boot ``cmd_line``); a network namespace shares the host's
   kernel and so its command line, and a host deploy cannot change a running kernel's;
2. the machine is a virtual one: DMI ``sys_vendor`` is QEMU (or the CPU reports the
   ``hypervisor`` flag) -- so a token copied onto a bare-metal boot line alone is not
   enough, which a real machine's operator can override only by booting it so;
3. the process is not under libfaketime (``LD_PRELOAD``/``FAKETIME``): adjtimex is not
   intercepted, so the daemon would discipline a clock it cannot read.

Refusals raise :class:`KernelGuardError` (a ValueError: tempod exits 2 with the
message, and ``tempod --check`` fails the same way, so the Ansible role stops before
starting anything). There is deliberately no override switch. Standard library only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

CMDLINE_TOKEN = "tempo.kernel_clock=allow"
CMDLINE_PATH = "/proc/cmdline"
DMI_VENDOR_PATH = "/sys/class/dmi/id/sys_vendor"
CPUINFO_PATH = "/proc/cpuinfo"
VM_VENDORS = ("QEMU",)


class KernelGuardError(ValueError):
    """This machine must not have its clock written by tempod."""


@dataclass(frozen=True)
class GuardFacts:
    cmdline: str
    dmi_vendor: str
    cpu_hypervisor: bool
    environ: Mapping[str, str]


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def gather(cmdline_path: str = CMDLINE_PATH, dmi_path: str = DMI_VENDOR_PATH,
           cpuinfo_path: str = CPUINFO_PATH, environ: Mapping[str, str] | None = None) -> GuardFacts:
    cpu = _read(cpuinfo_path)
    flags = next((line for line in cpu.splitlines() if line.startswith("flags")), "")
    return GuardFacts(
        cmdline=_read(cmdline_path).strip(),
        dmi_vendor=_read(dmi_path).strip(),
        cpu_hypervisor="hypervisor" in flags.split(),
        environ=dict(os.environ if environ is None else environ),
    )


def refusals(facts: GuardFacts) -> list[str]:
    """Every reason writing the clock is refused (empty: allowed). Pure."""
    out = []
    if CMDLINE_TOKEN not in facts.cmdline.split():
        out.append(f"the kernel was not booted with {CMDLINE_TOKEN} (only a tempo VM's boot line has it; "
                   "a lab namespace shares the host's kernel)")
    if facts.dmi_vendor not in VM_VENDORS and not facts.cpu_hypervisor:
        out.append(f"this is not a virtual machine (DMI sys_vendor {facts.dmi_vendor or 'unknown'!r}, "
                   "no hypervisor CPU flag)")
    preload = facts.environ.get("LD_PRELOAD", "")
    if "faketime" in preload or "FAKETIME" in facts.environ:
        out.append("the process runs under libfaketime, which does not intercept adjtimex")
    return out


def require_vm_guest(facts: GuardFacts | None = None) -> None:
    """Raise KernelGuardError unless this machine is a tempo VM guest (module doc)."""
    why = refusals(gather() if facts is None else facts)
    if why:
        raise KernelGuardError(
            "clock.backend = \"kernel\" refused: " + "; ".join(why)
            + ". The kernel backend adjusts the system clock and runs only inside VMs the "
              "tempo VM provider booted (docs/clock.md, 'The guard'); use backend = \"process\".")
