"""reliability: sequence wrap, retransmission backoff and expiry, duplicate filter."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from tempod.reliability import DuplicateFilter, Outbox, SeqCounter, seq_newer
from tempod.wire import Message, MsgType


def msg(seq: int, t: MsgType = MsgType.SETTIME) -> Message:
    return Message(t, seq, "m", time_ns=0)


def test_seq_counter_wraps():
    c = SeqCounter(65534)
    assert [c.next() for _ in range(4)] == [65534, 65535, 0, 1]
    assert c.peek() == 2


@pytest.mark.parametrize("bad", [-1, 65536, 1.0])
def test_seq_counter_rejects_bad_start(bad):
    with pytest.raises(ValueError):
        SeqCounter(bad)


@given(st.integers(0, 65535), st.integers(1, 32767))
def test_seq_newer_across_wrap(a, step):
    b = (a + step) % 65536
    assert seq_newer(b, a) and not seq_newer(a, b)
    assert not seq_newer(a, a)


def drive(box: Outbox, until: float) -> list[tuple[float, int]]:
    """Run the timer loop as a runtime would; returns (time, attempt) of each resend."""
    sent = []
    while (d := box.next_deadline()) is not None and d <= until:
        sent += [(d, attempt) for _, _, attempt in box.due(d)]
    return sent


def test_backoff_schedule_and_expiry():
    box = Outbox(retransmit_initial_s=0.05, max_tries=4)
    box.track("n2", msg(1), now=100.0)
    sent = drive(box, until=200.0)
    assert [a for _, a in sent] == [2, 3, 4]
    assert [t - 100.0 for t, _ in sent] == pytest.approx([0.05, 0.15, 0.35])
    [exp] = box.expired()
    assert (exp.to, exp.msg.seq, exp.attempts, exp.first_sent_s) == ("n2", 1, 4, 100.0)
    assert box.expired() == [] and len(box) == 0 and box.next_deadline() is None


def test_expiry_time_is_after_last_wait():
    box = Outbox(0.05, 4)
    box.track("n2", msg(1), 0.0)
    for t in (0.05, 0.15, 0.35):
        assert box.next_deadline() == pytest.approx(t)
        assert box.due(t - 1e-6) == []
        assert len(box.due(t + 1e-9)) == 1
    assert box.next_deadline() == pytest.approx(0.75)
    assert box.due(0.7499) == [] and box.expired() == []
    assert box.due(0.7501) == [] and len(box.expired()) == 1


def test_single_try_never_retransmits():
    box = Outbox(1.0, 1)
    box.track("n2", msg(1), 0.0)
    assert drive(box, 10.0) == []
    assert len(box.expired()) == 1


def test_ack_stops_retransmission():
    box = Outbox(0.05, 4)
    box.track("n2", msg(1), 0.0)
    box.track("n3", msg(1), 0.0)
    assert box.due(0.05) and box.ack("n2", 1)
    assert not box.ack("n2", 1)          # second ACK: nothing pending
    assert not box.ack("n9", 1)          # wrong peer
    sent = box.due(10.0)
    assert [(to, a) for to, _, a in sent] == [("n3", 3)]


def test_late_timer_does_not_schedule_into_the_past():
    box = Outbox(0.05, 3)
    box.track("n2", msg(1), 0.0)
    assert [a for _, _, a in box.due(5.0)] == [2]     # very late: one resend, not a burst
    assert box.due(5.0) == []
    assert box.next_deadline() == pytest.approx(5.1)  # the 2nd wait (0.1 s) starts at the resend


def test_duplicate_track_and_bad_config():
    box = Outbox(0.05, 4)
    box.track("n2", msg(1), 0.0)
    with pytest.raises(ValueError, match="already"):
        box.track("n2", msg(1), 0.0)
    with pytest.raises(ValueError):
        Outbox(0.0, 4)
    with pytest.raises(ValueError):
        Outbox(0.1, 0)


def test_cancel_peer():
    box = Outbox(0.05, 4)
    for s in range(3):
        box.track("n2", msg(s), 0.0)
    box.track("n3", msg(0), 0.0)
    assert box.pending("n2") == 3 and box.cancel_peer("n2") == 3
    assert box.pending() == 1 and [to for to, _, _ in box.due(0.05)] == ["n3"]


def test_outbox_seq_wrap_keys_are_independent():
    box = Outbox(0.05, 2)
    box.track("n2", msg(65535), 0.0)
    box.track("n2", msg(0), 0.0)
    assert box.ack("n2", 0) and box.pending() == 1


def test_duplicate_filter_basic():
    f = DuplicateFilter(per_sender=4, max_senders=2, ttl_s=10.0)
    assert not f.check("a", 5, 1, 0.0)
    assert f.check("a", 5, 1, 0.1)        # retransmission
    assert not f.check("a", 6, 1, 0.1)    # same seq, other type
    assert not f.check("b", 5, 1, 0.1)    # other sender
    assert f.is_duplicate(Message(MsgType.SETTIME, 1, "a", time_ns=0), 0.2)


def test_duplicate_filter_ttl_and_bounds():
    f = DuplicateFilter(per_sender=3, max_senders=2, ttl_s=1.0)
    assert not f.check("a", 1, 1, 0.0)
    assert not f.check("a", 1, 1, 1.5)    # older than ttl: forgotten
    for s in range(2, 6):
        f.check("a", 1, s, 2.0)
    assert len(f) == 3                    # per-sender bound
    assert not f.check("a", 1, 2, 2.0)    # evicted as oldest
    f.check("b", 1, 1, 2.0)
    f.check("c", 1, 1, 2.0)               # third sender evicts least recent ("a")
    assert not f.check("a", 1, 5, 2.0)
    f.forget("c")
    assert not f.check("c", 1, 1, 2.0)


@given(st.lists(st.tuples(st.sampled_from(["track", "ack", "tick"]), st.integers(0, 5),
                          st.floats(0, 0.5)), max_size=60),
       st.floats(0.01, 0.2), st.integers(1, 5))
def test_outbox_every_message_is_acked_or_expired_exactly_once(ops, initial, tries):
    box = Outbox(initial, tries)
    now = 0.0
    tracked: set[tuple[str, int]] = set()
    acked: set[tuple[str, int]] = set()
    sends: dict[tuple[str, int], list[float]] = {}
    expired: list[tuple[str, int]] = []
    next_seq = 0
    for op, peer_i, dt in ops:
        now += dt
        peer = f"n{peer_i}"
        if op == "track":
            key = (peer, next_seq)
            box.track(peer, msg(next_seq), now)
            tracked.add(key)
            sends[key] = [now]
            next_seq += 1
        elif op == "ack":
            mine = sorted(k for k in tracked - acked - set(expired) if k[0] == peer)
            if mine:
                assert box.ack(*mine[0])
                acked.add(mine[0])
        # the runtime's timer loop, driven up to `now`
        while (d := box.next_deadline()) is not None and d <= now:
            for to, m, attempt in box.due(d):
                key = (to, m.seq)
                assert key not in acked
                sends[key].append(d)
                assert attempt == len(sends[key]) <= tries
            expired += [(e.to, e.msg.seq) for e in box.expired()]
    assert len(expired) == len(set(expired))
    assert not set(expired) & acked
    assert len(box) == len(tracked) - len(acked) - len(expired)
    for key in expired:
        assert len(sends[key]) == tries
        gaps = [b - a for a, b in zip(sends[key], sends[key][1:])]
        assert gaps == pytest.approx([initial * 2**i for i in range(tries - 1)])
