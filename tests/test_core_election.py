"""Gusella-Zatti election: every table edge exercised, every state reachable, tie-breaks."""

from __future__ import annotations

import itertools
import random

import pytest

from tempod.actions import Broadcast, Log, Send
from tempod.election import TRANSITIONS, Election, Ev, State, beats, diagram
from tempod.nodeconfig import NodeConfig, Peer
from tempod.wire import MsgType

PEERS = (Peer("n2", "10.0.0.2"), Peer("n3", "10.0.0.3"))


def cfg(**kw) -> NodeConfig:
    return NodeConfig("n1", peers=PEERS, **kw)


def make(c: NodeConfig | None = None, rank: int = 0) -> Election:
    seq = itertools.count()
    return Election(c or cfg(), random.Random(7), 0.0, lambda: next(seq) % 65536, lambda now: rank)


def sends(actions, mtype=None):
    return [a for a in actions if isinstance(a, (Send, Broadcast))
            and (mtype is None or a.msg.type == mtype)]


# Canonical ways to bring a fresh Election (at t=0) into each state; n2 plays the
# master / candidate, n3 "the other one".  Each returns the time reached.
def reach(e: Election, state: State) -> float:
    rw = e.reply_wait_s
    if state is State.START:
        return 0.0
    if state is State.NOLEADER:
        e.on_timer(rw + 1e-6)
        return rw + 1e-6
    if state is State.ACCEPT:
        e.on_message(Ev.ELECTION, "n2", 0.01)
        return 0.01
    if state is State.CANDIDATE:
        e.force(0.01)
        return 0.01
    if state is State.LEADER:
        e.force(0.01)
        e.on_timer(0.02 + rw)
        return 0.02 + rw
    if state is State.FOLLOWER:
        e.on_message(Ev.MASTERACK, "n2", 0.01)
        return 0.01
    if state is State.CONSISTENCY:
        e.on_message(Ev.MASTERACK, "n2", 0.01)
        e.on_message(Ev.ROUND, "n3", 0.02)
        return 0.02
    if state is State.CONFLICT:
        reach(e, State.LEADER)
        e.on_message(Ev.MASTERUP, "n3", 1.0)
        return 1.0
    raise AssertionError(state)


def test_every_table_edge_is_taken_and_every_state_reachable():
    declared = {(s, ev, d) for (s, ev), tr in TRANSITIONS.items() for d in tr.targets}
    seen: set[tuple[State, Ev, State]] = set()
    reached: set[State] = {State.START}
    contexts = itertools.product(["n0", "n2", "n3"], [0, 99], [0.001, 30.0], [True, False], [False, True])
    for (state, ev), (peer, rank, dt, eligible, prep) in itertools.product(TRANSITIONS, list(contexts)):
        e = make(cfg(master_eligible=eligible))
        t = reach(e, state)
        if e.state is not state:
            continue            # this context cannot reach `state` (e.g. ineligible LEADER)
        if prep and state is State.CONFLICT:
            e.on_message(Ev.MASTERACK, "n3", t, rank=99)   # a stronger contender answered
        out = e.dispatch(ev, e.name if ev in (Ev.TIMEOUT, Ev.ANSWER_DUE, Ev.RESEND, Ev.TEST) else peer,
                         t + dt, rank=rank)
        seen.add((state, ev, e.state))
        reached.add(e.state)
        if e.state is not state:
            logs = [a for a in out if isinstance(a, Log) and a.event == "state"]
            assert logs and logs[0].fields["from"] == state.value and logs[0].fields["to"] == e.state.value
            assert logs[0].fields["cause"]
    assert reached == set(State), f"unreached: {set(State) - reached}"
    missing = declared - seen
    assert not missing, f"declared transitions never taken: {sorted((a.value, b.value, c.value) for a, b, c in missing)}"


def test_start_broadcasts_masterreq_and_times_out():
    e = make()
    assert [a.msg.type for a in e.startup_actions] == [MsgType.MASTERREQ]
    assert e.next_deadline() == pytest.approx(e.reply_wait_s)
    e.on_timer(e.reply_wait_s)
    assert e.state is State.NOLEADER
    c = e.cfg
    assert c.election_timeout_min_s <= e.next_deadline() - e.reply_wait_s <= c.election_timeout_max_s


def test_candidate_wins_without_refuse_and_loses_on_refuse():
    e = make()
    out = e.force(1.0)
    assert e.state is State.CANDIDATE and sends(out, MsgType.ELECTION)
    e.on_message(Ev.ACCEPT, "n2", 1.01)
    out = e.on_timer(1.0 + e.reply_wait_s)
    assert e.state is State.LEADER and e.master == "n1" and e.votes == {"n2"}
    assert sends(out, MsgType.MASTERUP)
    e2 = make()
    e2.force(1.0)
    e2.on_message(Ev.REFUSE, "n3", 1.01)
    assert e2.state is State.NOLEADER


