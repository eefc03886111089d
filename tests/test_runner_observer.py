"""The observer against tiny NTP responders on 127.0.0.x built from ``tempod.ntp``.

Each fake node answers with its clock = real time + a known offset and the election
state encoded as in docs/architecture.md; the observer must measure the offset within
its own bound, decode state and master, and record a silent node as unreachable.
"""

from __future__ import annotations

import collections
import os
import socket
import threading
import time

import pytest

from tempod import ntp
from tempolab.runner import ntpwire
from tempolab.runner.faults import NodeRef
from tempolab.runner.observer import Observer, bound_stats


class FakeNode:
    def __init__(self, addr: str, port: int, offset_s: float, state: str, master_ip: str | None,
                 delay_s: float = 0.0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((addr, port))
        self.sock.settimeout(0.1)
        self.offset_s, self.state, self.master_ip, self.delay_s = offset_s, state, master_ip, delay_s
        self.stop = threading.Event()
        self.answered = 0
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    def loop(self) -> None:
        while not self.stop.is_set():
            try:
                data, src = self.sock.recvfrom(512)
            except socket.timeout:
                continue
            t2 = time.time() + self.offset_s
            if self.delay_s:
                time.sleep(self.delay_s)
            stratum, leap, refid = ntp.encode_state(self.state, self.master_ip)
            reply = ntp.server_reply(data, t2, time.time() + self.offset_s, stratum=stratum,
                                     leap=leap, refid=refid, root_dispersion_s=0.001)
            self.before_send()
            self.sock.sendto(reply, src)
            self.answered += 1

    def before_send(self) -> None:
        """Between the transmit timestamp and ``sendto``: where a responder gets preempted."""

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.sock.close()


@pytest.fixture
def cluster():
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.2", 0))
    port = probe.getsockname()[1]
    probe.close()
    nodes = [
        FakeNode("127.0.0.2", port, +0.250, "LEADER", None),
        FakeNode("127.0.0.3", port, -0.125, "FOLLOWER", "127.0.0.2"),
        FakeNode("127.0.0.4", port, 0.0, "CANDIDATE", None, delay_s=0.02),
    ]
    yield port, nodes
    for n in nodes:
        n.close()


def test_observer_measures_offsets_states_and_missing_samples(cluster):
    port, fakes = cluster
    refs = [NodeRef("n1", "127.0.0.2"), NodeRef("n2", "127.0.0.3"), NodeRef("n3", "127.0.0.4"),
            NodeRef("n4", "127.0.0.5")]  # n4: nobody listens
    sunk = []
    obs = Observer(refs, port=port, hz=20, timeout_s=0.2, sink=sunk.append)
    obs.set_trial(3)
    with obs:
        time.sleep(1.5)
    # the samples used: on a loaded host the clock filter may also have recorded a
    # superseded retry (a slow reply, or one unanswered at the sweep's end)
    by = {n.name: [s for s in sunk if s["node"] == n.name and not s["superseded"]] for n in refs}
    for name in ("n1", "n2", "n3"):
        assert len(by[name]) >= 20, name  # ~30 sweeps at 20 Hz, pipelined
    leader = by["n1"][-1]
    assert leader["state"] == "LEADER" and leader["master"] == "n1" and leader["stratum"] == 1
    follower = by["n2"][-1]
    assert follower["state"] == "FOLLOWER" and follower["master"] == "n1" and follower["stratum"] == 2
    assert by["n3"][-1]["state"] == "CANDIDATE" and by["n3"][-1]["master"] is None
    for name, expected in (("n1", 0.250), ("n2", -0.125), ("n3", 0.0)):
        for s in by[name]:
            # offset error <= half the round trip (+ float resolution of NTP timestamps)
            assert abs(s["offset_s"] - expected) <= s["bound_s"] + 2e-6, (name, s)
            assert s["trial"] == 3 and s["rtt_s"] >= 0
    # the slow node (20 ms to answer) has its processing time removed from the rtt
    assert min(s["rtt_s"] for s in by["n3"]) < 0.01
    assert by["n4"] and all(s["state"] == "unreachable" and s["offset_s"] is None for s in by["n4"])
    # one sweep id covers one request per node
    sweep_ids = {s["sweep"] for s in sunk}
    assert len(sweep_ids) >= 20
    assert obs.latest()["n1"]["state"] == "LEADER"
    st = bound_stats(sunk)
    assert st["n"] > 0 and st["median_s"] < 0.005


def test_observer_rate_is_kept_on_five_nodes(cluster):
    port, _fakes = cluster
    refs = [NodeRef(f"n{i}", a) for i, a in enumerate(["127.0.0.2", "127.0.0.3", "127.0.0.4"] * 2)]
    sunk = []
    with Observer(refs[:5], port=port, hz=10, timeout_s=0.3, sink=sunk.append):
        time.sleep(2.05)
    sweeps = {s["sweep"] for s in sunk}
    assert 18 <= len(sweeps) <= 23  # 10 Hz over ~2 s


def test_decode_state_matches_the_daemon_encoding():
    for state in ("LEADER", "FOLLOWER", "START", "CONSISTENCY", "NOLEADER", "ACCEPT",
                  "CANDIDATE", "CONFLICT"):
        stratum, leap, refid = ntp.encode_state(state, "10.0.0.7" if state == "FOLLOWER" else None)
        got, master = ntpwire.decode_state(stratum, leap, refid)
        assert got == state
        assert master == {"LEADER": "self", "FOLLOWER": "10.0.0.7"}.get(state)
    assert ntpwire.decode_state(3, 0, b"GPS\0") == ("UNKNOWN", None)


def test_measure_signs():
    # node 1 s ahead, 10 ms each way, 1 ms processing
    t1 = 1000.0
    m = ntpwire.measure(t1, t1 + 0.010 + 1.0, t1 + 0.011 + 1.0, t1 + 0.021)
    assert m.offset_s == pytest.approx(1.0, abs=1e-9)
    assert m.rtt_s == pytest.approx(0.020, abs=1e-9) and m.bound_s == pytest.approx(0.010, abs=1e-9)
    assert m.t_ref == pytest.approx(t1 + 0.0105)


def test_reply_matching_rejects_short_and_wrong_mode():
    req, key = ntpwire.build_request(0x1122334455667788)
    assert len(req) == 48 and key == bytes.fromhex("1122334455667788") and req[0] == 0x23
    # the daemon's own server echoes it as the originate timestamp
    st, leap, ref = ntp.encode_state("LEADER", None)
    reply = ntp.server_reply(req, 1.0e9, 1.0e9, stratum=st, leap=leap, refid=ref, root_dispersion_s=0.0)
    assert ntpwire.reply_key(reply) == key
    with pytest.raises(ntpwire.BadReply):
        ntpwire.reply_key(b"\0" * 10)
    with pytest.raises(ntpwire.BadReply, match="mode 3"):
        ntpwire.parse_reply(req)


class StallingNode(FakeNode):
    """Answers like FakeNode but, on the requests ``stall(k)`` picks (k = 0, 1, ...),
    waits ``stall_s`` between its transmit timestamp and ``sendto``: a responder
    preempted there, whose reply is off by about half the stall."""

    def __init__(self, addr: str, port: int, stall, stall_s: float = 0.004):
        self.stall, self.stall_s, self.k = stall, stall_s, 0
        super().__init__(addr, port, 0.0, "FOLLOWER", None)

    def before_send(self) -> None:
        if self.stall(self.k):
            time.sleep(self.stall_s)
        self.k += 1


def _free_port(addr: str) -> int:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind((addr, 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


def _observe_stalling(addr: str, name: str, stall, stall_s: float, seconds: float,
                      **observer_kw) -> tuple[Observer, list[dict]]:
    """Run an Observer against one StallingNode at ``addr`` for ``seconds``:
    (the observer, every sample it recorded)."""
    port = _free_port(addr)
    node = StallingNode(addr, port, stall=stall, stall_s=stall_s)
    sunk: list[dict] = []
    obs = Observer([NodeRef(name, addr)], port=port, timeout_s=0.2, sink=sunk.append, **observer_kw)
    try:
        with obs:
            time.sleep(seconds)
    finally:
        node.close()
    return obs, sunk


def _per_sweep(samples: list[dict], node: str) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = {}
    for s in samples:
        if s["node"] == node:
            out.setdefault(s["sweep"], []).append(s)
    return out


def test_observer_requeries_a_stalled_reply_and_marks_it_superseded():
    # every other request stalls 20 ms: each sweep's regular request does, its retry not
    obs, sunk = _observe_stalling("127.0.0.6", "s1", lambda k: k % 2 == 0, 0.02, 1.5,
                                  hz=10, retries=2, retry_bound_floor_s=5e-3)
    sweeps = _per_sweep(sunk, "s1")
    assert len(sweeps) >= 10
    retried = clean = 0
    for sweep, group in sweeps.items():
        chosen = [s for s in group if not s["superseded"]]
        assert len(chosen) == 1, group                        # exactly one per node per sweep
        best = chosen[0]
        assert best["bound_s"] == min(s["bound_s"] for s in group if s["bound_s"] is not None)
        assert sorted(s["retry"] for s in group) == list(range(len(group)))
        if len(group) > 1:
            retried += 1
            assert group[0]["retry"] == 0 and group[0]["superseded"] and group[0]["bound_s"] > 5e-3
            assert best["retry"] >= 1 and best["bound_s"] < group[0]["bound_s"]
        # on a loaded host a retry can be slowed too; most must come back clean
        clean += best["bound_s"] < 5e-3
    assert retried >= len(sweeps) - 2      # the stall is seen and retried in (nearly) every sweep
    assert clean >= 0.7 * len(sweeps)
    assert obs.retries_sent >= retried
    # the history and latest() give the chosen samples; the superseded stay recorded
    assert len(obs.samples()) == len(sweeps)
    assert len(obs.samples(superseded=True)) == len(sunk)
    assert not obs.latest()["s1"]["superseded"]
    assert bound_stats(sunk)["n"] == len(sweeps)


def test_observer_gives_up_after_its_retries_and_keeps_the_best():
    _, sunk = _observe_stalling("127.0.0.7", "s2", lambda k: True, 0.003, 0.55,   # always slow
                                hz=10, retries=2, retry_bound_floor_s=1e-3, retry_factor=1000.0)
    sweeps = _per_sweep(sunk, "s2")
    assert sweeps
    for group in sweeps.values():
        assert len(group) <= 3                               # the request + at most 2 retries
        assert sum(not s["superseded"] for s in group) == 1
    assert max(len(g) for g in sweeps.values()) == 3


def test_observer_without_retries_sends_one_request_per_node_per_sweep():
    obs, sunk = _observe_stalling("127.0.0.8", "s3", lambda k: True, 0.003, 0.5, hz=20, retries=0)
    assert sunk and all(s["retry"] == 0 and not s["superseded"] for s in sunk)
    assert len({s["sweep"] for s in sunk}) == len(sunk)
    assert obs.retries_sent == 0


def test_retry_threshold_follows_the_nodes_running_median_bound():
    obs = Observer([NodeRef("n1", "127.0.0.2")], retry_bound_floor_s=100e-6, retry_factor=3.0)
    assert obs.retry_threshold_s("n1") == pytest.approx(100e-6)      # nothing seen yet: the floor
    obs._bounds["n1"] = collections.deque([20e-6, 30e-6, 40e-6])
    assert obs.retry_threshold_s("n1") == pytest.approx(100e-6)      # 3 x 30 us < floor
    obs._bounds["n1"] = collections.deque([200e-6, 300e-6, 5e-3])
    assert obs.retry_threshold_s("n1") == pytest.approx(900e-6)      # a slow node: 3 x its median
    with pytest.raises(ValueError):
        Observer([], retries=-1)
    with pytest.raises(ValueError):
        Observer([], retry_factor=0.5)


@pytest.mark.skipif(os.geteuid() != 0, reason="SCHED_FIFO needs root (or CAP_SYS_NICE)")
def test_observer_thread_runs_under_sched_fifo_when_asked():
    obs = Observer([NodeRef("n1", "127.0.0.2")], hz=5, realtime_priority=3)
    with obs:
        assert obs.realtime_warning is None
        assert obs._thread is not None and obs._thread.native_id is not None
        assert os.sched_getscheduler(obs._thread.native_id) == os.SCHED_FIFO
        assert os.sched_getparam(obs._thread.native_id).sched_priority == 3
    # only that thread: the caller keeps its policy
    assert os.sched_getscheduler(0) == os.SCHED_OTHER


def test_observer_realtime_refused_is_a_warning(monkeypatch):
    def refuse(*_a):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    obs = Observer([NodeRef("n1", "127.0.0.2")], hz=5, realtime_priority=3)
    with obs:
        assert obs.realtime_warning is not None and "cannot switch to SCHED_FIFO" in obs.realtime_warning
    with pytest.raises(ValueError):
        Observer([], realtime_priority=100)
