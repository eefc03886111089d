"""The trial driver end to end against a fake cluster (no lab, no daemon).

Fake nodes answer NTP on 127.0.0.x with states from a tiny "world" model; a fake SSH
pool turns the rendered fault commands into world changes (kill -> silent, service
start -> back as follower, SIGSTOP/SIGCONT). This exercises the driver's order of
operations, fault timing and revert, trial facts, the run folder, summary and resume.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest

from tempod import ntp
from tempolab.runner import cpu
from tempolab.runner.driver import Runner, RunOptions
from tempolab.runner.hosts import Host
from tempolab.runner.runfolder import RunFolder
from tempolab.runner.sshpool import Result
from tempolab.runner.suite import parse_suite


class World:
    """Three nodes; when the master is gone for `elect_after_s`, the lowest live node wins."""

    def __init__(self, names, elect_after_s=0.6):
        self.names = names
        self.alive = {n: True for n in names}
        self.stopped = {n: False for n in names}
        self.master = names[0]
        self.lost_at = None
        self.elect_after_s = elect_after_s
        self.lock = threading.Lock()
        self.log: list[tuple[float, str, str]] = []

    def answering(self, n):
        return self.alive[n] and not self.stopped[n]

    def state(self, n, addr_of):
        with self.lock:
            m = self.master
            if m is not None and not self.answering(m) and self.lost_at is None:
                self.lost_at = time.time()
            if self.lost_at is not None and time.time() - self.lost_at > self.elect_after_s:
                live = [x for x in self.names if self.answering(x)]
                self.master, self.lost_at = live[0], None
                # a continued old master steps down on hearing the new one
                m = self.master
            if n == m and self.answering(n):
                return "LEADER", None
            if self.lost_at is not None:
                return "CANDIDATE", None
            return "FOLLOWER", addr_of[m]

    def command(self, n, cmd):
        with self.lock:
            self.log.append((time.time(), n, cmd))
            if "kill -9" in cmd:
                self.alive[n] = False
            elif "kill -STOP" in cmd:
                self.stopped[n] = True
            elif "kill -CONT" in cmd or "delete table" in cmd:
                self.stopped[n] = False
            if "tempod-service" in cmd and ("start" in cmd or "restart" in cmd):
                self.alive[n] = True


class FakeNode(threading.Thread):
    def __init__(self, name, addr, port, world, addr_of):
        super().__init__(daemon=True)
        self.name, self.world, self.addr_of = name, world, addr_of
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((addr, port))
        self.sock.settimeout(0.05)
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            try:
                data, src = self.sock.recvfrom(512)
            except socket.timeout:
                continue
            if not self.world.answering(self.name):
                continue
            state, master = self.world.state(self.name, self.addr_of)
            stratum, leap, refid = ntp.encode_state(state, master)
            now = time.time() + 0.001 * int(self.name[1:])
            self.sock.sendto(ntp.server_reply(data, now, now, stratum=stratum, leap=leap,
                                              refid=refid, root_dispersion_s=0.0), src)
        self.sock.close()


class FakePool:
    def __init__(self, world):
        self.world = world

    def run(self, node, cmd, timeout_s=30.0):
        self.world.command(node, cmd)
        if cmd == cpu.CPU_CMD:
            if not self.world.alive[node]:
                return Result(node, 0, "pid \n100\n", "")
            return Result(node, 0, f"pid 7\n100\n7 (tempod) S 1 1 1 0 -1 0 0 0 0 0 {int(time.time()) % 1000} 3 0 0\n", "")
        return Result(node, 0, "", "")

    def run_many(self, cmds, timeout_s=30.0, check=False):
        return {n: self.run(n, c, timeout_s) for n, c in cmds.items()}

    def get(self, node, remote, local: Path):
        if remote.endswith("events.jsonl"):
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_text(json.dumps({"ev": "start", "node": node, "hw": time.time()}) + "\n")
            return True
        return False

    def close(self):
        pass


@pytest.fixture
def fake_cluster():
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.2", 0))
    port = probe.getsockname()[1]
    probe.close()
    names = ["n1", "n2", "n3"]
    addr_of = {n: f"127.0.0.{i + 2}" for i, n in enumerate(names)}
    world = World(names)
    nodes = [FakeNode(n, addr_of[n], port, world, addr_of) for n in names]
    for n in nodes:
        n.start()
    yield port, world, [Host(n, addr_of[n], addr_of[n]) for n in names]
    for n in nodes:
        n.halt.set()
        n.join()


class FakeRunner(Runner):
    def __init__(self, suite, opts, raw, hosts, world):
        super().__init__(suite, opts, raw)
        self._fake_hosts, self._world = hosts, world

    def _ensure_hosts(self, point):
        if self.pool is None:
            self.hosts = self._fake_hosts
            self.pool = FakePool(self._world)  # type: ignore[assignment]
            self._inventory = Path("fake-inventory.yml")

    def _fetch_profiles(self):
        pass


def suite_data(port, **over):
    d = {"name": "fake-kill", "nodes": 3, "seed": 5,
         "daemon": {"ntp_port": port, "round_interval_s": 1, "election_timeout_min_s": 0.3,
                    "election_timeout_max_s": 0.5},
         "warm_up_s": 0.5, "trials": 2, "trial_duration_s": 3.5, "healthy_timeout_s": 5,
         "observer_hz": 20, "observer_timeout_s": 0.2, "cpu_interval_s": 0.5, "settle_s": 1.0,
         "faults": [{"kind": "kill", "at_s": [0.3, 0.6], "duration_s": 2.0, "targets": "master"}]}
    d.update(over)
    return d


def test_leader_kill_trials_record_failover(fake_cluster, tmp_path):
    port, world, hosts = fake_cluster
    raw = suite_data(port)
    suite = parse_suite(raw, "fake-kill.yaml")
    opts = RunOptions(results=tmp_path, quiet=True, deploy=False)
    rc = FakeRunner(suite, opts, raw, hosts, world).run()
    run_dir = next(tmp_path.iterdir())
    rf = RunFolder.open(run_dir)
    trials = rf.read("trials")
    assert [t["trial"] for t in trials] == [1, 2]
    for t in trials:
        assert t["outcome"] == "ok", t
        assert t["killed"] == t["master_before"]
        assert t["new_master"] != t["killed"]
        assert t["warm_up_end_t"] + 0.3 - 0.05 <= t["kill_t"] <= t["warm_up_end_t"] + 0.6 + 0.2
        assert t["kill_t"] < t["detect_t"] <= t["new_master_t"] <= t["first_round_t"]
        assert 0.4 < t["new_master_s"] < 2.0  # the fake world elects after 0.6 s
    assert rc == 0
    faults = rf.read("faults")
    assert [(f["trial"], f["kind"], f["phase"]) for f in faults] == [
        (1, "kill", "start"), (1, "kill", "end"), (2, "kill", "start"), (2, "kill", "end")]
    assert abs((faults[1]["t_ref"] - faults[0]["t_ref"]) - 2.0) < 0.3
    obs = rf.read("observer")
    assert {o["trial"] for o in obs} >= {1, 2} and all("sweep" in o for o in obs)
    assert rf.read("cpu") and {c["role"] for c in rf.read("cpu")} & {"LEADER", "FOLLOWER"}
    m = rf.read_manifest()
    assert m["status"] == "ok" and m["ended"] >= m["started"] and m["suite"]["name"] == "fake-kill"
    assert (run_dir / "nodes" / "n1" / "events.jsonl").exists()


def test_interrupt_reverts_faults_keeps_data_and_resume_finishes(fake_cluster, tmp_path, monkeypatch):
    port, world, hosts = fake_cluster
    raw = suite_data(port, faults=[{"kind": "stop", "at_s": 0.2, "duration_s": 3.0, "targets": "master"}],
                     trial_duration_s=3.5)
    suite = parse_suite(raw, "fake-pause.yaml")
    opts = RunOptions(results=tmp_path, quiet=False, deploy=False)  # the rich live display
    runner = FakeRunner(suite, opts, raw, hosts, world)
    from tempolab.runner import driver

    real_apply = driver.FaultSet.apply

    def apply_then_interrupt(self, f, **kw):
        rec = real_apply(self, f, **kw)
        raise KeyboardInterrupt  # Ctrl-C right after the fault went in

    monkeypatch.setattr(driver.FaultSet, "apply", apply_then_interrupt)
    rc = runner.run()
    assert rc == 130
    # the stopped master was continued on the way out
    assert not any(world.stopped.values())
    assert any("kill -CONT" in c for _t, _n, c in world.log)
    run_dir = next(tmp_path.iterdir())
    rf = RunFolder.open(run_dir)
    assert rf.read_manifest()["status"] == "interrupted"
    assert rf.read("observer") and rf.read("trials") == []
    assert [(f["kind"], f["phase"]) for f in rf.read("faults")] == [("stop", "start"), ("stop", "end")]
    monkeypatch.setattr(driver.FaultSet, "apply", real_apply)
    world.master = world.names[0] if world.answering(world.names[0]) else world.master
    rc = FakeRunner(suite, RunOptions(results=tmp_path, quiet=True, deploy=False, resume=run_dir),
                    raw, hosts, world).run()
    trials = RunFolder.open(run_dir).read("trials")
    assert [t["trial"] for t in trials] == [1, 2]
    assert RunFolder.open(run_dir).read_manifest()["status"] == "ok"
    for t in trials:
        assert t["paused"] == t["master_before"] and t["new_master"] != t["paused"], t
        assert t["two_masters_after_settle"] is False
    assert rc in (0, 1)
