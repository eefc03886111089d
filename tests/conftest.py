"""Shared test configuration.

Tests marked ``@pytest.mark.lab`` need root, network namespaces and the lab's tools.
Elsewhere they skip with the reason; with ``TEMPO_REQUIRE_LAB=1`` (set by CI) a
missing prerequisite is a failure instead, so CI cannot pass by skipping them.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAB_TOOLS = ("ip", "nft", "sshd", "unshare")


def lab_unavailable_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces, bridge, nftables)"
    missing = [t for t in LAB_TOOLS if not shutil.which(t) and not Path("/usr/sbin", t).exists()]
    if missing:
        return "missing tools: " + ", ".join(missing) + " (run scripts/bootstrap.sh)"
    return None


def pytest_runtest_setup(item):
    if item.get_closest_marker("lab") is None:
        return
    reason = lab_unavailable_reason()
    if reason is None:
        return
    if os.environ.get("TEMPO_REQUIRE_LAB") == "1":
        pytest.fail(f"TEMPO_REQUIRE_LAB=1 but this lab test cannot run here: {reason}")
    pytest.skip(f"lab test: {reason}")


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO
