"""Real tempod processes on loopback: election, sync, failover, NTP, hostile input, tshark.

Every test starts its own daemons (venv python ``-m tempod.main``) on a 127.x.y.0/24
block of its own and a free port, with auth on (temp key) and short timers (rounds 1 s,
election timeouts 1-2 s), and kills them in a ``finally``.  Waits poll with deadlines.
No root needed except where a test says so (sntp only speaks to port 123; tshark
capture).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import ntplib
import pytest

from tempod import auth, ntp, wire
from tempod.channel import Channel
from tempod.wire import Message, MsgType

PY = sys.executable
REPO = Path(__file__).resolve().parents[1]


def wait_for(pred: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what} (last: {last!r})")


def free_port(addr: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((addr, 0))
        return s.getsockname()[1]


class Cluster:
    """N tempod processes n1..nN at 127.a.b.11.. sharing one TSP port and one NTP port."""

    def __init__(self, root: Path, n: int, *, round_s: float = 1.0, ntp_port: int | None = None,
                 extra: str = "") -> None:
        self.root = root
        self.net = f"127.{random.randint(100, 250)}.{random.randint(1, 250)}"
        self.names = [f"n{i}" for i in range(1, n + 1)]
        self.addr = {nm: f"{self.net}.{10 + i}" for i, nm in enumerate(self.names, 1)}
        self.tsp_port = free_port(self.addr["n1"])
        self.ntp_port = ntp_port if ntp_port is not None else free_port(self.addr["n1"])
        self.key = root / "tempo.key"
        self.key.write_text(os.urandom(32).hex() + "\n")
        self.key.chmod(0o600)
        self.procs: dict[str, subprocess.Popen] = {}
        for nm in self.names:
            hosts = ", ".join(f'{{ name = "{p}", address = "{self.addr[p]}" }}' for p in self.names if p != nm)
            self.config(nm).write_text(f"""
