"""Cristian's algorithm as a tempod core: clients poll one time server, no election.

``CristianNode`` has the same interface as :class:`tempod.node.Node` (events in,
actions out: ``handle_timer``, ``handle_message``, ``next_deadline``, ``status`` ...),
so the runtime and the simulator drive either; ``make_core`` picks one by mode. It
reuses tempod's probe exchange (PROBE / PROBE_REPLY with t1..t4, ``berkeley.probe_sample``
and ``best_sample``), its software clock (``discipline``: slewed, never backwards,
frequency learned from successive corrections) and, through the runtime, its NTP
responder. It never touches sockets, files or real clocks; ``now`` is always the
node's hardware time in seconds.

Roles are fixed by configuration (``[protocol] time_server``), as in the lecture:

* The **time server** runs free on its own (drifting) hardware clock: it never
  corrects itself and answers every configured peer's PROBE with t2 (arrival) and t3
  (reply) on that clock. It reports LEADER, so the observer and the runner see it as
  "the master" a leader-kill fault kills.
* A **client** (FOLLOWER of the server) starts a poll burst every
  ``round_interval_s``: up to ``probes_per_round`` exchanges chained back to back (the
  next probe leaves when a reply arrives, or after ``probe_timeout_s`` if one is lost),
  keeps the sample with the smallest round trip, and corrects its clock by that
  sample's offset ``((T2 - T1) + (T3 - T4)) / 2`` (server - client; its error is bounded
  by half the round trip, passed to the discipline as ``bound_s``). The first
  correction since start sets the clock (a forward step, or a hold when backwards:
  never backwards); later ones are slewed and teach the frequency loop.

No election and no failover: a dead server leaves its clients free-running on their
learned frequency, drifting apart at their relative rates (about 2 rho dt for rates
within +-rho), and still FOLLOWERs of the server they cannot reach -- for this protocol
that is the expected behaviour, not a fault of the node.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from . import __version__
from .actions import Action, Log, Reply, Send
from .berkeley import Sample, best_sample, probe_sample
from .clocks import Discipline
from .discipline import HOLD, clock_status
from .election import State
from .nodeconfig import NodeConfig
from .reliability import SeqCounter
from .wire import Message, MsgType

NS = 1_000_000_000
MODES = ("berkeley", "cristian")


def _ns(s: float) -> int:
    return int(round(s * NS))


def cristian_offset(t1: float, t2: float, t3: float, t4: float) -> tuple[float, float]:
    """(offset_s, bound_s) of one exchange: server - client and half the round trip.

    t1 client send, t2 server receive, t3 server send, t4 client receive; t1/t4 on the
    client's clock, t2/t3 on the server's. The server's processing time t3 - t2 is not
    network delay and is taken out of the round trip.
    """
    s = probe_sample(t1, t2, t3, t4)
    return s.offset_s, s.bound_s


@dataclass(slots=True)
class PollState:
    """One poll burst of a client."""
    number: int
    start_hw: float
    start_clk_ns: int              # replies to probes older than this are stale
    end_hw: float                  # hard end: the burst closes with what it has
    sent: int = 0
    out_t1_ns: int | None = None   # outstanding probe
    out_hw: float = 0.0
    samples: list[Sample] = field(default_factory=list)


class CristianNode:
    """A Cristian time server or client (see the module docstring)."""

    def __init__(self, config: NodeConfig, clock: Discipline, rng: random.Random, now: float,
                 time_server: str) -> None:
        if time_server != config.name and time_server not in config.peer_names:
            raise ValueError(f"config: time_server: {time_server!r} is neither this node nor a peer")
        self.cfg = config
        self.name = config.name
        self.clock = clock
        self.rng = rng
        self.start_hw = now
        self.time_server = time_server
        self.is_server = time_server == config.name
        self.peer_names: tuple[str, ...] = config.peer_names
        self._peer_set = frozenset(self.peer_names)
        self.addresses = {p.name: p.address for p in config.peers}
        self.seq = SeqCounter(rng.randrange(1 << 16))
        self.counters: dict[str, int] = {k: 0 for k in (
            "rx", "tx", "malformed", "bad_auth", "replayed", "send_errors", "retransmits",
            "duplicates", "ignored", "expired")}
        self.trace = False
        self.poll: PollState | None = None
        self.poll_no = 0
        self.missed = 0                       # consecutive polls without an answer
        self.last_poll: dict | None = None
        self.last_sync_hw: float | None = None
        self.last_sync_master: str | None = None
        self.last_bound_s = 0.0
        self.adjust_count = 0
        # The server's clock is the reference by definition; a client's after its first
        # correction.
        self.clock_synced = self.is_server
        self._state = State.LEADER if self.is_server else State.FOLLOWER
        # a client spreads its first poll over one probe timeout so n clients do not
        # all probe the server in the same instant
        self.next_poll_at: float | None = (None if self.is_server
                                           else now + rng.uniform(0.0, config.probe_timeout_s))
        self._queued: list[Action] = [Log("state", {"from": "START", "to": self._state.value,
                                                    "cause": "cristian " + ("time server" if self.is_server
                                                                            else "client of " + time_server)})]
        self._queued_at = now

    # --- public API (the same as node.Node) -------------------------------------------

    @property
    def state(self) -> State:
        return self._state

    @property
    def master(self) -> str | None:
        return self.time_server

    def next_deadline(self) -> float | None:
        if self._queued:
            return self._queued_at
        p = self.poll
        if p is not None:
            if p.out_t1_ns is None:
                return p.end_hw
            return min(p.end_hw, p.out_hw + self.cfg.probe_timeout_s)
        return self.next_poll_at

    def handle_timer(self, now: float) -> list[Action]:
        out: list[Action] = []
        if self._queued:
            out, self._queued = self._queued, []
        if self.poll is not None:
            if now >= self.poll.end_hw:
                self._finish_poll(now, out)
            # the same sum as next_deadline's: a timer at exactly that time must fire it
            elif self.poll.out_t1_ns is not None and now >= self.poll.out_hw + self.cfg.probe_timeout_s:
                # the outstanding probe (or its reply) is lost
                if self.poll.sent < self.cfg.probes_per_round:
                    self._send_probe(now, out)
                else:
                    self._finish_poll(now, out)
        if self.poll is None and self.next_poll_at is not None and now >= self.next_poll_at:
            self._start_poll(now, out)
        self._count_tx(out)
        return out

    def handle_message(self, msg: Message, src: tuple[str, int], now: float,
                       rx_hw: float | None = None) -> list[Action]:
        """One authenticated message at hardware time ``now`` (``rx_hw``: its arrival
        time, used only for the probe timestamps t2 and t4, as in node.Node)."""
        rx = now if rx_hw is None or rx_hw > now else rx_hw
        self.counters["rx"] += 1
        t = msg.type
        if t in (MsgType.STATUS_REQ, MsgType.MSITEREQ, MsgType.MSITE, MsgType.TEST,
                 MsgType.TRACEON, MsgType.TRACEOFF):
            out = self._control(msg, src, now)
            self._count_tx(out)
            return out
        if msg.name not in self._peer_set:
            self.counters["ignored"] += 1
            return []
        out: list[Action] = []
        if t is MsgType.PROBE and self.is_server and msg.t1_ns is not None:
            out.append(Send(msg.name, Message(MsgType.PROBE_REPLY, self.seq.next(), self.name, t1_ns=msg.t1_ns,
                                              t2_ns=_ns(self.clock.corrected(rx)),
                                              t3_ns=_ns(self.clock.corrected(now)))))
        elif t is MsgType.PROBE_REPLY and not self.is_server and msg.name == self.time_server:
            self._probe_reply(msg, now, rx, out)
        else:
            # Berkeley traffic (a node deployed in another mode) has no meaning here
            self.counters["ignored"] += 1
        self._count_tx(out)
        return out

    def restamp_probe(self, to: str, old_t1_ns: int, new_t1_ns: int) -> None:
        """The runtime re-stamped an outgoing PROBE's t1 right before ``sendto``."""
        p = self.poll
        if p is not None and to == self.time_server and p.out_t1_ns == old_t1_ns and new_t1_ns >= old_t1_ns:
            p.out_t1_ns = new_t1_ns

    def handle_send_error(self, to: str, now: float) -> None:
        self.counters["send_errors"] += 1

    def command(self, name: str, arg: str | None, now: float) -> list[Action]:
        if name == "election":
            return [Log("election", {"ignored": "cristian mode has no election"})]
        if name in ("trace_on", "trace_off"):
            self.trace = name == "trace_on"
            return [Log("trace", {"on": self.trace})]
        if name == "msite":
            return [Log("msite", {"master": self.time_server})]
        raise ValueError(f"unknown command {name!r} (election, trace_on, trace_off, msite)")

    def synchronized(self, now: float) -> bool:
        if self.is_server:
            return True
        return (self.clock_synced and self.last_sync_hw is not None
                and now - self.last_sync_hw <= 2.0 * self.cfg.round_interval_s)

    def status(self, now: float) -> dict:
        clock = clock_status(self.clock, now)
        last = self.last_poll or {}
        peers = [{"name": p.name, "address": p.address,
                  "offset_s": last.get("offset_s") if p.name == self.time_server else None,
                  "bound_s": last.get("bound_s") if p.name == self.time_server else None,
                  "missed": self.missed if p.name == self.time_server else None,
                  "in_group": p.name == self.time_server}
                 for p in self.cfg.peers]
        counters = {k: self.counters[k] for k in (
            "rx", "tx", "malformed", "bad_auth", "replayed", "send_errors", "retransmits", "duplicates")}
        return {"name": self.name, "state": self._state.value, "master": self.time_server,
                "protocol": "cristian", "time_server": self.time_server,
                "round": self.poll_no, "synchronized": self.synchronized(now),
                "uptime_s": now - self.start_hw, "version": __version__, "clock": clock,
                "peers": peers, "counters": counters, "error_bound_s": self.last_bound_s}

    # --- client: poll bursts ----------------------------------------------------------

    def _start_poll(self, now: float, out: list[Action]) -> None:
        cfg = self.cfg
        self.poll_no += 1
        self.next_poll_at = None
        self.poll = PollState(self.poll_no, now, _ns(self.clock.corrected(now)),
                              now + (cfg.probes_per_round + 1) * cfg.probe_timeout_s)
        self._send_probe(now, out)

    def _send_probe(self, now: float, out: list[Action], clk: float | None = None) -> None:
        p = self.poll
        assert p is not None
        t1 = _ns(self.clock.corrected(now) if clk is None else clk)
        p.out_t1_ns = t1
        p.out_hw = now
        p.sent += 1
        out.append(Send(self.time_server, Message(MsgType.PROBE, self.seq.next(), self.name, t1_ns=t1)))

    def _probe_reply(self, msg: Message, now: float, rx: float, out: list[Action]) -> None:
        p = self.poll
        if (p is None or msg.t1_ns is None or msg.t2_ns is None or msg.t3_ns is None
                or msg.t1_ns < p.start_clk_ns):
            return   # no burst open, or a reply to an earlier burst's probe
        t4 = self.clock.corrected(rx)
        p.samples.append(probe_sample(msg.t1_ns / NS, msg.t2_ns / NS, msg.t3_ns / NS, t4))
        if msg.t1_ns != p.out_t1_ns:
            return   # late reply to a probe already given up on: sample kept, chain not moved
        p.out_t1_ns = None
        if p.sent < self.cfg.probes_per_round:
            self._send_probe(now, out, t4 if rx == now else None)
        else:
            self._finish_poll(now, out)

    def _finish_poll(self, now: float, out: list[Action]) -> None:
        p = self.poll
        assert p is not None
        cfg = self.cfg
        self.poll = None
        self.next_poll_at = p.start_hw + cfg.round_interval_s
        if self.next_poll_at <= now:      # a paused client does not catch up in bursts
            self.next_poll_at = now + cfg.round_interval_s
        if not p.samples:
            self.missed += 1
            self.last_poll = {"poll": p.number, "server": self.time_server, "samples": 0,
                              "missed": self.missed}
            out.append(Log("poll", self.last_poll))
            return
        self.missed = 0
        best = best_sample(p.samples)
        delta = best.offset_s            # server - client: what the client must add
        self.adjust_count += 1
        if self.clock_synced:
            applied = self.clock.adjust(delta, now, bound_s=best.bound_s)
        else:
            clk_now = self.clock.corrected(now)
            applied = self.clock.set_time(clk_now + delta, now, bound_s=best.bound_s)
        if not isinstance(applied, str):
            applied = "step"
        self.last_sync_hw = now
        self.last_sync_master = self.time_server
        # A backward first correction is a hold (never backwards), and the clock is set
        # all the same: the hold absorbs it. Waiting for a correction that is not a hold
        # kept a client whose clock runs faster than the server's unsynchronized for
        # ever -- every poll then finds it ahead again by its rate difference x the poll
        # interval, set_time holds again, and it never reaches adjust and its frequency
        # loop (seen on a 5-node lab run: the two fastest clients UNSYNCED for 60 s).
        self.clock_synced = True
        self.last_bound_s = best.bound_s
        freq = getattr(self.clock, "freq_ppm", None)
        if freq is None:
            freq = self.clock.state(now).get("freq_ppm", 0.0)
        self.last_poll = {"poll": p.number, "server": self.time_server, "samples": len(p.samples),
                          "offset_s": best.offset_s, "bound_s": best.bound_s, "rtt_s": best.rtt_s,
                          "duration_s": now - p.start_hw}
        out.append(Log("poll", self.last_poll))
        out.append(Log("adjust", {"round": self.adjust_count, "from": self.time_server, "delta_s": delta,
                                  "kind": "cristian", "applied": applied, "freq_ppm": freq}))

    # --- control ------------------------------------------------------------------------

    def _control(self, msg: Message, src: tuple[str, int], now: float) -> list[Action]:
        t = msg.type
        if t == MsgType.STATUS_REQ:
            return [Reply(src, Message(MsgType.STATUS, msg.seq, self.name, data=self.status(now)))]
        if t in (MsgType.MSITEREQ, MsgType.MSITE):
            return [Reply(src, Message(MsgType.MSITE, msg.seq, self.name, target=self.time_server))]
        if t == MsgType.TEST:
            return [Reply(src, Message(MsgType.ACK, msg.seq, self.name))] + self.command("election", None, now)
        on = t == MsgType.TRACEON
        return [Reply(src, Message(MsgType.ACK, msg.seq, self.name))] + \
            self.command("trace_on" if on else "trace_off", None, now)

    def _count_tx(self, out: list[Action]) -> None:
        self.counters["tx"] += sum(1 for a in out if type(a) is Send or type(a) is Reply)


def make_core(config: NodeConfig, clock: Discipline, rng: random.Random, now: float,
              mode: str = "berkeley", time_server: str = ""):
    """The protocol core for ``mode``: ``node.Node`` (berkeley) or ``CristianNode``."""
    if mode == "berkeley":
        from .node import Node

        return Node(config, clock, rng, now)
    if mode == "cristian":
        return CristianNode(config, clock, rng, now, time_server)
    raise ValueError(f"unknown protocol mode {mode!r} (one of {', '.join(MODES)})")
