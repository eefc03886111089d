"""The three protocols for real: stock chronyd's timestamp shim, and a short ``protocols``
suite (Berkeley, Cristian, NTP in turn on lab ``proto``, 10.86.0.0/24) through the runner,
then ``tempo compare --by-protocol`` over its run folder, and ``tempo run --cleanup`` on
the chronyds the run leaves (one running, one SIGSTOPped, one SIGKILLed with its files).

The shim test runs the Debian chronyd the chrony role unpacks (build/chrony, downloaded
with ``apt-get download`` when missing) as a ``local stratum 1`` server on a faked clock
0.3 s ahead, in a scratch network namespace, and reads it over NTP as the observer does:
with the role's shim it must read 0.3 s; without it, chronyd answers with the kernel's
(real) receive stamp and its own (faked) transmit stamp, and reads about 0.15 s -- the
control case, so this test would fail if the shim stopped working.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tempolab.runner import ntpwire

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / "build" / "chrony"
LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
LAB, SUBNET = "proto", "10.86.0.0/24"


def _chronyd() -> Path:
    """The role's unpacked chronyd, fetched the way the role does when missing."""
    binary = CACHE / "root" / "usr" / "sbin" / "chronyd"
    if not binary.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        if not list(CACHE.glob("chrony_*.deb")):
            if subprocess.run(["apt-get", "download", "chrony"], cwd=CACHE, capture_output=True).returncode:
                subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True)
                subprocess.run(["apt-get", "download", "chrony"], cwd=CACHE, check=True, capture_output=True)
        deb = sorted(CACHE.glob("chrony_*.deb"))[0]
        shutil.rmtree(CACHE / "root.tmp", ignore_errors=True)
        subprocess.run(["dpkg", "-x", str(deb), str(CACHE / "root.tmp")], check=True)
        (CACHE / "root.tmp").rename(CACHE / "root")
    return binary


def _read_offset(ns: str, port: int) -> float:
    """Offset of the server in ``ns`` (127.0.0.1:port) as the observer computes it."""
    code = (
        "import socket, sys, time\n"
        "from tempolab.runner import ntpwire\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1.0)\n"
        "best = None\n"
        "for i in range(8):\n"
        "    req, key = ntpwire.build_request(i + 1)\n"
        "    t1 = time.time(); s.sendto(req, ('127.0.0.1', %d)); data = s.recv(512); t4 = time.time()\n"
        "    r = ntpwire.parse_reply(data); m = ntpwire.measure(t1, r.t2_s, r.t3_s, t4)\n"
        "    best = m if best is None or m.rtt_s < best.rtt_s else best\n"
        "    time.sleep(0.05)\n"
        "print(best.offset_s)\n" % port)
    # this interpreter (and its PYTHONPATH): a git worktree has no .venv of its own
    out = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code],
                         capture_output=True, text=True, timeout=30, cwd=REPO)
    assert out.returncode == 0, out.stderr
    return float(out.stdout.strip())


def test_chronyd_under_libfaketime_needs_the_timestamp_shim(tmp_path):
    chronyd = _chronyd()
    shim = tmp_path / "tempo_nots.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-o", str(shim),
                    str(REPO / "roles" / "chrony" / "files" / "tempo_nots.c"), "-ldl"], check=True)
    ns = f"tproshim{os.getpid() % 10000}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True)
        read = {}
        for label, preload in (("shim", f"{LIBFAKETIME}:{shim}"), ("none", LIBFAKETIME)):
            conf = tmp_path / f"{label}.conf"
            conf.write_text(f"port 11123\nbindaddress 127.0.0.1\ncmdport 0\nlocal stratum 1\n"
                            f"allow 127.0.0.1\npidfile {tmp_path}/{label}.pid\n")
            env = dict(os.environ, LD_PRELOAD=preload, FAKETIME="+0.3", FAKETIME_DISABLE_SHM="1",
                       TEMPO_NOTS_LOG="1")
            log = open(tmp_path / f"{label}.out", "w")
            proc = subprocess.Popen(["ip", "netns", "exec", ns, str(chronyd), "-x", "-d", "-u", "root",
                                     "-f", str(conf)], env=env, stdout=log, stderr=subprocess.STDOUT)
            try:
                time.sleep(1.0)
                assert proc.poll() is None, (tmp_path / f"{label}.out").read_text()
                read[label] = _read_offset(ns, 11123)
            finally:
                proc.terminate()
                proc.wait(timeout=10)
                log.close()
        assert "tempo_nots: refused" in (tmp_path / "shim.out").read_text()
        assert read["shim"] == pytest.approx(0.3, abs=0.01), read
        # the failure the shim prevents: half the offset (real receive, faked transmit stamp)
        assert read["none"] == pytest.approx(0.15, abs=0.03), read
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def test_a_standard_ntp_primary_reads_as_the_groups_leader():
    assert ntpwire.decode_state(1, 0, bytes((127, 127, 1, 1))) == ("LEADER", "self")
    assert ntpwire.decode_state(2, 0, socket.inet_aton("10.86.0.11")) == ("FOLLOWER", "10.86.0.11")
    assert ntpwire.decode_state(0, 3, b"\0\0\0\0") == ("UNSYNCED", None)