def test_voter_answers_after_random_delay_and_refuses_second_candidate():
    e = make()
    e.on_message(Ev.ELECTION, "n2", 1.0)
    assert e.state is State.ACCEPT
    due = e.next_deadline()
    assert 1.0 <= due <= 1.0 + e.cfg.answer_delay_max_s
    out = e.on_timer(due)
    assert [(a.to, a.msg.type) for a in sends(out)] == [("n2", MsgType.ACCEPT)]
    out = e.on_message(Ev.ELECTION, "n3", due + 0.1)
    assert [(a.to, a.msg.type) for a in sends(out)] == [("n3", MsgType.REFUSE)]


def test_follower_detects_master_loss_after_master_timeout_not_round_interval():
    e = make()
    e.on_message(Ev.MASTERACK, "n2", 0.0)
    c = e.cfg
    d = e.next_deadline()
    assert c.master_timeout_min_s <= d <= c.master_timeout_max_s < c.round_interval_s
    e.on_message(Ev.ROUND, "n2", 0.5)          # a HEARTBEAT (or a round message) refreshes it
    assert e.next_deadline() == pytest.approx(d + 0.5)
    out = e.on_timer(e.next_deadline())
    assert e.state is State.CANDIDATE
    assert [a.msg.type for a in sends(out)] == [MsgType.ELECTION]


def test_heartbeat_is_a_master_message_of_the_table():
    from tempod.election import EVENT_OF_TYPE
    assert EVENT_OF_TYPE[MsgType.HEARTBEAT] is Ev.ROUND
    e = make()
    e.on_message(Ev.ROUND, "n2", 0.0)          # START hears a heartbeat: joins its sender
    assert e.state is State.FOLLOWER and e.master == "n2"


def test_follower_refuses_candidate_while_master_alive():
    e = make()
    e.on_message(Ev.MASTERACK, "n2", 0.0)
    w = e.cfg.master_timeout_min_s
    out = e.on_message(Ev.ELECTION, "n3", 0.9 * w)
    assert e.state is State.FOLLOWER and sends(out, MsgType.REFUSE)
    e.on_message(Ev.ROUND, "n2", w)            # heartbeat
    out = e.on_message(Ev.ELECTION, "n3", w + 0.9 * w)
    assert e.state is State.FOLLOWER and sends(out, MsgType.REFUSE)
    out = e.on_message(Ev.ELECTION, "n3", w + 1.01 * w)   # master silent for > min: vote
    assert e.state is State.ACCEPT


def test_candidate_sends_election_copies_within_reply_wait():
    from tempod.election import ELECTION_COPIES
    e = make()
    out = e.force(0.0)
    copies = [a for a in sends(out, MsgType.ELECTION)]
    t = 0.0
    while e.state is State.CANDIDATE:
        t = e.next_deadline()
        out = e.on_timer(t)
        copies += sends(out, MsgType.ELECTION)
    assert len(copies) == ELECTION_COPIES
    assert e.state is State.LEADER and t == pytest.approx(e.reply_wait_s)


def test_one_answer_to_any_copy_ends_a_spurious_candidacy():
    # The master answers only the last copy (the first two or their answers were lost).
    e = make()
    e.on_message(Ev.MASTERACK, "n2", 0.0)
    e.on_timer(e.next_deadline())
    assert e.state is State.CANDIDATE
    t = e.next_deadline()
    e.on_timer(t)
    t = e.next_deadline()
    e.on_timer(t)                              # third copy out
    e.on_message(Ev.MASTERACK, "n2", t + 0.001)
    assert e.state is State.FOLLOWER and e.master == "n2"
    # ... or a follower that heard the master refuses: lost, and the next heartbeat rejoins.
    e2 = make()
    e2.on_message(Ev.MASTERACK, "n2", 0.0)
    e2.on_timer(e2.next_deadline())
    t = e2.next_deadline()
    e2.on_timer(t)
    e2.on_message(Ev.REFUSE, "n3", t + 0.001)
    assert e2.state is State.NOLEADER
    e2.on_message(Ev.ROUND, "n2", t + 0.2)
    assert e2.state is State.FOLLOWER and e2.master == "n2"


def test_master_timeout_must_span_three_heartbeats():
    with pytest.raises(ValueError, match="master_timeout_min_s"):
        cfg(heartbeat_interval_s=0.3, master_timeout_min_s=0.6, master_timeout_max_s=1.2)
    with pytest.raises(ValueError, match="master_timeout_max_s"):
        cfg(master_timeout_min_s=0.8, master_timeout_max_s=0.7)
    with pytest.raises(ValueError, match="heartbeat_interval_s"):
        cfg(round_interval_s=1.0, heartbeat_interval_s=2.0, master_timeout_min_s=6.0,
            master_timeout_max_s=6.0)
    cfg(heartbeat_interval_s=0.2, master_timeout_min_s=0.6, master_timeout_max_s=0.6)


