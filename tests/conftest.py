"""Shared test configuration.

Tests marked ``@pytest.mark.lab`` need root, network namespaces and the lab's tools.
Elsewhere they skip with the reason; with ``TEMPO_REQUIRE_LAB=1`` (set by CI) a
missing prerequisite is a failure instead, so CI cannot pass by skipping them.

Every test is in exactly one tier, as chrony's tests are (unit / simulation / system),
selectable with ``-m unit``, ``-m sim`` or ``-m system``:

- ``system``: marked ``lab`` (real namespaces or VMs, real daemons, Ansible, the runner);
  the tier is added here, from that marker.
- ``sim``: several real daemon cores on simulated clocks and network (``tempod.sim`` or
  ``tempolab.testing.cluster``); marked ``sim`` in the test module.
- ``unit``: everything else (one module, property tests, local processes, fake clusters);
  added here to any test with neither marker.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAB_TOOLS = ("ip", "nft", "sshd", "unshare")
# tests marked vm (real guests) need these too; scripts/bootstrap-vm.sh installs them
VM_TOOLS = ("vagrant", "libvirtd", "virtlogd", "virsh", "qemu-system-x86_64", "mmdebstrap", "nc")


def lab_unavailable_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces, bridge, nftables)"
    missing = [t for t in LAB_TOOLS if not shutil.which(t) and not Path("/usr/sbin", t).exists()]
    if missing:
        return "missing tools: " + ", ".join(missing) + " (run scripts/bootstrap.sh)"
    return None


def vm_unavailable_reason() -> str | None:
    missing = [t for t in VM_TOOLS if not shutil.which(t) and not Path("/usr/sbin", t).exists()]
    if missing:
        return "missing VM tools: " + ", ".join(missing) + " (run scripts/bootstrap-vm.sh)"
    return None


def pytest_collection_modifyitems(config, items):
    for item in items:
        lab, sim = item.get_closest_marker("lab"), item.get_closest_marker("sim")
        if lab is not None and sim is not None:
            raise pytest.UsageError(f"{item.nodeid}: marked both lab and sim; a test has one tier")
        if lab is not None:
            item.add_marker(pytest.mark.system)
        elif sim is None:
            item.add_marker(pytest.mark.unit)


def pytest_runtest_setup(item):
    if item.get_closest_marker("lab") is None:
        return
    reason = lab_unavailable_reason()
    if reason is None and item.get_closest_marker("vm") is not None:
        reason = vm_unavailable_reason()
    if reason is None:
        return
    if os.environ.get("TEMPO_REQUIRE_LAB") == "1":
        pytest.fail(f"TEMPO_REQUIRE_LAB=1 but this lab test cannot run here: {reason}")
    pytest.skip(f"lab test: {reason}")


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # Under CI every skip is a failure, not only the lab marker's: a skipif on a
    # missing tool (sntp, tshark) would otherwise let CI pass without the check.
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("TEMPO_REQUIRE_LAB") == "1" and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.longrepr = f"TEMPO_REQUIRE_LAB=1 turns this skip into a failure: {reason}"
