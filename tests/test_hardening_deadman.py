"""The on-node dead-man watchdog (runner/faults.py ``guarded`` and ``deadman_*``).

Rendered commands are checked as text, then run for real with ``sh`` in a temporary
folder (no root, no lab): a watchdog fires after its delay and logs it; a cancelled one
never fires and leaves no process; ``cancel_all`` stops every pending one.
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import subprocess
import time
from pathlib import Path

import pytest

from tempolab.runner import faults
from tempolab.runner.suite import FaultSpec

REFS = [faults.NodeRef(f"n{i}", f"10.82.0.1{i}") for i in (1, 2, 3)]


def script_of(arm: str) -> str:
    blob = re.search(r"echo (\S+) \| base64 -d", arm).group(1)
    return base64.b64decode(blob).decode()


def test_arm_renders_a_detached_script_that_sleeps_then_reverts():
    arm = faults.deadman_arm_cmd("t1-f0-abc", "nft delete chain inet tempo_fault partition", 7.25)
    assert "setsid sh /run/tempo/deadman/t1-f0-abc.sh >/dev/null 2>&1 </dev/null &" in arm
    script = script_of(arm)
    lines = script.splitlines()
    assert lines[0] == "echo $$ > /run/tempo/deadman/t1-f0-abc.pid"
    assert lines[1] == "sleep 7.250"
    assert "nft delete chain inet tempo_fault partition" in script
    assert '>> /var/log/tempo/deadman.jsonl' in script
    assert lines[-1] == "rm -f /run/tempo/deadman/t1-f0-abc.pid /run/tempo/deadman/t1-f0-abc.sh"


@pytest.mark.parametrize("key", ["", "a b", "x;rm -rf /", "k" * 65, "a/b"])
def test_bad_keys_are_refused(key):
    with pytest.raises(ValueError, match="dead-man key"):
        faults.deadman_arm_cmd(key, "true", 1.0)
    with pytest.raises(ValueError, match="dead-man key"):
        faults.deadman_cancel_cmd(key)


@pytest.mark.parametrize("delay", [-1.0, float("nan"), float("inf")])
def test_bad_delays_are_refused(delay):
    with pytest.raises(ValueError, match="delay"):
        faults.deadman_arm_cmd("k", "true", delay)


def test_bad_paths_are_refused():
    with pytest.raises(ValueError, match="absolute"):
        faults.deadman_cancel_all_cmd(directory="relative/dir")
    with pytest.raises(ValueError, match="absolute"):
        faults.deadman_arm_cmd("k", "true", 1.0, directory="/tmp/a b")


def test_guarded_partition_arms_before_applying_and_cancels_before_reverting():
    f = faults.resolve(FaultSpec("partition", at_s=1, duration_s=5), REFS, "n1", random.Random(1))
    apply_, revert = faults.guarded(f, "t2-f1-x", 9.0)
    assert set(apply_) == set(revert) == {"n1", "n2", "n3"}
    for n in apply_:
        # the watchdog exists before the rule does
        assert apply_[n].index("setsid sh") < apply_[n].index("nft -f -")
        assert apply_[n].endswith(f.apply_cmds[n])
        assert "sleep 9.000" in script_of(apply_[n])
        assert revert[n].startswith(faults.deadman_cancel_cmd("t2-f1-x"))
        assert f.revert_cmds[n] in revert[n] and revert[n].endswith(faults.tidy_table_cmd())
        # what the watchdog runs is exactly what the runner's revert runs after cancelling
        assert f.revert_cmds[n] + "; " + faults.tidy_table_cmd() in script_of(apply_[n])


def test_guarded_kill_targets_only_the_killed_node_and_restarts_it():
    f = faults.resolve(FaultSpec("kill", at_s=1, duration_s=5, targets="master"), REFS, "n2", random.Random(1))
    apply_, revert = faults.guarded(f, "t1-f0-y", 6.0)
    assert list(apply_) == ["n2"] and list(revert) == ["n2"]
    assert "tempod-service" in script_of(apply_["n2"]) and "start" in script_of(apply_["n2"])
    assert faults.tidy_table_cmd() not in revert["n2"]  # not a network fault


def test_guarded_without_planned_end_arms_nothing():
    f = faults.resolve(FaultSpec("stop", at_s=1, duration_s=None, targets="master"), REFS, "n1",
                       random.Random(1))
    apply_, revert = faults.guarded(f, "t1-f0-z", None)
    assert apply_ == f.apply_cmds and revert == f.revert_cmds
    assert "setsid" not in "".join(apply_.values()) and "deadman" not in "".join(revert.values())


def test_cleanup_also_cancels_pending_watchdogs():
    assert faults.cleanup_cmd().endswith(faults.deadman_cancel_all_cmd())


# --- real shell, temporary folder ------------------------------------------------------

def sh(cmd: str, timeout_s: float = 10) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, timeout=timeout_s)


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):  # gone, or reaped between open and read
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_watchdog_fires_after_its_delay_and_logs(tmp_path):
    d, log, marker = tmp_path / "dm", tmp_path / "log" / "deadman.jsonl", tmp_path / "reverted"
    t0 = time.time()
    r = sh(faults.deadman_arm_cmd("k1", f"echo yes > {marker}", 0.6, directory=str(d), log=str(log)))
    assert r.returncode == 0 and r.stderr == ""
    pid = int((d / "k1.pid").read_text())
    assert alive(pid) and not marker.exists()
    # its own session: the SSH session (here: our sh) ending cannot take it along
    assert os.getsid(pid) == pid and os.getpgid(pid) == pid
    deadline = time.monotonic() + 10
    while not log.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    rec = json.loads(log.read_text())
    assert rec["key"] == "k1" and rec["event"] == "fired" and rec["rc"] == 0
    assert rec["t"] - t0 >= 0.6
    assert marker.read_text() == "yes\n"
    time.sleep(0.1)
    assert list(d.iterdir()) == []  # pid file and script removed


def test_cancelled_watchdog_never_fires_and_leaves_no_process(tmp_path):
    d, log, marker = tmp_path / "dm", tmp_path / "deadman.jsonl", tmp_path / "reverted"
    assert sh(faults.deadman_arm_cmd("k2", f"echo yes > {marker}", 1.0, directory=str(d), log=str(log))).returncode == 0
    pid = int((d / "k2.pid").read_text())
    for _ in range(2):  # idempotent
        assert sh(faults.deadman_cancel_cmd("k2", directory=str(d))).returncode == 0
    time.sleep(0.2)
    assert not alive(pid)
    time.sleep(1.3)
    assert not marker.exists() and not log.exists() and list(d.iterdir()) == []


def test_cancel_all_stops_every_pending_watchdog(tmp_path):
    d, log = tmp_path / "dm", tmp_path / "deadman.jsonl"
    pids = []
    for k in ("a", "b", "c"):
        assert sh(faults.deadman_arm_cmd(k, f"touch {tmp_path}/{k}", 1.0, directory=str(d), log=str(log))).returncode == 0
        pids.append(int((d / f"{k}.pid").read_text()))
    assert sh(faults.deadman_cancel_all_cmd(directory=str(d))).returncode == 0
    assert sh(faults.deadman_cancel_all_cmd(directory=str(d))).returncode == 0  # nothing left: fine
    time.sleep(1.3)
    assert not any(alive(p) for p in pids)
    assert not any((tmp_path / k).exists() for k in ("a", "b", "c")) and not log.exists()