def test_consistency_sends_conflict_to_own_master():
    e = make()
    e.on_message(Ev.MASTERACK, "n2", 0.0)
    out = e.on_message(Ev.MASTERUP, "n3", 1.0)
    assert e.state is State.CONSISTENCY
    (s,) = sends(out, MsgType.CONFLICT)
    assert s.to == "n2" and s.msg.target == "n3"
    e.on_message(Ev.ROUND, "n2", 1.1)
    assert e.state is State.FOLLOWER and e.master == "n2"


def _leader(rank: int, name: str = "n1") -> Election:
    seq = itertools.count()
    e = Election(NodeConfig(name, peers=tuple(p for p in (Peer("n1", "a"),) + PEERS if p.name != name)),
                 random.Random(1), 0.0, lambda: next(seq), lambda now: rank)
    reach(e, State.LEADER)
    return e


def test_returning_master_with_no_live_followers_steps_down():
    old = _leader(rank=0, name="n1")       # paused: heard nobody, and the lower name
    new = _leader(rank=2, name="n2")
    out = new.on_message(Ev.CONFLICT, "n3", 5.0, target="n1")   # a follower saw n1's probe
    assert new.state is State.CONFLICT
    (res,) = sends(out, MsgType.RESOLVE)
    out = old.on_message(Ev.RESOLVE, "n2", 5.001, rank=res.msg.data["live"])
    (ack,) = sends(out, MsgType.MASTERACK)
    assert ack.msg.data["live"] == 0 and old.state is State.LEADER
    new.on_message(Ev.MASTERACK, "n1", 5.002, rank=0)
    out = new.on_timer(5.0 + new.reply_wait_s)
    (quit_,) = sends(out, MsgType.QUIT)
    assert quit_.to == "n1" and new.state is State.LEADER
    assert sends(out, MsgType.MASTERUP)
    out = old.on_message(Ev.QUIT, "n2", 5.5, rank=quit_.msg.data["live"])
    assert old.state is State.FOLLOWER and old.master == "n2"
    assert sends(out, MsgType.SLAVEUP)


def test_simultaneous_conflict_same_winner_on_both_sides():
    a, b = _leader(rank=3, name="n1"), _leader(rank=3, name="n2")
    a.on_message(Ev.MASTERUP, "n2", 5.0)
    b.on_message(Ev.MASTERUP, "n1", 5.0)
    assert a.state is b.state is State.CONFLICT
    a.on_message(Ev.RESOLVE, "n2", 5.01, rank=3)
    b.on_message(Ev.RESOLVE, "n1", 5.01, rank=3)
    oa = a.on_timer(6.0)
    ob = b.on_timer(6.0)
    # equal rank: the lower name (n1) wins on both sides
    assert a.state is State.LEADER and sends(oa, MsgType.QUIT)
    assert b.state is State.FOLLOWER and b.master == "n1"
    b2 = _leader(rank=3, name="n2")
    b2.on_message(Ev.MASTERUP, "n1", 5.0)
    b2.on_message(Ev.QUIT, "n1", 5.1, rank=3)     # a QUIT from the winner is obeyed in CONFLICT
    assert b2.state is State.FOLLOWER
    a2 = _leader(rank=3, name="n1")
    a2.on_message(Ev.MASTERUP, "n2", 5.0)
    a2.on_message(Ev.QUIT, "n2", 5.1, rank=3)     # ...and one from the loser is not
    assert a2.state is State.CONFLICT
    assert beats(3, "n1", 3, "n2") and beats(4, "n9", 3, "n1") and not beats(0, "n1", 1, "n2")


def test_ineligible_never_candidate():
    e = make(cfg(master_eligible=False))
    e.force(0.0)
    assert e.state is State.START
    e.on_timer(e.reply_wait_s)
    assert e.state is State.NOLEADER
    out = e.on_timer(e.next_deadline())
    assert e.state is State.START and sends(out, MsgType.MASTERREQ)   # asks again instead


def test_trusted_hosts_only():
    e = make(cfg(trusted=("n2",)))
    out = e.on_message(Ev.ELECTION, "n3", 0.0)
    assert e.state is State.START and sends(out, MsgType.REFUSE)
    e.on_message(Ev.MASTERUP, "n3", 0.01)
    assert e.state is State.START
    e.on_message(Ev.MASTERUP, "n2", 0.02)
    assert e.state is State.FOLLOWER and e.master == "n2"


def test_diagram_has_every_state_and_formats():
    m = diagram("mermaid")
    assert m.startswith("stateDiagram-v2")
    for s in State:
        assert s.value in m
    assert "CONFLICT --> FOLLOWER" in m and "LEADER --> CONFLICT" in m
    assert diagram("dot").startswith("digraph election")
    with pytest.raises(ValueError):
        diagram("svg")


def test_docs_embed_the_current_diagram(repo):
    text = (repo / "docs" / "core.md").read_text()
    assert "```mermaid\n" + diagram("mermaid") + "```" in text, \
        "docs/core.md is stale: paste the output of tempod.election.diagram()"
