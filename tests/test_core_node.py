"""Node glue: rounds, ACK/retransmit, duplicates, purge, status schema, control messages.

The in-memory cluster (``tempolab.testing.cluster``) wires several real ``Node`` cores
together with a fixed one-way delay and perfect clocks offset by known amounts, so each
test can assert exactly what every node saw.
"""

from __future__ import annotations

import random

import pytest

from tempod.actions import Broadcast, Reply
from tempod.discipline import SoftwareClock
from tempod.election import State
from tempod.node import Node
from tempod.nodeconfig import NodeConfig, Peer
from tempod.wire import Message, MsgType
from tempolab.testing.cluster import Cluster

pytestmark = pytest.mark.sim  # tier: real cores on the simulator / the in-memory cluster


def test_cluster_elects_one_master_and_synchronizes():
    c = Cluster([0.0, 0.004, -0.003, 0.001])   # < 5 ms: slewed away within one 10 s round
    c.run_until(60.0)
    m = c.master()
    for n, node in c.nodes.items():
        assert node.master == m
    rounds = c.events("round", m)
    assert len(rounds) >= 4
    last = rounds[-1]
    assert {f["name"] for f in last["followers"]} == set(c.nodes) - {m}
    for f in last["followers"]:
        assert f["rtt_s"] == pytest.approx(2 * c.delay, abs=1e-6)
        assert abs(f["offset_s"]) <= f["bound_s"] + 1e-3   # converging; slew is 500 ppm
    clks = [c.clk(n) for n in c.nodes]
    assert max(clks) - min(clks) < 2e-3
    st = c.nodes[m].status(c.hw(m))
    assert st["state"] == "LEADER" and st["synchronized"] and st["round"] == last["round"]
    assert {p["name"] for p in st["peers"]} == set(c.nodes) - {m}
    for key in ("rx", "tx", "malformed", "bad_auth", "replayed", "send_errors", "retransmits", "duplicates"):
        assert key in st["counters"]
    assert set(st["clock"]) == {"hw_s", "clk_s", "adjust_s", "freq_ppm", "slew_remaining_s"}
    f = next(n for n in c.nodes if n != m)
    assert c.nodes[f].status(c.hw(f))["synchronized"]
    adj = c.events("adjust", f)
    assert adj[0]["kind"] == "settime" and adj[-1]["kind"] == "adjtime"


def test_round_is_bounded_when_a_follower_never_answers_and_it_is_purged():
    c = Cluster([0.0, 0.0, 0.0], purge_after_missed=2)
    c.run_until(30.0)
    m = c.master()
    victim = next(n for n in c.nodes if n != m)
    c.down.add(victim)
    c.run_until(30.0 + 3 * 10.0 + 1.0)
    cfg = c.nodes[m].cfg
    late = [r for r in c.events("round", m) if r["round"] > 3]
    for r in late:
        assert r["duration_s"] <= (cfg.probes_per_round + 1) * cfg.probe_timeout_s + 1e-9
    purges = c.events("purge", m)
    assert [p["peer"] for p in purges] == [victim]
    assert victim not in c.nodes[m].followers


def test_lost_ack_retransmits_and_duplicate_is_not_applied_twice():
    c = Cluster([0.0, 0.02])
    dropped = []

    def drop(src, dst, msg):
        # drop the first ACK of an ADJTIME round trip once
        if msg.type == MsgType.ACK and not dropped and c.nodes[dst].state is State.LEADER \
                and c.events("round") and len(c.events("round")) >= 2:
            dropped.append(msg)
            return True
        return False

    c.drop = drop
    c.run_until(45.0)
    assert dropped
    m = c.master()
    f = next(n for n in c.nodes if n != m)
    assert c.nodes[m].counters["retransmits"] >= 1
    assert c.nodes[f].counters["duplicates"] >= 1
    # every correction the master sent was applied exactly once
    assert len(c.events("adjust", f)) == len(c.events("round", m))


