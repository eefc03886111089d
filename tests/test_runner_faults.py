"""Fault objects render exact apply/revert commands; reverts are idempotent.

The string tests need no hosts. The lab-marked test runs the rendered nftables
commands in a scratch network namespace to prove they are valid and that the revert
leaves nothing behind.
"""

from __future__ import annotations

import random
import subprocess
import uuid

import pytest

from tempolab.errors import ConfigError
from tempolab.runner import faults
from tempolab.runner.faults import NodeRef, resolve, split_sides
from tempolab.runner.suite import FaultSpec

NODES = [NodeRef(f"n{i}", f"10.78.0.{10 + i}") for i in range(1, 6)]


def rng() -> random.Random:
    return random.Random(3)


def test_kill_targets_master_and_restarts_through_the_service_tool():
    f = resolve(FaultSpec("kill", at_s=4, duration_s=10, targets="master"), NODES, "n2", rng())
    assert f.targets == ["n2"] and f.at_s == 4 and f.duration_s == 10
    (cmd,) = f.apply_cmds.values()
    assert list(f.apply_cmds) == ["n2"]
    assert cmd.startswith('pid=$(head -q -n 1 /run/tempo/tempod.pid /run/tempo/chronyd.pid 2>/dev/null '
                          '| head -n 1); ')
    # no pidfile under systemd (VMs): the unit's MainPID, 0 meaning none
    assert "systemctl show -p MainPID --value tempod.service" in cmd
    assert cmd.endswith('[ -n "$pid" ] && kill -9 "$pid"')
    revert = f.revert_cmds["n2"]
    assert "systemctl start tempod" in revert
    assert ("/opt/tempo/venv/bin/tempod-service --config /etc/tempo/tempod.toml "
            "--profile /etc/tempo/drift.toml --pidfile /run/tempo/tempod.pid "
            "--stdout /var/log/tempo/tempod.out start") in revert


def test_kill_of_chronyd_restarts_chronyd_not_tempod():
    f = resolve(FaultSpec("kill", at_s=4, duration_s=10, targets="master"), NODES, "n1", rng(),
                daemon="chronyd")
    assert f.detail == "SIGKILL chronyd"
    revert = f.revert_cmds["n1"]
    assert "systemctl" not in revert and "tempod.toml" not in revert
    assert ("--daemon-cmd '/bin/sh /opt/tempo/chrony/bin/chronyd-tempo' --config /etc/tempo/chrony.conf "
            "--profile /etc/tempo/drift.toml --pidfile /run/tempo/chronyd.pid") in revert


def test_the_pid_snippet_finds_whichever_daemon_runs(tmp_path):
    import subprocess

    from tempolab.runner import faults

    for present in ("tempod", "chronyd"):
        d = tmp_path / present
        d.mkdir()
        (d / f"{present}.pid").write_text("4242\nstarttime=7\n")
        snippet = faults.PID_SNIPPET.replace("/run/tempo", str(d))
        out = subprocess.run(["sh", "-c", snippet + 'echo "$pid"'], capture_output=True, text=True)
        assert out.stdout.strip() == "4242"
    empty = faults.PID_SNIPPET.replace("/run/tempo", str(tmp_path / "none"))
    out = subprocess.run(["sh", "-c", empty + 'echo "[$pid]"'], capture_output=True, text=True)
    assert out.stdout.strip() == "[]"


def test_stop_and_cont():
    f = resolve(FaultSpec("stop", at_s=1, duration_s=8), NODES, "n1", rng())
    assert f.apply_cmds["n1"].endswith('kill -STOP "$pid"')
    assert 'kill -CONT "$pid"' in f.revert_cmds["n1"] and f.revert_cmds["n1"].endswith("true")


def test_random_follower_is_never_the_master_and_is_seeded():
    picks = {resolve(FaultSpec("kill", at_s=1, targets="random_follower"), NODES, "n3",
                     random.Random(k)).targets[0] for k in range(40)}
    assert "n3" not in picks and len(picks) == 4
    a = resolve(FaultSpec("kill", at_s=1, targets="random_follower"), NODES, "n3", random.Random(5))
    b = resolve(FaultSpec("kill", at_s=1, targets="random_follower"), NODES, "n3", random.Random(5))
    assert a.targets == b.targets


def test_partition_drops_the_other_side_on_input_per_node():
    f = resolve(FaultSpec("partition", at_s=2, duration_s=5, side_a=2), NODES, "n4", rng())
    assert f.sides == (["n1", "n2"], ["n3", "n4", "n5"])
    assert set(f.apply_cmds) == {f"n{i}" for i in range(1, 6)}
    assert f.apply_cmds["n1"] == (
        "nft -f - <<'EOF'\n"
        "table inet tempo_fault {\n  chain partition {\n    type filter hook input priority -10; "
        "policy accept;\n    ip saddr { 10.78.0.13, 10.78.0.14, 10.78.0.15 } drop\n  }\n}\nEOF")
    assert "ip saddr { 10.78.0.11, 10.78.0.12 } drop" in f.apply_cmds["n5"]
    assert f.revert_cmds["n3"] == "nft delete chain inet tempo_fault partition 2>/dev/null; true"


def test_default_split_puts_the_master_in_the_minority():
    a, b = split_sides(NODES, None, "n4")
    assert "n4" in a and len(a) == 2 and len(b) == 3
    with pytest.raises(ConfigError, match="two non-empty sides"):
        split_sides(NODES, 5, "n1")
    with pytest.raises(ConfigError, match="unknown nodes: n9"):
        split_sides(NODES, ("n9",), "n1")


