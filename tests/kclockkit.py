"""Checks of the kernel clock mode and of the netem faults on real guests, for the VM
system test (tests/test_vm_system.py), so CI boots its VMs once for everything.

* :func:`check_kernel_run` -- a run folder of a ``clock_mode: kernel`` run: every node's
  delivered rate recorded (dmesg and measured), the run folder's drift.toml is the
  delivered profile, the daemons ran the kernel backend, their NTP answers were read.
* :func:`check_netem_on_guests` -- runner/faults.py's netem commands (asymmetric delay,
  netem loss) applied on real guest kernels, the qdisc tree as intended, the reverts
  idempotent and leaving nothing behind.
"""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path
from typing import Callable

from tempod.profile import load_profile
from tempolab.runner import faults
from tempolab.runner.faults import NodeRef
from tempolab.runner.suite import FaultSpec


def check_kernel_run(run_dir: Path, nodes: list[str], *, tolerance_ppm: float = 60.0) -> dict[str, dict]:
    """Assert what a kernel-mode run folder must hold; returns each node's record."""
    out = {}
    for n in nodes:
        d = run_dir / "nodes" / n
        rec = json.loads((d / "kernel_clock.json").read_text())
        delivered = load_profile(d / "drift.toml")
        requested = load_profile(d / "drift.requested.toml")
        assert delivered.rate_ppm == rec["delivered_rate_ppm"], (n, rec)
        assert requested.rate_ppm == rec["requested_rate_ppm"]
        # boot calibration noise is about +-10-20 ppm (DESIGN.md 9): far below this
        assert abs(rec["delivered_rate_ppm"] - rec["requested_rate_ppm"]) < tolerance_ppm, (n, rec)
        if rec["dmesg_rate_ppm"] is not None:
            # 20 s of reads through a loaded host agree with the boot calibration within
            # their own standard error, generously (noise is not white under load)
            assert abs(rec["disagreement_ppm"]) < max(6 * rec["measured_rate_se_ppm"], 30.0), (n, rec)
        # stepped to the profile's offset before tempod started
        assert abs(rec["initial_offset_s"] - (requested.hw_at(rec["at_true_s"]) - rec["at_true_s"])) < 5e-3, (n, rec)
        log = d / "events.jsonl"
        text = log.read_text() if log.exists() else gzip.open(d / "events.jsonl.gz", "rt").read()  # committed examples
        events = [json.loads(x) for x in text.splitlines() if x.strip()]
        starts = [e for e in events if e.get("ev") == "start"]
        assert starts and all(e.get("backend") == "kernel" for e in starts), (n, starts[:1])
        out[n] = rec
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["suite"]["clock_mode"] == "kernel"
    return out


def check_netem_on_guests(ssh: Callable[[str, str], tuple[int, str]], nodes: list[NodeRef]) -> None:
    """``ssh(node_name, cmd) -> (rc, stdout)`` runs a root command on a guest."""
    rng = random.Random(0)
    master, others = nodes[0], nodes[1:]
    f = faults.resolve(FaultSpec("asym_delay", at_s=0, duration_s=5, targets=(master.name,),
                                 delay_ms=8, reverse_delay_ms=2), nodes, master.name, rng)
    loss = faults.resolve(FaultSpec("netem_loss", at_s=0, duration_s=5, targets="all", percent=20),
                          nodes, master.name, rng)
    try:
        for n, cmd in f.apply_cmds.items():
            rc, out = ssh(n, cmd)
            assert rc == 0, (n, out)
        rc, out = ssh(master.name, "tc qdisc show; tc filter show dev $(ip -o route get "
                                   f"{others[0].address} | sed -n 's/.* dev \\([^ ]*\\).*/\\1/p')")
        assert "netem" in out and "delay 8ms" in out, out
        assert out.count("flowid 1:4") == len(others), out      # one filter per peer
        rc, out = ssh(others[0].name, "tc qdisc show")
        assert "delay 2ms" in out, out
        for n, cmd in f.revert_cmds.items():
            for _ in range(2):  # idempotent
                rc, out = ssh(n, cmd)
                assert rc == 0, (n, out)
            rc, out = ssh(n, "tc qdisc show")
            assert "netem" not in out, (n, out)
        for n, cmd in loss.apply_cmds.items():
            rc, out = ssh(n, cmd)
            assert rc == 0, (n, out)
            rc, out = ssh(n, "tc qdisc show")
            assert "loss 20%" in out, (n, out)
    finally:
        for n in [x.name for x in nodes]:
            ssh(n, faults.netem_cleanup_cmd())
    for n in [x.name for x in nodes]:
        rc, out = ssh(n, "tc qdisc show")
        assert "netem" not in out, (n, out)