def test_control_messages_answered_with_replies():
    c = Cluster([0.0, 0.0])
    c.run_until(20.0)
    m = c.master()
    node = c.nodes[m]
    src = ("127.0.0.1", 40000)
    (r,) = node.handle_message(Message(MsgType.STATUS_REQ, 7, "tempoctl"), src, c.hw(m))
    assert isinstance(r, Reply) and r.addr == src and r.msg.type == MsgType.STATUS
    assert r.msg.seq == 7 and r.msg.data["name"] == m
    (r,) = node.handle_message(Message(MsgType.MSITEREQ, 8, "tempoctl"), src, c.hw(m))
    assert r.msg.type == MsgType.MSITE and r.msg.target == m
    out = node.handle_message(Message(MsgType.TRACEON, 9, "tempoctl"), src, c.hw(m))
    assert node.trace and isinstance(out[0], Reply)
    assert node.command("msite", None, c.hw(m))[0].fields["master"] == m
    with pytest.raises(ValueError):
        node.command("bogus", None, 0.0)


def test_forced_election_and_unknown_sender_ignored():
    c = Cluster([0.0, 0.0, 0.0])
    c.run_until(20.0)
    m = c.master()
    f = next(n for n in c.nodes if n != m)
    node = c.nodes[f]
    before = node.counters["ignored"]
    assert node.handle_message(Message(MsgType.MASTERUP, 1, "intruder"), ("1.2.3.4", 525), c.hw(f)) == []
    assert node.counters["ignored"] == before + 1
    out = node.command("election", None, c.hw(f))
    assert node.state is State.CANDIDATE
    assert any(isinstance(a, Broadcast) and a.msg.type == MsgType.ELECTION for a in out)
    node.handle_send_error("n1", 0.0)
    assert node.counters["send_errors"] == 1


def test_startup_actions_come_from_first_timer():
    c = NodeConfig("n1", peers=(Peer("n2", "x"),))
    node = Node(c, SoftwareClock(), random.Random(1), 100.0)
    assert node.next_deadline() == 100.0
    out = node.handle_timer(100.0)
    assert any(isinstance(a, Broadcast) and a.msg.type == MsgType.MASTERREQ for a in out)
    assert node.next_deadline() > 100.0


def test_purged_follower_rejoins_on_masterup():
    c = Cluster([0.0, 0.0, 0.0], purge_after_missed=2)
    c.run_until(25.0)
    m = c.master()
    victim = next(n for n in c.nodes if n != m)
    mute = [True]
    c.drop = lambda src, dst, msg: mute[0] and src == victim and msg.type == MsgType.PROBE_REPLY
    c.run_until(50.0)
    assert [p["peer"] for p in c.events("purge", m)] == [victim]
    assert c.nodes[victim].state is State.FOLLOWER      # MASTERUP kept it from standing
    mute[0] = False
    n_adj = len(c.events("adjust", victim))
    c.run_until(75.0)
    assert [j["peer"] for j in c.events("join", m)][-1] == victim
    assert victim in c.nodes[m].followers
    assert len(c.events("adjust", victim)) > n_adj
    assert c.master() == m


# --- master heartbeat (issue 12) ----------------------------------------------------

def _candidacies(c: Cluster, since: float) -> list[tuple[float, str]]:
    return [(t, n) for t, n, l in c.logs
            if t >= since and l.event == "election" and l.fields["phase"] == "candidate"]


def test_master_heartbeats_every_follower_between_rounds():
    c = Cluster([0.0, 0.0, 0.0])
    sent: list[tuple[float, str, str]] = []

    def count(src, dst, msg):
        if msg.type == MsgType.HEARTBEAT:
            sent.append((c.t, src, dst))
        return False

    c.drop = count
    c.run_until(30.0)
    m = c.master()
    cfg = c.nodes[m].cfg
    window = [(t, s, d) for t, s, d in sent if 20.0 <= t < 30.0]
    assert {s for _, s, _ in window} == {m}
    for f in set(c.nodes) - {m}:
        n = sum(1 for _, _, d in window if d == f)
        assert abs(n - 10.0 / cfg.heartbeat_interval_s) <= 1
    # the follower's loss timer runs from the last heartbeat, not from the last round
    f = next(n for n in c.nodes if n != m)
    assert c.nodes[f].next_deadline() - c.hw(f) <= cfg.master_timeout_max_s


