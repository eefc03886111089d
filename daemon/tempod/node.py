"""The node core: election + Berkeley rounds + reliability, events in, actions out.

``Node`` glues ``election`` (who is master), ``berkeley`` (round maths),
``reliability`` (sequence numbers, ACK/retransmit, duplicate filter) and a software
clock (``discipline.SoftwareClock`` or anything with the same four methods).  It never
touches sockets, files or real clocks: ``now`` is always the node's *hardware* clock in
seconds, every deadline is in that time base, and the runtime (``runtime.py``) or the
simulator (``sim/``) carries out the returned actions.

Round (master side), bounded in time whatever the followers do:

1. At ``round_start`` send MASTERUP to configured peers that are not followers (how
   late joiners and a second master after a partition find us), and PROBE #1 to every
   follower.  Each follower's probes form a chain: a reply (matched by its echoed t1)
   triggers the next probe at once, so with a fast network a round takes a few RTTs.
2. Every ``probe_timeout_s`` a slot timer re-probes followers whose outstanding probe
   is older than ``probe_timeout_s`` (lost).  After ``probes_per_round`` probes per
   follower, or at the hard end ``round_start + (probes_per_round + 1) *
   probe_timeout_s``, the round closes with what it has.
3. Close: min-RTT sample per follower (``berkeley.best_sample``), fault-tolerant
   average with the master at 0, ADJTIME (relative) or SETTIME (absolute) to each
   sampled follower -- tracked in the Outbox, ACKed, retransmitted with backoff -- and
   the master applies its own correction (``average``).  Followers without a sample
   get ``missed += 1`` and are purged after ``purge_after_missed``.
4. Next round at ``round_start + round_interval_s``.

Heartbeat (master side), independent of rounds: while LEADER or CONFLICT the master
sends HEARTBEAT (a header-only TSP message, authenticated like every other) to each
follower every ``heartbeat_interval_s``, the first one as soon as it leads.  A
follower treats it like any message of its master's rounds: it refreshes the
master-loss timer (``Election.heard_master``).  Nothing answers a heartbeat.  One
fan-out is one message with one sequence number (a multicast done as unicasts, like
``Broadcast``): nothing ACKs or de-duplicates a heartbeat, and a number per follower
made a 1,000-node master use up its u16 sequence space every ~12 s, inside the 30 s
in which a follower's duplicate filter remembers the number of an ADJTIME.

SETTIME carries two things: ``time_ns`` = ``master clk at send + average + rtt/2`` (the
absolute target at receipt, TSP's meaning, what tshark shows) and ``data.corr_ns`` =
``average - offset``, the same correction relative to the follower's own clock reading
in the best probe exchange.  A follower applies the relative one when present: the
absolute target is wrong by however long the SETTIME spent between the master's clock
read and the follower's (scheduling on a loaded host: 14 ms measured in the lab, which
then taught the frequency loop a bogus 14,000 ppm), while the relative one is wrong
only by the follower's rate error times that time (100 ppm x 14 ms = 1.4 us).

Every correction carries its error bound ``data.bound_s`` (half the RTT of the sample):
the follower reports it as NTP root dispersion and passes it to the frequency loop,
which weights what it learns by it (discipline.py).

"Synchronized since start": a node's clock counts as synchronized once it has applied
one correction from a master that is not a hold (or completed one round as master) in
this incarnation.
Before that a FOLLOWER's clock is still its raw hardware clock -- after a restart that
may be hundreds of ms off -- so ``clock_synced`` is False and the NTP responder says
"unsynchronized" (docs/architecture.md, NTP state encoding).

Follower side: PROBE from the current master -> PROBE_REPLY with t2 = t3 = corrected
clock at ``now`` (the core has no hold time); ADJTIME -> ``clock.adjust``; SETTIME ->
``clock.set_time`` on joining, but ``clock.adjust(target - clk)`` when it comes from the
master that corrected us within the last two rounds (so the frequency loop learns from
it: with rates 10% apart a follower drifts past settime_threshold_s every round, and
set_time alone would never converge); both ACKed with the same seq; a retransmitted duplicate is ACKed
again but not applied twice.

Hot paths (PROBE, PROBE_REPLY, ACK, and ADJTIME/SETTIME from our own master) skip the
election's table dispatch and call ``Election.heard_master`` directly, which does
exactly what the table's FOLLOWER/ROUND-from-our-master entry does; at 1,000 nodes the
master's round fan-out is the simulator's cost.

The constructor cannot return actions, so the startup MASTERREQ is queued and
``next_deadline()`` returns the construction time: the runtime's first ``handle_timer``
sends it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

from . import __version__
from .actions import Action, Broadcast, Log, Reply, Send
from .berkeley import SETTIME, Sample, best_sample, corrections, fault_tolerant_average, probe_sample
from .clocks import Discipline  # the software-clock interface (SoftwareClock, KernelDiscipline)
from .discipline import HOLD, clock_status
from .election import EVENT_OF_TYPE, Election, State
from .nodeconfig import NodeConfig
from .reliability import DuplicateFilter, Outbox, SeqCounter
from .wire import Message, MsgType

NS = 1_000_000_000
_CONTROL = frozenset({MsgType.STATUS_REQ, MsgType.MSITEREQ, MsgType.MSITE, MsgType.TEST,
                      MsgType.TRACEON, MsgType.TRACEOFF})
_PROBE, _PROBE_REPLY, _ACK = MsgType.PROBE, MsgType.PROBE_REPLY, MsgType.ACK
_ADJTIME, _SETTIME = MsgType.ADJTIME, MsgType.SETTIME
_HEARTBEAT = MsgType.HEARTBEAT
_FOLLOWER_JOIN = frozenset({MsgType.SLAVEUP, MsgType.MASTERREQ, MsgType.ACCEPT, MsgType.ELECTION})
_REJOIN = frozenset({MsgType.SLAVEUP, MsgType.MASTERREQ})   # a (re)started follower announcing itself
# The only message types ``Node.passive`` can be true for: a caller asks only about these.
PASSIVE_TYPES = frozenset({MsgType.HEARTBEAT})


@dataclass(slots=True)
class FollowerInfo:
    """What the master knows about one follower."""
    name: str
    joined: bool = True             # new since its last correction: next one is SETTIME
    missed: int = 0                 # consecutive rounds without a sample
    last_heard: float = 0.0         # hw s of the last message from it
    offset_s: float | None = None   # last round's best sample (follower - master)
    bound_s: float | None = None
    rtt_s: float | None = None
    in_group: bool = False
    # per-round probing state
    samples: list[Sample] = field(default_factory=list)
    sent: int = 0                   # probes sent this round
    out_t1_ns: int | None = None    # outstanding probe's t1
    out_hw: float = 0.0             # hw s the outstanding probe left
    done: bool = False


@dataclass(slots=True)
class RoundState:
    number: int
    start_hw: float
    start_clk_ns: int               # t1 of the round's first probe: older replies are stale
    next_slot: float
    end_hw: float
    pending: int                    # followers still probing


def _ns(s: float) -> int:
    return int(round(s * NS))


def _data_bound(msg: Message) -> float:
    """The error bound a correction carries (``data.bound_s``, s); 0.0 when absent or bad."""
    if msg.data is None:
        return 0.0
    b = msg.data.get("bound_s")
    if isinstance(b, (int, float)) and not isinstance(b, bool) and b >= 0.0 and b == b and b != float("inf"):
        return float(b)
    return 0.0


class Node:
    """One Tempo node's protocol core (see the module docstring)."""

    def __init__(self, config: NodeConfig, clock: Discipline, rng: random.Random, now: float) -> None:
        self.cfg = config
        self.name = config.name
        self.clock = clock
        self.rng = rng
        self.start_hw = now
        self.peer_names: tuple[str, ...] = config.peer_names
        self._peer_set = frozenset(self.peer_names)
        self.addresses = {p.name: p.address for p in config.peers}
        self.seq = SeqCounter(rng.randrange(1 << 16))
        self.outbox = Outbox(config.retransmit_initial_s, config.retransmit_max_tries)
        self.dups = DuplicateFilter(max_senders=len(self.peer_names) + 16)
        self.counters: dict[str, int] = {k: 0 for k in (
            "rx", "tx", "malformed", "bad_auth", "replayed", "send_errors", "retransmits",
            "duplicates", "ignored", "expired")}
        self.trace = False
        self.followers: dict[str, FollowerInfo] = {}
        self.round_no = 0
        self.round: RoundState | None = None
        self.next_round_at: float | None = None
        self.next_heartbeat_at: float | None = None   # master: next HEARTBEAT fan-out (hw s)
        self.rounds_completed = 0       # as master, since becoming master
        self.last_round: dict | None = None
        self.last_sync_hw: float | None = None   # follower: last correction applied
        self.last_sync_master: str | None = None
        self.last_bound_s: float = 0.0           # error bound of the last correction applied
        self.adjust_count = 0
        self.clock_synced = False                # applied a correction / ran a round since start
        self._settime_base: dict[tuple[str, int], float] = {}   # (to, seq) -> target - master clk (s)
        self.election = Election(config, rng, now, self.seq.next, self._live_followers)
        self._queued: list[Action] = list(self.election.startup_actions)
        self._queued_at = now

    # --- public API (docs/architecture.md) ------------------------------------------

    @property
    def state(self) -> State:
        return self.election.state

    @property
    def master(self) -> str | None:
        return self.election.master

    def next_deadline(self) -> float | None:
        if self._queued:
            return self._queued_at
        best = self.election.next_deadline()
        if self.round is None and self.next_round_at is None and not len(self.outbox):
            return best          # a follower's usual case: only the master-loss timer
        for d in (self.outbox.next_deadline(), self.next_round_at, self.next_heartbeat_at,
                  None if self.round is None else min(self.round.next_slot, self.round.end_hw)):
            if d is not None and (best is None or d < best):
                best = d
        return best

    def handle_timer(self, now: float) -> list[Action]:
        out: list[Action] = []
        if self._queued:
            out, self._queued = self._queued, []
        before = self.election.state
        out += self.election.on_timer(now)
        self._after_election(before, now, out)
        for to, msg, _attempt in self.outbox.due(now):
            self.counters["retransmits"] += 1
            if msg.type == MsgType.SETTIME:
                # SETTIME is absolute: a resend carries the target *now* (same seq, so a
                # follower that did get the first copy still drops it as a duplicate).
                base = self._settime_base.get((to, msg.seq))
                if base is not None:
                    msg = replace(msg, time_ns=_ns(self.clock.corrected(now) + base))
            out.append(Send(to, msg))
        expired = self.outbox.expired()
        if expired:
            self.counters["expired"] += len(expired)
        if self.round is not None:
            if now >= self.round.end_hw:
                self._finish_round(now, out)
            elif now >= self.round.next_slot:
                self._probe_slot(now, out)
        if self.round is None and self.next_round_at is not None and now >= self.next_round_at:
            self._start_round(now, out)
        if self.next_heartbeat_at is not None and now >= self.next_heartbeat_at:
            self._heartbeat(now, out)
        self._count_tx(out)
        return out

    def _heartbeat(self, now: float, out: list[Action]) -> None:
        # No catching up after a stall (a paused master): the next one is an interval on.
        self.next_heartbeat_at = now + self.cfg.heartbeat_interval_s
        msg = Message(_HEARTBEAT, self.seq.next(), self.name)   # one number per fan-out
        out.extend([Send(f, msg) for f in self.followers])

    def passive(self, msg: Message) -> bool:
        """True if ``handle_message(msg, ...)`` would now return no actions and change
        nothing but the ``rx`` counter and the master-loss deadline, which it sets to
        ``now + timeout`` (so, for a ``now`` no earlier than the last one, ``next_deadline()``
        does not decrease): a HEARTBEAT from our own master while FOLLOWER.

        It depends only on ``msg.type``, ``msg.name`` and this node's state, and handling a
        passive message keeps it true, so it stays true until the node handles a
        message or timer that is not passive.  The simulator uses this to keep such
        deliveries (5 per follower per second with the default heartbeat) out of its
        event queue and hand them to ``handle_message`` in order just before the node's
        next other event (sim/engine.py).  Only types in ``PASSIVE_TYPES`` can be passive.
        """
        el = self.election
        return msg.type is _HEARTBEAT and el.state is State.FOLLOWER and el.master == msg.name

    def handle_passive(self, msg: Message, now: float, count: int = 1) -> None:
        """Handle a run of ``count`` passive messages received with nothing in between,
        the last one ``msg`` at hardware time ``now``: the same as ``handle_message`` for
        each in turn (each only overwrites the master-loss deadline, so the last one
        decides it), in one call.  The simulator hands over held heartbeats this way."""
        if not self.passive(msg):
            raise ValueError(f"{msg.type.name} from {msg.name} is not passive in state {self.state.value}")
        self.counters["rx"] += count
        self.election.heard_master(now)

    def handle_message(self, msg: Message, src: tuple[str, int], now: float,
                       rx_hw: float | None = None) -> list[Action]:
        """Handle one authenticated message at hardware time ``now``.

        ``rx_hw``: the hardware time the datagram *arrived* (the runtime's kernel receive
        timestamp), when known.  It is used only for the probe timestamps (a PROBE's t2,
        a PROBE_REPLY's t4), so the time the datagram waited for this process to be
        scheduled is not counted as network delay; every state change and clock
        correction happens at ``now``, so the corrected clock never runs backwards.
        """
        rx = now if rx_hw is None or rx_hw > now else rx_hw
        counters = self.counters
        counters["rx"] += 1
        t = msg.type
        peer = msg.name
        # Hot paths first, by identity (a round is 4 PROBE + 4 PROBE_REPLY + ADJTIME + ACK
        # per follower; the master's fan-out is the simulator's cost at 1,000 nodes).
        if t is _PROBE:
            el = self.election
            if el.state is State.FOLLOWER and el.master == peer:
                el.heard_master(now)        # == the table's FOLLOWER/ROUND from our master
                counters["tx"] += 1
                return [self._probe_answer(msg, peer, rx, now)]
        elif t is _HEARTBEAT:
            el = self.election
            if el.state is State.FOLLOWER and el.master == peer:
                el.heard_master(now)        # == the table's FOLLOWER/ROUND from our master
                return []
        elif t is _PROBE_REPLY:
            fi = self.followers.get(peer)
            if fi is None or self.round is None:
                return []
            fi.last_heard = now
            out: list[Action] = []
            self._probe_reply(fi, msg, now, out, rx)
            counters["tx"] += len(out)
            return out
        elif t is _ACK:
            fi = self.followers.get(peer)
            if fi is not None:
                fi.last_heard = now
            self.outbox.ack(peer, msg.seq)
            return []
        if t in _CONTROL:
            out = self._control(msg, src, now)
            self._count_tx(out)
            return out
        if peer not in self._peer_set:
            counters["ignored"] += 1     # not in [peers]: no say in the group
            return []
        out = []
        fi = self.followers.get(peer)
        if fi is not None:
            fi.last_heard = now
        if t is _ADJTIME or t is _SETTIME:
            if self.dups.check(peer, t, msg.seq, now):
                # A retransmission: our ACK was lost.  ACK again, do not apply twice.
                counters["duplicates"] += 1
                counters["tx"] += 1
                return [Send(peer, Message(_ACK, msg.seq, self.name))]
            el = self.election
            if el.state is State.FOLLOWER and el.master == peer:
                el.heard_master(now)        # == the table's FOLLOWER/ROUND from our master
                if msg.time_ns is not None:
                    self._apply(msg, peer, now, out)
                counters["tx"] += 1
                return out
        ev = EVENT_OF_TYPE.get(t)
        if ev is not None:
            before = self.election.state
            rank = 0
            if msg.data is not None:
                r = msg.data.get("live")
                if isinstance(r, int) and not isinstance(r, bool):
                    rank = r
            out += self.election.on_message(ev, peer, now, rank, msg.target)
            if self.election.state is not before:
                self._after_election(before, now, out)
        st = self.election.state
        if st is State.LEADER or st is State.CONFLICT:
            if t in _FOLLOWER_JOIN:
                self._add_follower(peer, now, out, rejoin=t in _REJOIN)
        elif st is State.FOLLOWER and self.election.master == peer:
            if t is _PROBE:
                out.append(self._probe_answer(msg, peer, rx, now))
            elif (t is _ADJTIME or t is _SETTIME) and msg.time_ns is not None:
                self._apply(msg, peer, now, out)
        self._count_tx(out)
        return out

    def restamp_probe(self, to: str, old_t1_ns: int, new_t1_ns: int) -> None:
        """The runtime re-stamped an outgoing PROBE's t1 just before ``sendto``.

        The core stamps t1 when it decides to probe; the datagram leaves later (HMAC,
        other sends of the same fan-out, scheduling), and that wait would count as
        network delay on the way out only -- an offset error of half of it.  The runtime
        replaces t1 by the corrected clock right before sending and tells the core here,
        so the reply (which echoes t1) still matches the outstanding probe.
        """
        fi = self.followers.get(to)
        if fi is not None and fi.out_t1_ns == old_t1_ns and new_t1_ns >= old_t1_ns:
            fi.out_t1_ns = new_t1_ns

    def handle_send_error(self, to: str, now: float) -> None:
        """The runtime could not send to ``to`` (e.g. EPERM from a firewall): count it."""
        self.counters["send_errors"] += 1

    def command(self, name: str, arg: str | None, now: float) -> list[Action]:
        """Local control: "election" (timedc's TSP_TEST), "trace_on", "trace_off", "msite"."""
        if name == "election":
            before = self.election.state
            out = self.election.force(now)
            self._after_election(before, now, out)
            self._count_tx(out)
            return out
        if name in ("trace_on", "trace_off"):
            self.trace = name == "trace_on"
            return [Log("trace", {"on": self.trace})]
        if name == "msite":
            return [Log("msite", {"master": self.election.master})]
        raise ValueError(f"unknown command {name!r} (election, trace_on, trace_off, msite)")

    def synchronized(self, now: float) -> bool:
        if self.election.state is State.LEADER:
            return self.rounds_completed > 0
        # clock_synced too, so that status and the NTP responder agree (a hold is not sync)
        return (self.election.state is State.FOLLOWER and self.clock_synced and self.last_sync_hw is not None
                and self.last_sync_master == self.election.master
                and now - self.last_sync_hw <= 2.0 * self.cfg.round_interval_s)

    def status(self, now: float) -> dict:
        clock = clock_status(self.clock, now)
        peers = []
        for p in self.cfg.peers:
            fi = self.followers.get(p.name)
            peers.append({"name": p.name, "address": p.address,
                          "offset_s": fi.offset_s if fi else None,
                          "bound_s": fi.bound_s if fi else None,
                          "missed": fi.missed if fi else None,
                          "in_group": fi.in_group if fi else False})
        counters = {k: self.counters[k] for k in (
            "rx", "tx", "malformed", "bad_auth", "replayed", "send_errors", "retransmits", "duplicates")}
        return {"name": self.name, "state": self.election.state.value, "master": self.election.master,
                "round": self.round_no, "synchronized": self.synchronized(now),
                "uptime_s": now - self.start_hw, "version": __version__, "clock": clock,
                "peers": peers, "counters": counters, "error_bound_s": self.last_bound_s}

    # --- election glue ----------------------------------------------------------------

    def _live_followers(self, now: float) -> int:
        """Rank for the CONFLICT tie-break: followers heard within 1.5 round intervals."""
        if self.election.state not in (State.LEADER, State.CONFLICT):
            return 0
        horizon = now - 1.5 * self.cfg.round_interval_s
        return sum(1 for f in self.followers.values() if f.last_heard >= horizon)

    def _after_election(self, before: State, now: float, out: list[Action]) -> None:
        st = self.election.state
        if st is before:
            return
        leading = st is State.LEADER or st is State.CONFLICT
        was_leading = before is State.LEADER or before is State.CONFLICT
        if leading and not was_leading:
            # New master: the voters are our first followers (not "joined": they were
            # synchronized under the old master, ADJTIME is enough for them).
            self.followers = {}
            self.rounds_completed = 0
            for v in sorted(self.election.votes):
                fi = FollowerInfo(v, joined=False, last_heard=now)
                self.followers[v] = fi
            self.round = None
            # First round once late answers to MASTERUP (SLAVEUP) have arrived.
            self.next_round_at = now + self.election.reply_wait_s
            self.next_heartbeat_at = now      # tell the voters at once that we lead
        elif was_leading and not leading:
            self.round = None
            self.next_round_at = None
            self.next_heartbeat_at = None
            for f in self.followers:
                self.outbox.cancel_peer(f)
            self.followers = {}

    def _add_follower(self, peer: str, now: float, out: list[Action], rejoin: bool) -> None:
        fi = self.followers.get(peer)
        if fi is None:
            self.followers[peer] = FollowerInfo(peer, joined=True, last_heard=now)
            out.append(Log("join", {"peer": peer, "missed": 0}))
        elif rejoin:
            # A known follower announcing itself again (re)started: it needs SETTIME.
            fi.joined = True
            fi.missed = 0

    # --- follower side ----------------------------------------------------------------

    def _apply(self, msg: Message, peer: str, now: float, out: list[Action]) -> None:
        assert msg.time_ns is not None
        bound = _data_bound(msg)
        self.adjust_count += 1
        if msg.type == MsgType.ADJTIME:
            delta = msg.time_ns / NS
            applied = self.clock.adjust(delta, now, bound_s=bound)
            kind = "adjtime"
        else:
            clk_now = self.clock.corrected(now)
            corr_ns = msg.data.get("corr_ns") if msg.data is not None else None
            if isinstance(corr_ns, int) and not isinstance(corr_ns, bool):
                delta = corr_ns / NS        # relative to our clock: immune to delivery delay
            else:
                delta = msg.time_ns / NS - clk_now   # a master without corr_ns: absolute target
            kind = "settime"
            if (self.last_sync_master == peer and self.last_sync_hw is not None
                    and now - self.last_sync_hw <= 2.0 * self.cfg.round_interval_s):
                # A SETTIME from the master that has been correcting us: we drifted past
                # settime_threshold_s within a round (rates up to 10% apart drift 1-2 s per
                # 10 s round).  Apply it as a relative correction so the frequency loop
                # learns the rate; set_time never teaches it, and we would stay behind.
                applied = self.clock.adjust(delta, now, bound_s=bound)
            else:
                applied = self.clock.set_time(clk_now + delta, now, bound_s=bound)
        if not isinstance(applied, str):
            applied = "step"
        self.last_sync_hw = now
        self.last_sync_master = peer
        # A hold (a large backward correction, absorbed at reduced rate) leaves the clock
        # far off for up to 2 x |delta|: not synchronized until a correction that is not
        # a hold, or the restarted node's first SETTIME back would count as in sync.
        if applied != HOLD:
            self.clock_synced = True
        self.last_bound_s = bound
        out.append(Send(peer, Message(MsgType.ACK, msg.seq, self.name)))
        freq = getattr(self.clock, "freq_ppm", None)
        if freq is None:
            freq = self.clock.state(now).get("freq_ppm", 0.0)
        out.append(Log("adjust", {"round": self.adjust_count, "from": peer, "delta_s": delta,
                                  "kind": kind, "applied": applied, "freq_ppm": freq}))

    # --- master side: rounds ----------------------------------------------------------

    def _probe_answer(self, msg: Message, peer: str, rx: float, now: float) -> Send:
        """PROBE_REPLY: t2 = our clock when the probe arrived, t3 = now (the runtime
        re-stamps t3 right before sendto); the master removes t3 - t2 from the RTT."""
        return Send(peer, Message(_PROBE_REPLY, self.seq.next(), self.name, t1_ns=msg.t1_ns,
                                  t2_ns=_ns(self.clock.corrected(rx)), t3_ns=_ns(self.clock.corrected(now))))

    def _send_probe(self, fi: FollowerInfo, now: float, out: list[Action], clk: float | None = None) -> None:
        t1 = _ns(self.clock.corrected(now) if clk is None else clk)
        fi.out_t1_ns = t1
        fi.out_hw = now
        fi.sent += 1
        out.append(Send(fi.name, Message(MsgType.PROBE, self.seq.next(), self.name, t1_ns=t1)))

    def _start_round(self, now: float, out: list[Action]) -> None:
        cfg = self.cfg
        self.round_no += 1
        self.next_round_at = None
        for p in self.peer_names:
            if p not in self.followers:
                out.append(Send(p, Message(MsgType.MASTERUP, self.seq.next(), self.name)))
        self._settime_base.clear()   # the Outbox gives up long before the next round
        start_clk_ns = _ns(self.clock.corrected(now))
        self.round = RoundState(self.round_no, now, start_clk_ns, now + cfg.probe_timeout_s,
                                now + (cfg.probes_per_round + 1) * cfg.probe_timeout_s,
                                len(self.followers))
        for fi in self.followers.values():
            fi.samples = []
            fi.sent = 0
            fi.done = False
            self._send_probe(fi, now, out)
        if not self.followers:
            self._finish_round(now, out)

    def _probe_reply(self, fi: FollowerInfo, msg: Message, now: float, out: list[Action],
                     rx: float | None = None) -> None:
        rnd = self.round
        assert rnd is not None
        if msg.t1_ns is None or msg.t2_ns is None or msg.t3_ns is None or msg.t1_ns < rnd.start_clk_ns:
            return   # a reply to an earlier round's probe
        t4 = self.clock.corrected(now if rx is None else rx)
        fi.samples.append(probe_sample(msg.t1_ns / NS, msg.t2_ns / NS, msg.t3_ns / NS, t4))
        if fi.done or msg.t1_ns != fi.out_t1_ns:
            return   # late reply to a probe we already gave up on: sample kept, chain not moved
        fi.out_t1_ns = None
        if fi.sent < self.cfg.probes_per_round:
            self._send_probe(fi, now, out, t4 if rx is None or rx == now else None)
        else:
            fi.done = True
            rnd.pending -= 1
            if rnd.pending <= 0:
                self._finish_round(now, out)

    def _probe_slot(self, now: float, out: list[Action]) -> None:
        rnd = self.round
        assert rnd is not None
        timeout = self.cfg.probe_timeout_s
        for fi in self.followers.values():
            if fi.done or fi.out_t1_ns is None or now - fi.out_hw < timeout:
                continue
            if fi.sent < self.cfg.probes_per_round:
                self._send_probe(fi, now, out)     # the outstanding one is lost
            else:
                fi.done = True
                rnd.pending -= 1
        if rnd.pending <= 0:
            self._finish_round(now, out)
        else:
            rnd.next_slot = now + timeout

    def _finish_round(self, now: float, out: list[Action]) -> None:
        rnd = self.round
        assert rnd is not None
        cfg = self.cfg
        self.round = None
        self.next_round_at = rnd.start_hw + cfg.round_interval_s
        if self.next_round_at <= now:      # a stalled (paused) master does not catch up in bursts
            self.next_round_at = now + cfg.round_interval_s
        measured: dict[str, tuple[float, float]] = {}
        best: dict[str, Sample] = {}
        purged: list[str] = []
        for fi in self.followers.values():
            if fi.samples:
                s = best_sample(fi.samples)
                best[fi.name] = s
                measured[fi.name] = (s.offset_s, s.bound_s)
                fi.offset_s, fi.bound_s, fi.rtt_s = s.offset_s, s.bound_s, s.rtt_s
                fi.missed = 0
                fi.last_heard = now
            else:
                fi.missed += 1
                fi.in_group = False
                if fi.missed >= cfg.purge_after_missed:
                    purged.append(fi.name)
            fi.samples = []
        for name in purged:
            del self.followers[name]
            self.outbox.cancel_peer(name)
            out.append(Log("purge", {"peer": name, "missed": cfg.purge_after_missed}))
        average, group = fault_tolerant_average(measured, cfg.agreement_s, master=self.name)
        joined = [n for n in best if self.followers[n].joined]
        corr, master_corr = corrections({n: v[0] for n, v in measured.items()}, average,
                                        cfg.settime_threshold_s, joined)
        clk_now = self.clock.corrected(now)
        rows = []
        for name, c in corr.items():
            fi = self.followers[name]
            fi.in_group = name in group
            fi.joined = False
            s = best[name]
            if c.kind == SETTIME:
                # Target at receipt: master clock then (+ one-way delay ~ rtt/2) + average.
                base = average + s.rtt_s / 2.0
                msg = Message(MsgType.SETTIME, self.seq.next(), self.name,
                              time_ns=_ns(clk_now + base),
                              data={"bound_s": s.bound_s, "corr_ns": _ns(c.correction_s)})
                self._settime_base[(name, msg.seq)] = base
            else:
                msg = Message(MsgType.ADJTIME, self.seq.next(), self.name, time_ns=_ns(c.correction_s),
                              data={"bound_s": s.bound_s})
            self.outbox.track(name, msg, now)
            out.append(Send(name, msg))
            rows.append({"name": name, "offset_s": s.offset_s, "bound_s": s.bound_s, "rtt_s": s.rtt_s,
                         "in_group": fi.in_group, "correction_s": c.correction_s, "kind": c.kind})
        if master_corr != 0.0:
            # The average's error: the mean of the in-group followers' bounds (the
            # master's own offset, 0, is exact).
            gb = [measured[n][1] for n in group if n in measured]
            self.clock.adjust(master_corr, now, bound_s=sum(gb) / len(gb) if gb else 0.0)
        self.rounds_completed += 1
        self.clock_synced = True
        self.last_bound_s = 0.0
        self.last_round = {"round": rnd.number, "master": self.name, "followers": rows,
                           "master_correction_s": master_corr, "average_s": average,
                           "group_size": len(group), "duration_s": now - rnd.start_hw}
        out.append(Log("round", self.last_round))

    # --- control ----------------------------------------------------------------------

    def _control(self, msg: Message, src: tuple[str, int], now: float) -> list[Action]:
        t = msg.type
        if t == MsgType.STATUS_REQ:
            return [Reply(src, Message(MsgType.STATUS, msg.seq, self.name, data=self.status(now)))]
        if t in (MsgType.MSITEREQ, MsgType.MSITE):
            return [Reply(src, Message(MsgType.MSITE, msg.seq, self.name, target=self.election.master))]
        if t == MsgType.TEST:
            out: list[Action] = [Reply(src, Message(MsgType.ACK, msg.seq, self.name))]
            before = self.election.state
            out += self.election.force(now)
            self._after_election(before, now, out)
            return out
        on = t == MsgType.TRACEON
        return [Reply(src, Message(MsgType.ACK, msg.seq, self.name))] + \
            self.command("trace_on" if on else "trace_off", None, now)

    def _count_tx(self, out: list[Action]) -> None:
        n = 0
        for a in out:
            if type(a) is Send or type(a) is Reply:
                n += 1
            elif type(a) is Broadcast:
                n += len(self.peer_names)
        self.counters["tx"] += n