@pytest.fixture(scope="module")
def protocols_run(tmp_path_factory):
    from tempolab.lab import Lab
    from tempolab.runner.deploy import deploy_vars, run_playbook
    from tempolab.runner.driver import Runner, RunOptions
    from tempolab.runner.suite import parse_suite

    raw = {"name": "protocols-short", "seed": 7, "protocol": ["berkeley", "cristian", "ntp"],
           "lab": {"name": LAB, "subnet": SUBNET}, "nodes": 3,
           "drift": {"max_ppm": 200, "max_offset_s": 0.5},
           "daemon": {"round_interval_s": 1.5, "election_timeout_min_s": 2.0,
                      "election_timeout_max_s": 4.0, "probe_timeout_s": 0.1},
           "warm_up_s": 8, "trials": 1, "trial_duration_s": 22, "healthy_timeout_s": 40,
           "observer_hz": 10, "cpu_interval_s": 2,
           "faults": [{"kind": "kill", "at_s": 4, "duration_s": 8, "targets": "master"}]}
    suite = parse_suite(raw, "protocols-short.yaml")
    out = tmp_path_factory.mktemp("protocols")
    Lab(LAB, SUBNET).down()
    try:
        rc = Runner(suite, RunOptions(results=out, quiet=True), raw).run()
        # the lab is left deployed for ntp: the same deployment again must change nothing
        again = tmp_path_factory.mktemp("again")
        run_playbook("deploy", Lab.load(LAB).inventory_path, deploy_vars(suite.at_point(0), "ntp"), again)
        recap = (sorted(again.glob("deploy-*.log"))[-1]).read_text()
        cleanup = _leave_chronyd_behind_and_clean_up(Lab.load(LAB))
    finally:
        Lab(LAB, SUBNET).down()
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return rc, run_dir, recap, cleanup


CHRONY_FILES = ("/run/tempo/chronyd.pid", "/run/tempo/chrony/chronyd-own.pid", "/run/tempo/chrony/chronyd.sock")


def _node_view(lab, node: str) -> dict:
    """chronyd processes (the node has its own PID namespace), which chrony files exist,
    and whether tempod runs."""
    sh = ("pgrep -x chronyd | tr '\\n' ' '; echo; for f in " + " ".join(CHRONY_FILES)
          + "; do [ -e $f ] && echo $f; done; true")
    lines = lab.exec(node, ["sh", "-c", sh]).stdout.splitlines()
    states = [lab.exec(node, ["sh", "-c", f"ps -o stat= -p {p}"], check=False).stdout.strip()
              for p in lines[0].split()]
    return {"chronyd": states, "files": lines[1:],
            "tempod": next(s.daemon_pid for s in lab.status() if s.name == node) is not None}


def _leave_chronyd_behind_and_clean_up(lab) -> dict:
    """What a run that died in an ``ntp`` trial leaves: chronyd running on n3 (as the run
    left it), SIGSTOPped on n2, SIGKILLed on n1 (stale pidfiles and socket); tempod is
    deployed stopped for ntp. Then ``tempo run --cleanup`` twice (the second must find
    nothing)."""
    import sys

    lab.exec("n1", ["sh", "-c", "kill -KILL $(head -n 1 /run/tempo/chronyd.pid)"])
    lab.exec("n2", ["sh", "-c", "kill -STOP $(head -n 1 /run/tempo/chronyd.pid)"])
    time.sleep(0.5)
    before = {n.name: _node_view(lab, n.name) for n in lab.nodes}
    argv = [sys.executable, "-m", "tempolab.cli", "run", "--cleanup", "--lab", LAB]
    first = subprocess.run(argv, capture_output=True, text=True, timeout=180)
    after = {n.name: _node_view(lab, n.name) for n in lab.nodes}
    second = subprocess.run(argv, capture_output=True, text=True, timeout=180)
    return {"before": before, "first": first, "after": after, "second": second}


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_each_protocol_ran_once_with_the_same_fault_draw(protocols_run):
    rc, run_dir, _recap, _cleanup = protocols_run
    trials = _jsonl(run_dir / "trials.jsonl")
    assert [t["protocol"] for t in trials] == ["berkeley", "cristian", "ntp"]
    assert rc == 0, [(t["protocol"], t.get("outcome"), t.get("reason")) for t in trials]
    assert {t["base_trial"] for t in trials} == {1}
    # Berkeley elects a new master; Cristian and NTP have none to elect
    assert trials[0]["new_master"] not in (None, trials[0]["killed"])
    for t in trials[1:]:
        assert t["new_master"] is None and t["killed"] == t["master_before"] == "n1"
        assert t["recovered_s"] is not None          # the clients followed the server again
    details = [f["detail"] for f in _jsonl(run_dir / "faults.jsonl") if f["phase"] == "start"]
    assert details == ["SIGKILL tempod", "SIGKILL tempod", "SIGKILL chronyd"]