def test_loss_drops_only_peer_udp_so_observer_and_ssh_stay_clean():
    f = resolve(FaultSpec("loss", at_s=0, duration_s=5, targets="all", percent=5), NODES, "n1", rng())
    cmd = f.apply_cmds["n2"]
    assert "hook input" in cmd
    assert "ip saddr { 10.78.0.11, 10.78.0.13, 10.78.0.14, 10.78.0.15 } meta l4proto udp numgen random mod 100 < 5 drop" in cmd
    assert f.revert_cmds["n2"] == "nft delete chain inet tempo_fault loss 2>/dev/null; true"


def test_delay_and_jitter_render_netem():
    f = resolve(FaultSpec("jitter", at_s=0, duration_s=5, targets=("n1",), delay_ms=20, jitter_ms=5),
                NODES, "n1", rng())
    # only the traffic to the peers goes through the netem band (tests/test_runner_netem.py)
    assert 'netem delay 20ms 5ms distribution normal' in f.apply_cmds["n1"]
    assert "ip -o route get 10.78.0.12" in f.apply_cmds["n1"]
    assert f.revert_cmds["n1"].endswith('tc qdisc del dev "$dev" root 2>/dev/null; true')


def test_targets_errors():
    with pytest.raises(ConfigError, match="no master"):
        resolve(FaultSpec("kill", at_s=1), NODES, None, rng())
    with pytest.raises(ConfigError, match="unknown nodes: zz"):
        resolve(FaultSpec("kill", at_s=1, targets=("zz",)), NODES, "n1", rng())
    with pytest.raises(ConfigError, match="no partition defines sides"):
        resolve(FaultSpec("kill", at_s=1, targets="side_a"), NODES, "n1", rng())
    f = resolve(FaultSpec("kill", at_s=1, targets="side_b"), NODES, "n1", rng(),
                sides=(["n1"], ["n2", "n3"]))
    assert f.targets == ["n2", "n3"]


def test_cleanup_is_table_delete_cont_and_start():
    c = faults.cleanup_cmd()
    assert c.startswith("nft delete table inet tempo_fault 2>/dev/null; true")
    assert 'kill -CONT "$pid"' in c and "start" in c
    # a leftover chronyd holds the NTP port: it goes before tempod is SIGCONTed/started
    assert c.index(faults.chronyd_cleanup_cmd()) < c.index(faults.cont_cmd()) < c.index(faults.service_cmd("start"))


def test_chronyd_cleanup_stops_a_chronyd_named_by_its_own_pidfile_and_removes_the_files(tmp_path):
    """The branch that needs no service tool, for real: a process called ``chronyd``
    (a copy of sleep), SIGSTOPped, named only by chronyd's own pidfile, plus a stale
    socket; and a recycled pid (a process not called chronyd) that must be left alone."""
    import shutil
    import time

    fake = tmp_path / "chronyd"
    shutil.copy("/bin/sleep", fake)
    victim = subprocess.Popen([str(fake), "60"])
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        subprocess.run(["kill", "-STOP", str(victim.pid)], check=True)
        own, sock, svc = tmp_path / "own.pid", tmp_path / "chronyd.sock", tmp_path / "svc.pid"
        own.write_text(f"{victim.pid}\n")
        sock.write_text("")
        cmd = faults.chronyd_cleanup_cmd(pidfile=str(svc), own_pidfile=str(own), socket=str(sock))
        t0 = time.monotonic()
        r = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        assert victim.wait(timeout=5) == -15          # SIGTERM reached it despite SIGSTOP
        assert time.monotonic() - t0 < 5              # at once, not after the SIGKILL fallback
        assert f"chronyd: stopped (pid {victim.pid}" in r.stdout
        assert not own.exists() and not sock.exists()
        # nothing left: silent, and a pid that is not chronyd's is not signalled
        own.write_text(f"{bystander.pid}\n")
        r = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, timeout=30)
        assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
        assert bystander.poll() is None and not own.exists()
    finally:
        for p in (victim, bystander):
            p.kill()
            p.wait()


def test_chronyd_cleanup_rejects_paths_it_cannot_quote():
    with pytest.raises(ValueError, match="must be absolute"):
        faults.chronyd_cleanup_cmd(own_pidfile="/run/x; rm -rf /")


def _sh(ns: str, cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", ns, "sh", "-c", cmd], capture_output=True, text=True)


@pytest.mark.lab
def test_rendered_nft_commands_work_and_revert_is_idempotent():
    ns = f"trun-f{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        part = resolve(FaultSpec("partition", at_s=1, duration_s=1, side_a=2), NODES, "n1", rng())
        loss = resolve(FaultSpec("loss", at_s=1, duration_s=1, percent=7), NODES, "n1", rng())
        for cmd in (part.apply_cmds["n1"], loss.apply_cmds["n1"]):
            r = _sh(ns, cmd)
            assert r.returncode == 0, r.stderr
        listing = _sh(ns, "nft list table inet tempo_fault").stdout
        assert "chain partition" in listing and "chain loss" in listing
        assert "numgen random mod 100 < 7 drop" in listing
        # healing the partition keeps the loss
        assert _sh(ns, part.revert_cmds["n1"]).returncode == 0
        listing = _sh(ns, "nft list table inet tempo_fault").stdout
        assert "chain partition" not in listing and "chain loss" in listing
        for _ in range(2):  # idempotent
            assert _sh(ns, loss.revert_cmds["n1"]).returncode == 0
            assert _sh(ns, part.revert_cmds["n1"]).returncode == 0
        assert _sh(ns, faults.nft_cleanup_cmd()).returncode == 0
        assert "tempo_fault" not in _sh(ns, "nft list ruleset").stdout
    finally:
        subprocess.run(["ip", "netns", "del", ns])