[node]
name = "{nm}"
address = "{self.addr[nm]}"
tsp_port = {self.tsp_port}
ntp_port = {self.ntp_port}
[peers]
hosts = [ {hosts} ]
[auth]
key_file = "{self.key}"
[timers]
round_interval_s = {round_s}
election_timeout_min_s = 1.0
election_timeout_max_s = 2.0
[log]
event_log = "{self.log_path(nm)}"
cpu_report_interval_s = 1.0
{extra}
""")

    def config(self, nm: str) -> Path:
        return self.root / f"{nm}.toml"

    def log_path(self, nm: str) -> Path:
        return self.root / f"{nm}.jsonl"

    def start(self, nm: str, argv_prefix: list[str] | None = None, env: dict[str, str] | None = None) -> None:
        argv = (argv_prefix or []) + [PY, "-m", "tempod.main", "--config", str(self.config(nm))]
        out = open(self.root / f"{nm}.out", "ab")
        self.procs[nm] = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        out.close()

    def start_all(self) -> None:
        for nm in self.names:
            self.start(nm)

    def alive(self) -> list[str]:
        return [nm for nm, p in self.procs.items() if p.poll() is None]

    def stop_all(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
        for p in self.procs.values():
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                pass

    def ctl(self, nm: str, *args: str, config: Path | None = None, timeout_s: float = 1.0) -> subprocess.CompletedProcess:
        return subprocess.run([PY, "-m", "tempod.ctl", "--config", str(config or self.config(nm)),
                               "--timeout", str(timeout_s), *args],
                              capture_output=True, text=True, timeout=30)

    def status(self, nm: str) -> dict | None:
        r = self.ctl(nm, "status", "--json")
        return json.loads(r.stdout) if r.returncode == 0 else None

    def statuses(self) -> dict[str, dict | None]:
        return {nm: self.status(nm) for nm in self.alive()}

    def events(self, nm: str) -> list[dict]:
        p = self.log_path(nm)
        if not p.exists():
            return []
        return [json.loads(x) for x in p.read_text().splitlines() if x.strip()]

    def settled(self) -> str | None:
        """Leader name if the alive nodes have exactly one LEADER and all are synchronized."""
        st = self.statuses()
        if any(s is None for s in st.values()):
            return None
        leaders = [nm for nm, s in st.items() if s["state"] == "LEADER"]
        if len(leaders) != 1:
            return None
        if not all(s["synchronized"] and s["master"] == leaders[0] for s in st.values()):
            return None
        return leaders[0]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Callable[..., Cluster]]:
    made: list[Cluster] = []

    def make(n: int, **kw: Any) -> Cluster:
        c = Cluster(tmp_path, n, **kw)
        made.append(c)
        return c

    try:
        yield make
    finally:
        for c in made:
            c.stop_all()


def ntp_query(addr: str, port: int, timeout_s: float = 2.0) -> ntplib.NTPStats:
    return ntplib.NTPClient().request(addr, port=port, version=4, timeout=timeout_s)


# --- election, sync, failover -------------------------------------------------------

def test_three_nodes_elect_one_leader_sync_and_fail_over(cluster: Callable[..., Cluster]) -> None:
    c = cluster(3)
    c.start_all()
    leader = wait_for(c.settled, 30, "one LEADER with synchronized followers")
    # All daemons read the same host clock, so the true offsets are only what the
    # corrections made them.  A measured offset must lie within its error bound (half the
    # round trip) plus sync.agreement_s (20 ms, the group's own agreement threshold): on
    # an idle machine they are tens of us; on a loaded 2-core host a first SETTIME can land
    # ~15 ms off and the frequency loop wanders for a while (see docs/daemon.md).
    def measured() -> dict | None:
        st = c.status(leader)
        if st is None or st["round"] < 1 or any(p["offset_s"] is None for p in st["peers"]):
            return None
        ok = all(p["in_group"] and abs(p["offset_s"]) <= p["bound_s"] + 0.020 for p in st["peers"])
        return st if ok else None
    wait_for(measured, 20, "a round with every follower within its bound + 20 ms")
    assert all(s["counters"]["bad_auth"] == 0 and s["counters"]["malformed"] == 0
               for s in c.statuses().values() if s)

    # Kill -9 the master: the others elect a new one and rounds resume.
    t_kill = time.time()
    c.procs[leader].send_signal(signal.SIGKILL)
    c.procs[leader].wait(10)
    new = wait_for(lambda: (lambda nl: nl if nl and nl != leader else None)(c.settled()), 45,
                   "a new master after the kill")
    rounds = [e for e in c.events(new) if e["ev"] == "round" and e["wall"] > t_kill]
    assert rounds and rounds[-1]["master"] == new
    states = [e for e in c.events(new) if e["ev"] == "state" and e["wall"] > t_kill]
    assert states and states[-1]["to"] == "LEADER"

    # SIGTERM: a stop event and exit status 0.
    for nm in c.alive():
        c.procs[nm].send_signal(signal.SIGTERM)
    for nm in c.alive() + [n for n in c.names if n != leader]:
        assert c.procs[nm].wait(10) == 0
        evs = c.events(nm)
        assert evs[-1]["ev"] == "stop" and evs[-1]["reason"] == "SIGTERM"
        assert {"start", "cpu", "counters"} <= {e["ev"] for e in evs}
        cpu_ns = [e["cpu_ns"] for e in evs if e["ev"] == "cpu"]
        assert all(isinstance(v, int) for v in cpu_ns) and cpu_ns == sorted(cpu_ns)
        for e in evs:
            assert {"ev", "node", "hw", "clk", "wall"} <= set(e) and e["node"] == nm


def test_tempoctl_commands(cluster: Callable[..., Cluster]) -> None:
    c = cluster(3)
    c.start_all()
    leader = wait_for(c.settled, 30, "a settled group")
    follower = next(n for n in c.names if n != leader)
    r = c.ctl(follower, "msite")
    assert r.returncode == 0 and r.stdout.strip() == leader
    r = c.ctl(leader, "status")
    assert r.returncode == 0 and f"{leader}: LEADER" in r.stdout and "cpu: " in r.stdout
    # the runtime's own CPU time (CLOCK_PROCESS_CPUTIME_ID, ns) rides on the status
    st = c.status(leader)
    assert isinstance(st["cpu"]["cpu_ns"], int) and st["cpu"]["cpu_ns"] > 0
    r = c.ctl(leader, "clockdiff", c.addr[follower])
    assert r.returncode == 0 and "this host" in r.stdout, r.stderr
    r = c.ctl(leader, "trace", "on")
    assert r.returncode == 0
    wait_for(lambda: any(e["ev"] == "trace" and e.get("dir") == "in" for e in c.events(leader)), 5, "trace events")
    assert c.ctl(leader, "trace", "off").returncode == 0
    r = c.ctl(leader, "election", c.addr[follower])
    assert r.returncode == 0 and "election started" in r.stdout
    wait_for(lambda: any(e["ev"] == "election" and e.get("phase") == "candidate" for e in c.events(follower)),
             5, "the follower standing as candidate")
    wait_for(c.settled, 30, "one LEADER again after the forced election")


def test_tempoctl_wrong_key_gets_no_answer(cluster: Callable[..., Cluster], tmp_path: Path) -> None:
    c = cluster(1)
    c.start_all()
    wait_for(lambda: c.status("n1"), 10, "n1 answering")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "tempo.key").write_text(os.urandom(32).hex())
    text = c.config("n1").read_text().replace(str(c.key), str(bad / "tempo.key"))
    (bad / "n1.toml").write_text(text)
    r = c.ctl("n1", "status", config=bad / "n1.toml", timeout_s=0.6)
    assert r.returncode == 1
    assert "no answer" in r.stderr and "key" in r.stderr and r.stdout == ""
    st = wait_for(lambda: c.status("n1"), 5, "status")
    assert st["counters"]["bad_auth"] >= 1


# --- NTP responder ------------------------------------------------------------------

def test_ntplib_reads_node_clock_and_state(cluster: Callable[..., Cluster]) -> None:
    c = cluster(2)
    c.start_all()
    leader = wait_for(c.settled, 30, "a settled group")
    follower = next(n for n in c.names if n != leader)
    r = ntp_query(c.addr[leader], c.ntp_port)
    assert r.stratum == 1 and r.ref_id.to_bytes(4, "big") == b"LEAD"
    # offset error <= delay / 2 (+ the sub-ms the corrections moved the clocks, + slack)
    assert r.leap == 0 and abs(r.offset) <= r.delay / 2 + 0.005
    r = ntp_query(c.addr[follower], c.ntp_port)
    assert r.stratum == 2 and socket.inet_ntoa(r.ref_id.to_bytes(4, "big")) == c.addr[leader]
    # The state decodes back with the project's own NTP codec too.
    assert ntp.decode_state(r.stratum, r.ref_id.to_bytes(4, "big")) == ("FOLLOWER", c.addr[leader])
    assert abs(r.offset) <= r.delay / 2 + 0.005
    st = c.status(follower)
    assert st is not None and st["counters"]["rx"] > 0


@pytest.mark.skipif(shutil.which("sntp") is None, reason="sntp (ntpsec ntpdig) not installed")
@pytest.mark.skipif(os.geteuid() != 0, reason="sntp only queries port 123, which needs root to bind")
def test_stock_sntp_reads_node_clock(cluster: Callable[..., Cluster]) -> None:
    c = cluster(1, ntp_port=123)
    c.start_all()
    wait_for(lambda: (c.status("n1") or {}).get("state") == "LEADER", 15, "n1 leading")
    # ntpdig prints: "2026-11-23 10:00:00.123456 (+0000) +0.000123 +/- 0.000045 127.x.y.11 s1 no-leap"
    r = subprocess.run(["sntp", "-t", "2", c.addr["n1"]], capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    fields = r.stdout.split()
    off = float(fields[fields.index("+/-") - 1])
    err = float(fields[fields.index("+/-") + 1])
    # A lone leader never corrects itself, so its clock is the host clock: sntp's offset
    # must be within sntp's own error bound (half its round trip) plus 5 ms of slack.
    assert abs(off) <= err + 0.005 and " s1 " in r.stdout, r.stdout


# --- hostile input ------------------------------------------------------------------

def test_malformed_unauthenticated_and_replayed_datagrams_change_nothing(cluster: Callable[..., Cluster]) -> None:
    c = cluster(2)
    c.start_all()
    leader = wait_for(c.settled, 30, "a settled group")
    follower = next(n for n in c.names if n != leader)
    before = {nm: c.status(nm) for nm in c.names}
    tsp = (c.addr[follower], c.tsp_port)
    lead = (c.addr[leader], c.tsp_port)
    far = int((time.time() + 100.0) * 1e9)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        good = Channel(auth.KeyRing.load(c.key, 1), 1, required=True, local_name="mallory")
        # garbage without a trailer: rejected by authentication before anything parses it
        for junk in (b"", b"\x01", b"\x05\x07" + bytes(80), os.urandom(300)):
            s.sendto(junk, tsp)
        # authentic but malformed (a buggy peer): short, bad version, random bytes
        assert good.signer is not None
        for junk in (b"\x01", b"\x05\x07" + bytes(80), os.urandom(300)):
            s.sendto(good.signer.sign(junk), tsp)
        # unauthenticated but well-formed: a SETTIME +100 s "from the master", a QUIT to the master
        s.sendto(wire.encode(Message(MsgType.SETTIME, 1, leader, time_ns=far)), tsp)
        s.sendto(wire.encode(Message(MsgType.QUIT, 2, follower)), lead)
        # authentic under a different key
        other = Channel(auth.KeyRing({1: os.urandom(32)}), 1, required=True, local_name=None)
        s.sendto(other.seal(Message(MsgType.SETTIME, 3, leader, time_ns=far), recipient=follower), tsp)
        # replay: one authentic STATUS_REQ twice; only the first is answered
        pkt = good.seal(Message(MsgType.STATUS_REQ, 4, "mallory"))
        s.settimeout(2)
        s.sendto(pkt, tsp)
        assert good.open(s.recvfrom(65535)[0]).type == MsgType.STATUS
        s.sendto(pkt, tsp)
        s.settimeout(0.5)
        with pytest.raises(socket.timeout):
            s.recvfrom(65535)
    st = wait_for(lambda: (lambda x: x if x and x["counters"]["replayed"] >= 1 else None)(c.status(follower)),
                  5, "counters")
    k0, k1 = before[follower]["counters"], st["counters"]
    assert k1["malformed"] - k0["malformed"] == 3
    assert k1["bad_auth"] - k0["bad_auth"] == 4 + 1 + 1
    assert k1["replayed"] - k0["replayed"] == 1
    # Nothing changed: same roles, and the follower's clock was not moved by the forged SETTIME.
    assert st["state"] == "FOLLOWER" and st["master"] == leader
    assert abs(st["clock"]["adjust_s"]) < 0.05
    lst = c.status(leader)
    assert lst is not None and lst["state"] == "LEADER" and lst["counters"]["bad_auth"] >= 1
    assert sorted(c.alive()) == sorted(c.names)
    rejects = [e for e in c.events(follower) if e["ev"] == "reject"]
    assert {e["kind"] for e in rejects} == {"malformed", "bad_auth", "replayed"}


# --- tshark decodes our traffic as TSP ----------------------------------------------

def _tshark_can_capture() -> str | None:
    if shutil.which("tshark") is None:
        return "tshark not installed"
    r = subprocess.run(["tshark", "-D"], capture_output=True, text=True, timeout=30)
    if "lo" not in r.stdout:
        return f"tshark cannot list the loopback interface (needs root or wireshark group): {r.stderr.strip()[:200]}"
    return None


def test_tshark_decodes_traffic_as_tsp(cluster: Callable[..., Cluster], tmp_path: Path) -> None:
    why = _tshark_can_capture()
    if why:
        pytest.skip(why)
    c = cluster(3)
    pcap = tmp_path / "tsp.pcap"
    cap = subprocess.Popen(["tshark", "-i", "lo", "-f", f"udp port {c.tsp_port}", "-w", str(pcap), "-q"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert cap.stderr is not None
        wait_for(lambda: pcap.exists() and pcap.stat().st_size > 0, 20, "tshark to start capturing")
        c.start_all()
        wait_for(c.settled, 30, "a settled group")
        time.sleep(1.5)  # one more round on the wire
    finally:
        cap.send_signal(signal.SIGINT)
        cap.wait(20)
    r = subprocess.run(["tshark", "-r", str(pcap), "-d", f"udp.port=={c.tsp_port},tsp",
                        "-T", "fields", "-e", "tsp.type", "-e", "tsp.version", "-e", "tsp.name"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    rows = [line.split("\t") for line in r.stdout.splitlines() if line.strip()]
    assert len(rows) > 10
    types = {int(t) for t, _v, _n in rows if t}
    names = {n for _t, _v, n in rows}
    assert all(v == "1" for _t, v, _n in rows)
    # the daemons, plus the polling tempoctl invocations (STATUS_REQ / STATUS)
    assert set(c.names) <= names and all(n.startswith("tempoctl-") for n in names - set(c.names)), names
    # MASTERREQ, ELECTION/ACCEPT or MASTERUP, ACK, ADJTIME/SETTIME, PROBE/PROBE_REPLY
    assert {MsgType.MASTERREQ, MsgType.ACK, MsgType.PROBE, MsgType.PROBE_REPLY} <= types, types
    assert types & {MsgType.ADJTIME, MsgType.SETTIME}


# --- libfaketime: a node 2 s ahead ---------------------------------------------------

def test_node_under_libfaketime_reads_two_seconds_ahead(cluster: Callable[..., Cluster], tmp_path: Path) -> None:
    lib = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
    launch = Path(PY).with_name("tempod-launch")
    if not lib.exists() or not launch.exists():
        pytest.skip("libfaketime or tempod-launch missing")
    c = cluster(1)
    profile = tmp_path / "drift.toml"
    profile.write_text(f"epoch_unix_s = {time.time() - 10:.3f}\noffset_s = 2.0\nrate_ppm = 0.0\n")
    c.start("n1", argv_prefix=[str(launch), "--profile", str(profile), "--"])
    r = wait_for(lambda: _try(lambda: ntp_query(c.addr["n1"], c.ntp_port)), 15, "NTP answer from n1")
    assert abs(r.offset - 2.0) < 0.05, r.offset
    start = next(e for e in c.events("n1") if e["ev"] == "start")
    assert abs(start["hw"] - start["wall"]) < 0.01  # time.time() is the faked clock too


def _try(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except (ntplib.NTPException, OSError):
        return None


# --- process start-up errors -------------------------------------------------------

def test_exit_codes_for_bad_config_and_bind_failure(cluster: Callable[..., Cluster], tmp_path: Path) -> None:
    c = cluster(1)
    bad = tmp_path / "bad.toml"
    bad.write_text(c.config("n1").read_text().replace("round_interval_s = 1.0", "round_interval_s = -1"))
    r = subprocess.run([PY, "-m", "tempod.main", "--config", str(bad)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert r.stderr.strip().endswith("timers.round_interval_s: must be > 0, got -1.0") and r.stderr.count("\n") == 1
    r = subprocess.run([PY, "-m", "tempod.main", "--config", str(c.config("n1")), "--check"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and f'address = "{c.addr["n1"]}"' in r.stdout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squat:
        squat.bind((c.addr["n1"], c.tsp_port))
        r = subprocess.run([PY, "-m", "tempod.main", "--config", str(c.config("n1"))],
                           capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert f"{c.addr['n1']} port {c.tsp_port}" in r.stderr and "in use" in r.stderr


def test_sighup_reopens_log_and_send_errors_are_counted_not_fatal(tmp_path: Path) -> None:
    # A peer at an IPv6 address cannot be reached from the IPv4 socket: every sendto to it
    # fails with an OSError, the same path as EPERM from an nftables output drop.
    c = Cluster(tmp_path, 1)
    cfg = c.config("n1")
    cfg.write_text(cfg.read_text().replace("hosts = [  ]", 'hosts = [ { name = "ghost", address = "::1" } ]'))
    c.start("n1")
    try:
        st = wait_for(lambda: (lambda s: s if s and s["counters"]["send_errors"] >= 2 else None)(c.status("n1")),
                      15, "send errors counted")
        assert c.procs["n1"].poll() is None
        errs = [e for e in c.events("n1") if e["ev"] == "send_error"]
        assert errs and errs[0]["to"] == "ghost" and errs[0]["address"].startswith("::1")
        assert st["state"] in ("NOLEADER", "CANDIDATE", "LEADER", "START")

        rotated = tmp_path / "n1.jsonl.1"
        c.log_path("n1").rename(rotated)
        c.procs["n1"].send_signal(signal.SIGHUP)
        wait_for(lambda: any(e["ev"] == "reopen" for e in c.events("n1")), 5, "a reopen event in the new file")
        assert any(json.loads(x)["ev"] == "start" for x in rotated.read_text().splitlines())
        c.procs["n1"].send_signal(signal.SIGTERM)
        assert c.procs["n1"].wait(10) == 0
        assert c.events("n1")[-1]["ev"] == "stop"
    finally:
        c.stop_all()


def test_late_node_two_seconds_ahead_is_pulled_into_the_group(cluster: Callable[..., Cluster],
                                                              tmp_path: Path) -> None:
    launch = Path(PY).with_name("tempod-launch")
    if not Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1").exists() or not launch.exists():
        pytest.skip("libfaketime or tempod-launch missing")
    c = cluster(3)
    c.start("n1")
    c.start("n2")
    wait_for(lambda: (lambda s: s and s["state"] == "LEADER" and s["synchronized"])(
        c.status("n1") if (c.status("n1") or {}).get("state") == "LEADER" else c.status("n2")),
        20, "n1/n2 settled")
    profile = tmp_path / "drift3.toml"
    profile.write_text(f"epoch_unix_s = {time.time() - 5:.3f}\noffset_s = 2.0\nrate_ppm = 1000.0\n")
    c.start("n3", argv_prefix=[str(launch), "--profile", str(profile), "--"])
    # Short query timeout: until n3 binds, a request to its port is silently lost.
    first = wait_for(lambda: _try(lambda: ntp_query(c.addr["n3"], c.ntp_port, 0.05)), 15, "first NTP answer", 0.0)
    # Before its first correction n3 reads its hardware clock: 2 s ahead (+1000 ppm * 5 s).
    # The master corrects it within about a round (1 s) and the hold absorbs the -2 s at a
    # bounded rate, so the first answer is 2 s ahead or a little less, never behind.
    assert 1.0 < first.offset < 2.05, first.offset
    # The two agreeing nodes outvote it; the -2 s correction is absorbed without running
    # the clock backwards (discipline's hold at reduced rate), then NTP reads true time.
    # 20 ms, not 1 ms: on a loaded 2-core host a first SETTIME can land ~15 ms off (it is
    # absolute, so receive-side scheduling delay is error) and the frequency loop then
    # learns from it; the group wanders by ~5-15 ms for ~20 s (reported to the core/clock
    # owners).  That is the core's accuracy; this test is about the daemon's path.
    wait_for(lambda: (lambda r: r is not None and abs(r.offset) < 0.02)(
        _try(lambda: ntp_query(c.addr["n3"], c.ntp_port))), 30, "n3 within 20 ms of true time")
    # "synchronized" once a correction that is not part of the hold has landed: a round later
    st = wait_for(lambda: (lambda s: s if s and s["state"] == "FOLLOWER" and s["synchronized"] else None)(
        c.status("n3")), 10, "n3 reports synchronized")
    assert st["master"] in ("n1", "n2")
    assert any(e["ev"] == "adjust" for e in c.events("n3"))


@pytest.mark.skipif(os.geteuid() != 0, reason="SCHED_FIFO needs root (or CAP_SYS_NICE)")
def test_realtime_priority_puts_the_daemon_and_its_threads_under_sched_fifo(cluster: Callable[..., Cluster]) -> None:
    c = cluster(2, extra="[process]\nrealtime_priority = 7\n")
    c.start("n1")
    c.config("n2").write_text(c.config("n2").read_text().replace("realtime_priority = 7", "realtime_priority = 0"))
    c.start("n2")
    start = wait_for(lambda: next((e for e in c.events("n1") if e.get("ev") == "start"), None), 15, "n1's start event")
    assert start["config"]["realtime_priority"] == 7
    wait_for(lambda: any(e.get("ev") == "start" for e in c.events("n2")), 15, "n2's start event")
    pid = c.procs["n1"].pid
    for tid in os.listdir(f"/proc/{pid}/task"):
        assert os.sched_getscheduler(int(tid)) == os.SCHED_FIFO, tid
        assert os.sched_getparam(int(tid)).sched_priority == 7
    assert os.sched_getscheduler(c.procs["n2"].pid) == os.SCHED_OTHER
    assert c.alive() == ["n1", "n2"]
    assert not [e for e in c.events("n1") if e.get("ev") == "warning" and "SCHED_FIFO" in str(e)]