def test_the_observer_read_chronyd_like_tempod(protocols_run):
    _rc, run_dir, _recap, _cleanup = protocols_run
    obs = [s for s in _jsonl(run_dir / "observer.jsonl") if s.get("trial") == 3 and not s.get("superseded")]
    states = {(s["node"], s["state"]) for s in obs}
    assert ("n1", "LEADER") in states and ("n2", "FOLLOWER") in states and ("n3", "FOLLOWER") in states
    followers = [s for s in obs if s["state"] == "FOLLOWER"]
    assert followers and all(s["master"] == "n1" for s in followers)
    # chronyd's own view is in the run folder, and its clients name the server
    view = (run_dir / "nodes" / "n2" / "chronyc-trial3.txt").read_text()
    assert "Reference ID" in view and "10.86.0.11" in view
    assert (run_dir / "nodes" / "n2" / "chrony" / "measurements.log").exists()


def test_compare_by_protocol_puts_the_three_side_by_side(protocols_run, tmp_path):
    from tempolab.analysis.protocompare import build_protocol_compare

    _rc, run_dir, _recap, _cleanup = protocols_run
    res = build_protocol_compare([run_dir], tmp_path / "cmp")
    cols = [c for c in res.table.columns if c not in ("quantity", "key")]
    assert cols == ["berkeley", "cristian", "ntp"]
    row = res.table.set_index("key")
    for p in cols:
        assert row.loc["skew_p50_s", p] is not None and row.loc["skew_p50_s", p] < 0.01
        assert row.loc["msgs_per_node_min", p] is not None and row.loc["msgs_per_node_min", p] > 0
    for f in ("protocols.md", "protocols_skew_since_fault.png", "protocols.json"):
        assert (tmp_path / "cmp" / f).stat().st_size > 0


def test_the_chrony_deployment_is_idempotent(protocols_run):
    _rc, _run_dir, recap, _cleanup = protocols_run
    lines = [line for line in recap.splitlines() if " : ok=" in line]
    assert len(lines) == 3, recap[-2000:]
    for line in lines:
        assert " changed=0 " in line and " failed=0 " in line, line


def test_cleanup_removes_the_chronyds_a_dead_ntp_run_left_and_starts_tempod(protocols_run):
    *_rest, c = protocols_run
    before, after = c["before"], c["after"]
    # the setup really left something behind: a stale pidfile on n1, a stopped and a running chronyd
    assert before["n1"]["chronyd"] == [] and "/run/tempo/chronyd.pid" in before["n1"]["files"]
    assert before["n2"]["chronyd"][0].startswith("T")
    assert len(before["n3"]["chronyd"]) == 1 and before["n3"]["chronyd"][0][0] in "RSD"
    assert not any(v["tempod"] for v in before.values())
    assert c["first"].returncode == 0, c["first"].stdout + c["first"].stderr
    out = c["first"].stdout
    assert "n2: chronyd: stopped" in out and "n3: chronyd: stopped" in out, out
    assert "n1: chronyd: not running" in out, out      # the stale pidfile, removed
    for n, v in after.items():
        assert v == {"chronyd": [], "files": [], "tempod": True}, (n, v)
    # nothing left the second time: every node reports clean
    assert c["second"].returncode == 0, c["second"].stdout + c["second"].stderr
    assert sorted(c["second"].stdout.split()) == sorted(["n1:", "n2:", "n3:", "clean", "clean", "clean"]), \
        c["second"].stdout
