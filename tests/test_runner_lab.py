"""End to end on a lab of our own (name trun, 10.78.0.0/24): real sshd, real Ansible
deployment, real tempod under libfaketime, real faults.

Short timers (rounds 1-2 s, election timeouts 2-4 s) keep the whole file within a few
minutes. Needs root and the lab's tools (``@pytest.mark.lab``), the deployment playbook
and a working daemon.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tempolab.runner.driver import Runner, RunOptions
from tempolab.runner.runfolder import RunFolder
from tempolab.runner.suite import parse_suite

from tempolab.testing.labkit import default_sigint

pytestmark = pytest.mark.lab

LAB, SUBNET = "trun", "10.78.0.0/24"
REPO = Path(__file__).resolve().parents[1]
TIMERS = {"round_interval_s": 1.5, "election_timeout_min_s": 2.0, "election_timeout_max_s": 4.0,
          "probe_timeout_s": 0.1}


def suite(name: str, **over) -> tuple:
    raw = {"name": name, "nodes": 3, "seed": 3, "lab": {"name": LAB, "subnet": SUBNET},
           "drift": {"max_ppm": 200, "max_offset_s": 0.5}, "daemon": dict(TIMERS),
           "warm_up_s": 3, "trials": 1, "trial_duration_s": 15, "healthy_timeout_s": 40,
           "observer_hz": 10, "cpu_interval_s": 2}
    raw.update(over)
    return parse_suite(raw, f"{name}.yaml"), raw


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """The lab, deployed once with TIMERS (the runner's own run_playbook); tests then
    restart the daemons (--no-deploy), which keeps the file's time down."""
    from tempolab.lab import Lab
    from tempolab.runner.deploy import deploy_vars, run_playbook

    lab = Lab(LAB, subnet=SUBNET)
    lab.up(3)
    s, _raw = suite("deploy")
    run_playbook("deploy", lab.inventory_path, deploy_vars(s), tmp_path_factory.mktemp("ansible"))
    yield lab
    lab.down()


def run(tmp_path: Path, s, raw, deploy: bool = False) -> tuple[int, RunFolder]:
    opts = RunOptions(results=tmp_path, quiet=True, lab_name=LAB, lab_subnet=SUBNET, deploy=deploy)
    rc = Runner(s, opts, raw).run()
    return rc, RunFolder.open(next(p for p in tmp_path.iterdir() if p.is_dir()))


def nft_tables(lab) -> dict[str, str]:
    return {n.name: lab.exec(n.name, ["nft", "list", "tables"]).stdout for n in lab.nodes}


def test_ssh_pool_cpu_and_signal_faults_on_real_nodes(lab):
    """Without the daemon: a dummy process behind the pidfile stands in for tempod."""
    import random

    from tempolab.errors import HostUnreachable
    from tempolab.runner import cpu, faults
    from tempolab.runner.hosts import Host, load_hosts
    from tempolab.runner.sshpool import SshPool
    from tempolab.runner.suite import FaultSpec

    hosts = load_hosts(lab.inventory_path)
    refs = [faults.NodeRef(h.name, h.address) for h in hosts]
    with SshPool(hosts) as pool:
        # the fixture deployed real daemons: stop them, or a dummy pidfile would orphan
        # them and the next test's restart would find their ports taken
        pool.run_many({h.name: faults.service_cmd("stop") for h in hosts}, check=True)
        names = {n: r.stdout.strip() for n, r in pool.run_many({h.name: "hostname" for h in hosts}).items()}
        assert names == {"n1": "n1", "n2": "n2", "n3": "n3"}
        pool.run("n1", "rm -f /run/tempo/tempod.pid")
        pool.run("n2", "mkdir -p /run/tempo; sh -c 'while :; do :; done' >/dev/null 2>&1 & "
                       "echo $! > /run/tempo/tempod.pid").check()
        try:
            time.sleep(0.5)
            reading = cpu.parse_output(pool.run("n2", cpu.CPU_CMD).stdout)
            assert reading is not None and reading.utime_s > 0.1  # a busy loop for 0.5 s
            # schedstat ns of the busy loop agrees with its ticks; the node's PID 1 (sshd) is read too
            assert reading.cpu_ns is not None and abs(reading.cpu_ns * 1e-9 - reading.utime_s - reading.stime_s) < 0.05
            assert reading.base_cpu_ns is not None and reading.base_cpu_ns >= 0
            stop = faults.resolve(FaultSpec("stop", at_s=0, duration_s=1, targets=("n2",)), refs, "n1",
                                  random.Random(1))
            pool.run_many(stop.apply_cmds, check=True)
            state = "ps -o stat= -p $(cat /run/tempo/tempod.pid)"
            assert pool.run("n2", state).stdout.strip().startswith("T")
            before = cpu.parse_output(pool.run("n2", cpu.CPU_CMD).stdout)
            time.sleep(0.5)
            after = cpu.parse_output(pool.run("n2", cpu.CPU_CMD).stdout)
            assert after.utime_s - before.utime_s < 0.05  # stopped: no CPU
            for _ in range(2):  # revert is idempotent
                pool.run_many(stop.revert_cmds, check=True)
            assert pool.run("n2", state).stdout.strip().startswith("R")
            # the pid namespace isolates nodes: n1 has no such process
            assert pool.run("n1", "cat /run/tempo/tempod.pid 2>/dev/null").stdout == ""
            kill = faults.resolve(FaultSpec("kill", at_s=0, targets=("n2",)), refs, "n1", random.Random(1))
            pool.run_many(kill.apply_cmds, check=True)
            time.sleep(0.2)
            assert cpu.parse_output(pool.run("n2", cpu.CPU_CMD).stdout) is None
        finally:
            pool.run("n2", "kill -9 $(cat /run/tempo/tempod.pid) 2>/dev/null; rm -f /run/tempo/tempod.pid")
    ghost = Host("n9", "10.78.0.99", "10.78.0.99", key_file=str(lab.ssh_key_path))
    t0 = time.monotonic()
    with pytest.raises(HostUnreachable) as exc, SshPool([ghost], connect_timeout_s=2) as pool:
        pool.run("n9", "true")
    assert exc.value.hosts == ["n9"] and time.monotonic() - t0 < 10


def test_smoke(lab, tmp_path):
    s, raw = suite("smoke-t")
    rc, rf = run(tmp_path, s, raw)
    trials = rf.read("trials")
    assert rc == 0 and trials[0]["outcome"] == "ok", trials
    obs = rf.read("observer")
    answered = [o for o in obs if o["state"] != "unreachable"]
    assert len(answered) > 0.9 * len(obs)
    assert {o["node"] for o in obs} == {"n1", "n2", "n3"}
    # in the lab the observer's bound is tens of microseconds
    assert sorted(o["bound_s"] for o in answered)[len(answered) // 2] < 0.002
    cpu = rf.read("cpu")
    assert cpu and all(c["utime_s"] is not None for c in cpu if c["trial"] == 1)
    assert all(isinstance(c.get("cpu_ns"), int) for c in cpu if c["trial"] == 1 and c.get("pid"))
    m = rf.read_manifest()
    assert m["status"] == "ok" and set(m["nodes"]) == {"n1", "n2", "n3"}
    assert all(m["nodes"][n]["profile"] for n in m["nodes"])
    for n in ("n1", "n2", "n3"):
        assert (rf.path / "nodes" / n / "drift.toml").exists()
        events = [json.loads(l) for l in (rf.path / "nodes" / n / "events.jsonl").read_text().splitlines()]
        assert any(e["ev"] == "start" for e in events)


def test_leader_kill_two_trials(lab, tmp_path):
    s, raw = suite("leader-kill-t", trials=2, trial_duration_s=20,
                   faults=[{"kind": "kill", "at_s": [1, 3], "duration_s": 12, "targets": "master"}])
    rc, rf = run(tmp_path, s, raw)
    trials = rf.read("trials")
    assert [t["trial"] for t in trials] == [1, 2]
    for t in trials:
        assert t["outcome"] == "ok", t
        assert t["killed"] == t["master_before"] and t["new_master"] not in (None, t["killed"])
        assert t["kill_t"] < t["detect_t"] <= t["new_master_t"]
        assert t["first_round_t"] is not None and t["first_round_t"] >= t["kill_t"]
        assert t["new_master_s"] < 2 * TIMERS["election_timeout_max_s"] + 5
    kinds = [(f["kind"], f["phase"]) for f in rf.read("faults")]
    assert kinds == [("kill", "start"), ("kill", "end")] * 2


def test_pause_old_master_steps_down(lab, tmp_path):
    s, raw = suite("pause-t", trial_duration_s=25,
                   faults=[{"kind": "stop", "at_s": 1, "duration_s": 10, "targets": "master"}])
    rc, rf = run(tmp_path, s, raw)
    t = rf.read("trials")[0]
    assert t["outcome"] == "ok", t
    assert t["new_master"] != t["paused"]
    assert t["two_masters_after_settle"] is False
    assert t["final_master"] is not None


def test_sigint_during_partition_leaves_no_rule_and_keeps_data(lab, tmp_path):
    s, raw = suite("partition-int-t", trial_duration_s=30,
                   faults=[{"kind": "partition", "at_s": 1, "duration_s": 20}])
    path = tmp_path / "p.yaml"
    import yaml

    path.write_text(yaml.safe_dump(raw))
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "tempolab.cli", "run", str(path), "--quiet",
                             "--lab", LAB, "--subnet", SUBNET, "--out", str(tmp_path / "out"), "--no-deploy"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=default_sigint)
    try:
        deadline = time.monotonic() + 240
        faults_file = None
        while time.monotonic() < deadline:
            runs = list((tmp_path / "out").glob("*/faults.jsonl")) if (tmp_path / "out").exists() else []
            if runs and '"partition"' in runs[0].read_text():
                faults_file = runs[0]
                break
            assert proc.poll() is None, proc.stdout.read()
            time.sleep(0.2)
        assert faults_file is not None, "partition never started"
        assert any("tempo_fault" in t for t in nft_tables(lab).values())
        time.sleep(2)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out
    assert not any("tempo_fault" in t for t in nft_tables(lab).values())
    rf = RunFolder.open(faults_file.parent)
    assert rf.read_manifest()["status"] == "interrupted"
    assert [f["phase"] for f in rf.read("faults")] == ["start", "end"]
    assert len(rf.read("observer")) > 20
    assert "INTERRUPTED" in out