def test_without_heartbeats_followers_would_stand_between_rounds():
    # Dropping every HEARTBEAT leaves 10 s of silence between rounds: the followers'
    # timers fire, the candidacies meet a live master (MASTERACK) and end; no new master.
    c = Cluster([0.0, 0.0, 0.0])
    c.run_until(20.0)
    m = c.master()
    c.drop = lambda src, dst, msg: msg.type == MsgType.HEARTBEAT
    c.run_until(60.0)
    assert _candidacies(c, 20.0)
    assert c.master() == m


def test_one_lost_heartbeat_in_two_never_starts_a_candidacy():
    # The timeout spans >= 3 heartbeat intervals: with every other heartbeat lost the
    # longest silence is 2 intervals.
    c = Cluster([0.0, 0.0, 0.0, 0.0])
    c.run_until(20.0)
    m = c.master()
    n = {"k": 0}

    def every_other(src, dst, msg):
        if msg.type == MsgType.HEARTBEAT:
            n["k"] += 1
            return n["k"] % 2 == 0
        return False

    c.drop = every_other
    c.run_until(80.0)
    assert not _candidacies(c, 20.0)
    assert c.master() == m


def test_killed_master_replaced_within_heartbeat_bound():
    c = Cluster([0.0, 0.0, 0.0, 0.0, 0.0])
    c.run_until(25.0)
    m = c.master()
    c.down.add(m)
    kill_t = c.t
    c.run_until(kill_t + 5.0)
    new = c.master()
    assert new != m
    t_new = min(t for t, n, l in c.logs if t > kill_t and n == new and l.event == "state"
                and l.fields["to"] == "LEADER")
    cfg = c.nodes[new].cfg
    rw = cfg.answer_delay_max_s + 2 * cfg.probe_timeout_s
    assert t_new - kill_t <= cfg.heartbeat_interval_s + cfg.master_timeout_max_s + rw + 0.01


def _follower_of(master: str) -> Node:
    peers = (Peer(master, "10.0.0.2"), Peer("n3", "10.0.0.3"))
    node = Node(NodeConfig("n1", peers=peers), SoftwareClock(), random.Random(4), 0.0)
    node.handle_timer(0.0)                                   # startup MASTERREQ
    node.handle_message(Message(MsgType.MASTERACK, 1, master), ("10.0.0.2", 525), 0.01)
    assert node.state is State.FOLLOWER and node.master == master
    return node


def test_passive_and_handle_passive_match_handle_message():
    # The simulator's held heartbeats (sim/engine.py) rely on this contract.
    hb = [Message(MsgType.HEARTBEAT, 10 + i, "n2") for i in range(4)]
    a, b = _follower_of("n2"), _follower_of("n2")
    assert all(a.passive(m) for m in hb)
    assert not a.passive(Message(MsgType.HEARTBEAT, 9, "n3"))            # not our master
    assert not a.passive(Message(MsgType.PROBE, 9, "n2", t1_ns=1))         # answered
    before = a.next_deadline()
    for i, m in enumerate(hb):
        assert a.handle_message(m, ("10.0.0.2", 525), 0.2 + 0.2 * i) == []
    b.handle_passive(hb[-1], 0.2 + 0.2 * 3, count=len(hb))
    assert a.next_deadline() == b.next_deadline() > before
    assert a.counters == b.counters and a.election.last_from_master == b.election.last_from_master
    with pytest.raises(ValueError, match="not passive"):
        b.handle_passive(Message(MsgType.HEARTBEAT, 20, "n3"), 1.0)
    assert b.counters == a.counters                                        # refused: nothing changed
