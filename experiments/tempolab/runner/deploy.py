"""Deployment and requirements: ``ansible-playbook`` runs and the netem preflight.

Owns the mapping suite -> Ansible extra vars (``tempod_<timer>``, ``tempod_drift_*``),
running a playbook as a plain subprocess of the venv's ``ansible-playbook`` with
``-e @vars.json`` (output captured into the run folder), and checking kernel features a
suite requires before anything starts. It does not interpret trial data.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import EnvironmentProblem, TempoError
from ..paths import project_paths
from .suite import Suite


class DeployFailed(TempoError):
    def __init__(self, playbook: str, rc: int, log: Path, tail: str):
        self.playbook, self.rc, self.log = playbook, rc, log
        super().__init__(f"ansible-playbook {playbook} failed (exit {rc}); log: {log}\n{tail}")


def deploy_vars(suite: Suite, protocol: str = "berkeley") -> dict[str, Any]:
    """Extra vars for playbooks/deploy.yml from a suite (at one sweep point).

    Timers become ``tempod_<key>`` (e.g. ``tempod_round_interval_s``); drift becomes
    ``tempod_drift_seed`` / ``tempod_drift_distribution`` and the symmetric ranges
    ``tempod_drift_rate_range_ppm`` / ``tempod_drift_offset_range_s`` ([-max, max]),
    the tempod role's variables (roles/tempod/defaults/main.yml).  ``protocol`` becomes
    ``tempo_protocol``: for ntp tempod is deployed stopped and chronyd started
    (roles/chrony), otherwise the other way round; the drift profile is the same.
    ``clock_mode: kernel`` deploys the kernel backend with the daemon stopped.
    Under systemd (VMs) the unit never restarts on its own: a fault decides when.
    """
    out: dict[str, Any] = {f"tempod_{k}": v for k, v in suite.daemon.items()}
    d = suite.drift
    out.update(
        tempod_drift_seed=suite.seed if d.seed is None else d.seed,
        tempod_drift_distribution=d.distribution,
        tempod_drift_rate_range_ppm=[-d.max_ppm, d.max_ppm],
        tempod_drift_offset_range_s=[-d.max_offset_s, d.max_offset_s],
        tempod_state="stopped" if protocol == "ntp" else "started",
        # chrony_state is left to the playbook: as an extra var it would also override
        # the pre-task that stops chronyd before tempod needs the NTP port
        tempo_protocol=protocol,
        # the runner alone restarts daemons (a kill fault's revert): systemd's
        # Restart=on-failure would bring a SIGKILLed master back after 1 s (VMs)
        tempod_systemd_restart="no",
    )
    if suite.clock_mode == "kernel":
        # the guest's own kernel clock, drifted below the kernel; the runner starts
        # tempod itself once the guest clocks are measured and stepped (docs/clock.md)
        out.update(tempod_clock_backend="kernel", tempod_state="stopped")
    return out


def ansible_playbook_path() -> str:
    """The venv's ansible-playbook (next to this Python), else the one on PATH."""
    here = Path(sys.executable).parent / "ansible-playbook"
    if here.exists():
        return str(here)
    found = shutil.which("ansible-playbook")
    if not found:
        raise EnvironmentProblem("ansible-playbook not found; run `bash scripts/bootstrap.sh`")
    return found


def run_playbook(name: str, inventory: Path, extra: dict[str, Any], out_dir: Path,
                 timeout_s: float = 1800) -> float:
    """Run ``playbooks/<name>.yml``; vars and output are kept in ``out_dir``. Returns seconds."""
    paths = project_paths()
    playbook = paths.playbook(name)
    if not playbook.exists():
        raise EnvironmentProblem(f"{playbook} does not exist (the deployment part is missing)")
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%H%M%S")
    vars_path = out_dir / f"{name}-{stamp}.vars.json"
    vars_path.write_text(json.dumps(extra, indent=2, sort_keys=True) + "\n")
    log = out_dir / f"{name}-{stamp}.log"
    env = paths.ansible_env(ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    t0 = time.monotonic()
    with open(log, "w") as fh:
        proc = subprocess.run([ansible_playbook_path(), "-i", str(inventory), str(playbook),
                               "-e", f"@{vars_path}"], stdout=fh, stderr=subprocess.STDOUT,
                              cwd=paths.root, env=env, timeout=timeout_s)
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise DeployFailed(name, proc.returncode, log, tail)
    return time.monotonic() - t0


def netem_available_here() -> tuple[bool, str]:
    """Does this machine's kernel do netem? Tried in a scratch namespace when root.

    A qdisc on a scratch namespace's loopback touches no real traffic; without root
    only ``modinfo`` can answer (a built-in netem has no module: then we say unknown).
    """
    if os.geteuid() == 0 and shutil.which("ip") and shutil.which("tc"):
        ns = f"tempo-netem-probe-{os.getpid()}"
        try:
            subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
            p = subprocess.run(["ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "lo",
                                "root", "netem", "delay", "1ms"], capture_output=True, text=True)
            return p.returncode == 0, (p.stderr.strip() or "netem qdisc added in a scratch namespace")
        finally:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    p = subprocess.run(["modinfo", "sch_netem"], capture_output=True, text=True)
    return p.returncode == 0, (p.stderr.strip() or "modinfo sch_netem")


NETEM_REMOTE_CHECK = "modinfo sch_netem >/dev/null 2>&1 || [ -d /sys/module/sch_netem ]"


def require_netem(suite: Suite, *, local_kernel: bool, check_remote=None) -> None:
    """Refuse a suite that needs netem on a kernel without it, before anything starts.

    ``local_kernel``: the nodes share this machine's kernel (the lab).
    ``check_remote``: callable running NETEM_REMOTE_CHECK on every node -> {node: ok}.
    """
    if "netem" not in suite.requires:
        return
    if local_kernel:
        ok, why = netem_available_here()
        if not ok:
            raise EnvironmentProblem(
                f"suite {suite.name} needs netem (delay/jitter) but this kernel has none "
                f"({why}); run it on hosts whose kernel has sch_netem")
        return
    if check_remote is not None:
        res = check_remote(NETEM_REMOTE_CHECK)
        bad = sorted(n for n, ok in res.items() if not ok)
        if bad:
            raise EnvironmentProblem(f"suite {suite.name} needs netem but these nodes lack "
                                     f"sch_netem: {', '.join(bad)}")
