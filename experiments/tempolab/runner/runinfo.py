"""What a run folder's manifest records about where the run ran: the git commit of the
project folder, the versions of the tools, the controller host."""

from __future__ import annotations

import platform
import subprocess
import sys
from typing import Any

from ..paths import project_paths


def git_commit() -> str | None:
    try:
        p = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project_paths().root, capture_output=True,
                           text=True, timeout=5)
        return p.stdout.strip() or None
    except OSError:
        return None


def versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for pkg in ("tempo-lab", "ansible-core", "ansible", "paramiko", "rich", "PyYAML", "ntplib"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def host_facts() -> dict[str, Any]:
    import os

    return {"hostname": platform.node(), "kernel": platform.release(),
            "machine": platform.machine(), "cpus": os.cpu_count(),
            "python": sys.version.split()[0]}
