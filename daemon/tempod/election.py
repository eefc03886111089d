"""Gusella & Zatti's master election (4.3BSD timed) as a table-driven state machine.

This module owns *who is master*: the election state, the current master's name, the
election timers and the TSP election messages.  It knows nothing about sockets, clocks,
rounds or offsets: events come in (``on_message`` / ``on_timer`` with ``now`` = the
node's hardware seconds), actions (``Send`` / ``Broadcast`` / ``Log``) go out.  The node
(``node.py``) feeds it, and reads ``state`` / ``master`` to decide whether to run rounds
(LEADER) or answer probes and apply corrections (FOLLOWER of the sender).

Theory of operation (after timed's ``timed.c`` / ``slave.c`` / ``candidate.c`` /
``master.c`` and Gusella & Zatti's TEMPO papers):

* START: broadcast MASTERREQ.  A master answers MASTERACK -> FOLLOWER.  No answer within
  ``reply_wait`` -> NOLEADER.
* NOLEADER: wait a random election timeout, uniform in [election_timeout_min_s,
  election_timeout_max_s]; then an eligible node becomes CANDIDATE, an ineligible one
  goes back to START (asks again).
* CANDIDATE: broadcast ELECTION, collect ACCEPT for ``reply_wait``.  Any REFUSE -> lost
  (NOLEADER, new random timeout).  No REFUSE -> LEADER, broadcast MASTERUP.  An
  existing master answers the ELECTION with MASTERACK and the candidate follows it.
* Voters (START, NOLEADER, CONSISTENCY, FOLLOWER whose master fell silent) go to
  ACCEPT and answer ACCEPT after a random delay <= answer_delay_max_s (so a large group
  does not answer at once); during refuse_window_s they REFUSE any other candidate.
  A FOLLOWER that heard its master within ``master_timeout_min_s`` REFUSEs (its master
  is alive).  Concurrent candidates (timers firing within a network delay of each
  other) converge on the lowest name instead of all losing: a CANDIDATE that gets the
  ELECTION of a lower-named rival yields (votes for it), and a voter that gets it
  within refuse_window_s REFUSEs its first candidate and votes for the lower one; a
  higher-named rival is REFUSEd as before.  If a REFUSE is lost both may win; the
  CONFLICT rules below then keep one.
* FOLLOWER: master loss = nothing from the master (HEARTBEAT, round message or
  MASTERUP) for ``U(master_timeout_min_s, master_timeout_max_s)``, drawn once per term,
  -> CANDIDATE (eligible) or START.  The master sends HEARTBEAT to its followers every
  ``heartbeat_interval_s`` (node.py), so detection does not wait for a round.
* Loss is not death (the rule that keeps a healthy group's master under loss):
  (1) the timeout spans >= 3 heartbeats (NodeConfig checks it), so at least two
  heartbeats in a row must be lost; (2) the candidacy is a pre-vote: the candidate's
  ELECTION goes out ``ELECTION_COPIES`` times within ``reply_wait`` (RESEND), every
  follower that heard the master within ``master_timeout_min_s`` REFUSEs each copy and
  the master answers each with MASTERACK; one answer ends the candidacy (REFUSE ->
  NOLEADER, MASTERACK -> FOLLOWER of the master), and a NOLEADER node rejoins at the
  master's next heartbeat.  Nobody else changes state, so a healthy group keeps its
  master unless every copy's every answer is lost (at 20 % loss and 5 nodes, about
  (1 - 0.8^2)^(3 x 4) = 5e-6 per candidacy).
* CONSISTENCY: a FOLLOWER that hears a second master (its MASTERUP or a round message)
  sends CONFLICT(target = the other) to its own master and waits ``4 * reply_wait``;
  a round from its master brings it back, otherwise it re-asks (START).
* CONFLICT: a LEADER that learns of another master (CONFLICT from a follower, or the
  other's MASTERUP / round message) broadcasts RESOLVE carrying its rank; every other
  master answers MASTERACK with its rank.  After ``reply_wait`` it sends QUIT to each
  master it beats, and to any whose answer did not arrive (under loss the answer may be
  what was lost; a dead master ignores it); if one beats it, it steps down and follows
  the best one.  A master
  receiving QUIT steps down to FOLLOWER of the sender (the sender already compared).
  Two masters resolving at once exchange RESOLVE/QUIT; each obeys QUIT only from a
  master that beats it, so the outcome is the same on both sides.
* Tie-break (``beats``): the master with more *live* followers wins -- followers it
  heard from within 1.5 round intervals, the node supplies the count -- and on equal
  counts the lower name wins.  A paused or partitioned old master that comes back has
  heard nobody for longer than that, so its rank is 0 and it steps down to the master
  the group now follows; after a partition heals the larger side's master wins.
* A master announces itself (MASTERUP) each round to configured peers that are not its
  followers (node.py); that is how two masters meet after a partition heals and how
  late joiners find the master.  A FOLLOWER that gets MASTERUP from its own master was
  purged by it (lost replies) and answers SLAVEUP to be probed again.
* master_eligible = false: never CANDIDATE, never LEADER.  trusted (non-empty list):
  ELECTION / MASTERUP / MASTERACK / QUIT / round messages from other names are
  refused or ignored as a master claim.
* Every change of state or master returns a ``Log("state", from, to, cause, master)``.

Election messages are not ACKed: losses are covered by the ELECTION copies and the
random retries above.
``reply_wait = answer_delay_max_s + 2 * probe_timeout_s`` (probe_timeout_s is the
configured bound on a network round trip).

The transitions are data: ``TRANSITIONS`` maps (state, event) to a handler name and the
states that handler may lead to; ``dispatch`` checks every actual transition against
it and ``diagram()`` draws it.  A (state, event) pair not in the table is ignored.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass
from typing import Callable

from .actions import Action, Broadcast, Log, Send
from .nodeconfig import NodeConfig
from .wire import Message, MsgType


class State(enum.Enum):
    # Members are singletons compared by identity: hash them by identity too (C speed;
    # Enum's default hashes the name in Python, a measurable cost in the simulator).
    __hash__ = object.__hash__

    START = "START"
    CONSISTENCY = "CONSISTENCY"
    NOLEADER = "NOLEADER"
    FOLLOWER = "FOLLOWER"
    ACCEPT = "ACCEPT"
    CANDIDATE = "CANDIDATE"
    LEADER = "LEADER"
    CONFLICT = "CONFLICT"


class Ev(enum.Enum):
    """Election inputs: TSP messages (by type), ROUND (a master's PROBE / ADJTIME /
    SETTIME / HEARTBEAT), TEST (forced election) and the three timers."""
    __hash__ = object.__hash__

    MASTERREQ = "MASTERREQ"
    MASTERACK = "MASTERACK"
    MASTERUP = "MASTERUP"
    SLAVEUP = "SLAVEUP"
    ELECTION = "ELECTION"
    ACCEPT = "ACCEPT"
    REFUSE = "REFUSE"
    CONFLICT = "CONFLICT"
    RESOLVE = "RESOLVE"
    QUIT = "QUIT"
    ROUND = "ROUND"
    TEST = "TEST"
    TIMEOUT = "TIMEOUT"
    ANSWER_DUE = "ANSWER_DUE"
    RESEND = "RESEND"


# Message types that are election events; PROBE/ADJTIME/SETTIME map to ROUND.
EVENT_OF_TYPE: dict[MsgType, Ev] = {
    MsgType.MASTERREQ: Ev.MASTERREQ, MsgType.MASTERACK: Ev.MASTERACK,
    MsgType.MASTERUP: Ev.MASTERUP, MsgType.SLAVEUP: Ev.SLAVEUP,
    MsgType.ELECTION: Ev.ELECTION, MsgType.ACCEPT: Ev.ACCEPT, MsgType.REFUSE: Ev.REFUSE,
    MsgType.CONFLICT: Ev.CONFLICT, MsgType.RESOLVE: Ev.RESOLVE, MsgType.QUIT: Ev.QUIT,
    MsgType.PROBE: Ev.ROUND, MsgType.ADJTIME: Ev.ROUND, MsgType.SETTIME: Ev.ROUND,
    MsgType.HEARTBEAT: Ev.ROUND,
}
# ELECTION copies per candidacy, spread over reply_wait (see "Loss is not death").
ELECTION_COPIES = 3
# TEST is a control message (timedc / tempoctl): node.py answers it and calls force().

S = State
F = S.FOLLOWER


@dataclass(frozen=True, slots=True)
class Transition:
    handler: str                  # method name on Election (without the "_h_" prefix)
    targets: frozenset[State]     # states the handler may move to (staying is always allowed)


def _t(handler: str, *targets: State) -> Transition:
    return Transition(handler, frozenset(targets))


_JOIN = _t("join", F)
_VOTE = _t("vote", S.ACCEPT)
_FORCE = _t("force", S.CANDIDATE)

TRANSITIONS: dict[tuple[State, Ev], Transition] = {
    # START: asked "who is master?"
    (S.START, Ev.MASTERACK): _JOIN,
    (S.START, Ev.MASTERUP): _JOIN,
    (S.START, Ev.ROUND): _JOIN,
    (S.START, Ev.ELECTION): _VOTE,
    (S.START, Ev.TIMEOUT): _t("no_answer", S.NOLEADER),
    (S.START, Ev.TEST): _FORCE,
    # NOLEADER: nobody answered; random wait before standing
    (S.NOLEADER, Ev.MASTERACK): _JOIN,
    (S.NOLEADER, Ev.MASTERUP): _JOIN,
    (S.NOLEADER, Ev.ROUND): _JOIN,
    (S.NOLEADER, Ev.ELECTION): _VOTE,
    (S.NOLEADER, Ev.TIMEOUT): _t("stand", S.CANDIDATE, S.START),
    (S.NOLEADER, Ev.TEST): _FORCE,
    # ACCEPT: voted for a candidate
    (S.ACCEPT, Ev.ANSWER_DUE): _t("send_accept"),
    (S.ACCEPT, Ev.ELECTION): _t("refuse_other"),
    (S.ACCEPT, Ev.MASTERUP): _JOIN,
    (S.ACCEPT, Ev.MASTERACK): _JOIN,
    (S.ACCEPT, Ev.ROUND): _JOIN,
    (S.ACCEPT, Ev.TIMEOUT): _t("vote_expired", S.NOLEADER),
    (S.ACCEPT, Ev.TEST): _FORCE,
    # CANDIDATE: broadcast ELECTION, collecting votes
    (S.CANDIDATE, Ev.ACCEPT): _t("count_vote"),
    (S.CANDIDATE, Ev.REFUSE): _t("lost", S.NOLEADER),
    (S.CANDIDATE, Ev.ELECTION): _t("rival", S.ACCEPT),
    (S.CANDIDATE, Ev.MASTERACK): _JOIN,
    (S.CANDIDATE, Ev.MASTERUP): _JOIN,
    (S.CANDIDATE, Ev.ROUND): _JOIN,
    (S.CANDIDATE, Ev.RESEND): _t("resend_election"),
    (S.CANDIDATE, Ev.TIMEOUT): _t("won", S.LEADER),
    # FOLLOWER: a master runs rounds for us
    (S.FOLLOWER, Ev.ROUND): _t("from_master", S.CONSISTENCY),
    (S.FOLLOWER, Ev.MASTERUP): _t("announce", S.CONSISTENCY),
    (S.FOLLOWER, Ev.MASTERACK): _t("from_master", S.CONSISTENCY),
    (S.FOLLOWER, Ev.ELECTION): _t("follower_vote", S.ACCEPT),
    (S.FOLLOWER, Ev.TIMEOUT): _t("master_lost", S.CANDIDATE, S.START),
    (S.FOLLOWER, Ev.TEST): _FORCE,
    # CONSISTENCY: heard a second master, told ours
    (S.CONSISTENCY, Ev.ROUND): _t("recheck", F),
    (S.CONSISTENCY, Ev.ELECTION): _VOTE,
    (S.CONSISTENCY, Ev.TIMEOUT): _t("reask", S.START),
    (S.CONSISTENCY, Ev.TEST): _FORCE,
    # LEADER
    (S.LEADER, Ev.MASTERREQ): _t("ack_request"),
    (S.LEADER, Ev.ELECTION): _t("ack_request"),
    (S.LEADER, Ev.MASTERUP): _t("other_master", S.CONFLICT),
    (S.LEADER, Ev.ROUND): _t("other_master", S.CONFLICT),
    (S.LEADER, Ev.CONFLICT): _t("other_master", S.CONFLICT),
    (S.LEADER, Ev.RESOLVE): _t("answer_resolve"),
    (S.LEADER, Ev.QUIT): _t("quit", F),
    (S.LEADER, Ev.TEST): _FORCE,
    # CONFLICT: resolving two masters
    (S.CONFLICT, Ev.MASTERACK): _t("contender"),
    (S.CONFLICT, Ev.RESOLVE): _t("answer_resolve"),
    (S.CONFLICT, Ev.MASTERUP): _t("contender"),
    (S.CONFLICT, Ev.ROUND): _t("contender"),
    (S.CONFLICT, Ev.MASTERREQ): _t("ack_request"),
    (S.CONFLICT, Ev.ELECTION): _t("ack_request"),
    (S.CONFLICT, Ev.QUIT): _t("quit", F),
    (S.CONFLICT, Ev.TIMEOUT): _t("resolve", S.LEADER, F),
}

# NTP refid / short codes per state (docs/architecture.md, NTP responder table).
SHORT = {S.START: "STRT", S.CONSISTENCY: "CONS", S.NOLEADER: "NOLD", S.ACCEPT: "ACPT",
         S.CANDIDATE: "CAND", S.CONFLICT: "CONF", S.LEADER: "LEAD", S.FOLLOWER: "FOLL"}


def beats(rank_a: int, name_a: str, rank_b: int, name_b: str) -> bool:
    """True if master a wins over master b: more live followers, then the lower name."""
    return (-rank_a, name_a) < (-rank_b, name_b)


def diagram(fmt: str = "mermaid") -> str:
    """Render TRANSITIONS as a mermaid ``stateDiagram-v2`` or a Graphviz ``digraph``."""
    edges: dict[tuple[State, State], list[str]] = {}
    for (src, ev), tr in TRANSITIONS.items():
        for dst in sorted(tr.targets, key=lambda s: s.value):
            edges.setdefault((src, dst), []).append(ev.value)
    if fmt == "mermaid":
        lines = ["stateDiagram-v2", "    [*] --> START"]
        for (src, dst), evs in edges.items():
            lines.append(f"    {src.value} --> {dst.value}: {' / '.join(evs)}")
        return "\n".join(lines) + "\n"
    if fmt == "dot":
        lines = ["digraph election {", "  rankdir=LR;"]
        for (src, dst), evs in edges.items():
            lines.append(f'  {src.value} -> {dst.value} [label="{" / ".join(evs)}"];')
        return "\n".join(lines) + "\n}\n"
    raise ValueError(f"diagram format must be 'mermaid' or 'dot', got {fmt!r}")


class Election:
    """One node's election state machine (see the module docstring for the rules)."""

    def __init__(self, cfg: NodeConfig, rng: random.Random, now: float,
                 next_seq: Callable[[], int], rank: Callable[[float], int]) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.rng = rng
        self._next_seq = next_seq
        self._rank = rank                       # live followers at `now` (node.py supplies)
        self.reply_wait_s = cfg.answer_delay_max_s + 2.0 * cfg.probe_timeout_s
        self.state = State.START
        self.master: str | None = None
        self.master_since: float | None = None  # hw s of becoming LEADER
        self.last_from_master: float = now      # hw s
        self._follow_timeout_s = cfg.master_timeout_max_s   # this term's master-loss timeout
        self._deadlines: dict[Ev, float] = {}
        self._candidate: str | None = None      # whom we voted for (ACCEPT state)
        self._refuse_until = 0.0
        self._votes: set[str] = set()
        self._contenders: dict[str, int] = {}   # other master -> rank (CONFLICT state)
        self._copies_left = 0                   # ELECTION copies still to send (CANDIDATE)
        self._out: list[Action] = []
        self.ignored = 0                        # events with no table entry
        self.startup_actions: list[Action] = self._enter_start(now)

    # --- public ---------------------------------------------------------------------

    @property
    def votes(self) -> frozenset[str]:
        """Peers that sent ACCEPT in the last candidacy (the new master's first followers)."""
        return frozenset(self._votes)

    def next_deadline(self) -> float | None:
        d = self._deadlines
        if len(d) == 1:
            for v in d.values():
                return v
        return min(d.values()) if d else None

    def on_message(self, ev: Ev, peer: str, now: float, rank: int = 0,
                   target: str | None = None) -> list[Action]:
        """Feed one received election event from ``peer`` (``rank`` from RESOLVE /
        MASTERACK / QUIT bodies, ``target`` from CONFLICT)."""
        return self.dispatch(ev, peer, now, rank, target)

    def on_timer(self, now: float) -> list[Action]:
        out: list[Action] = []
        # Fire every due timer, earliest first; a handler may re-arm or clear others.
        while self._deadlines:
            ev, when = min(self._deadlines.items(), key=lambda kv: kv[1])
            if when > now:
                break
            del self._deadlines[ev]
            out += self.dispatch(ev, self.name, now)
        return out

    def force(self, now: float) -> list[Action]:
        """timedc's TSP_TEST: start an election now (if this node may lead)."""
        return self.dispatch(Ev.TEST, self.name, now)

    def dispatch(self, ev: Ev, peer: str, now: float, rank: int = 0,
                 target: str | None = None) -> list[Action]:
        tr = TRANSITIONS.get((self.state, ev))
        if tr is None:
            self.ignored += 1
            return []
        self._out = []
        before, before_master = self.state, self.master
        self._cause = f"{ev.value} from {peer}" if peer != self.name else ev.value
        getattr(self, "_h_" + tr.handler)(peer, now, rank, target)
        if self.state is not before and self.state not in tr.targets:
            raise AssertionError(  # a bug in this module, never a remote's fault
                f"{before.value} --{ev.value}--> {self.state.value} not in TRANSITIONS")
        if self.state is not before or self.master != before_master:
            self._out.insert(0, Log("state", {"from": before.value, "to": self.state.value,
                                              "cause": self._cause, "master": self.master}))
        out, self._out = self._out, []
        return out

    # --- helpers --------------------------------------------------------------------

    def _msg(self, mtype: MsgType, target: str | None = None, rank: int | None = None) -> Message:
        data = {"live": rank} if rank is not None else None
        return Message(mtype, self._next_seq(), self.name, target=target, data=data)

    def _send(self, to: str, mtype: MsgType, **kw) -> None:
        self._out.append(Send(to, self._msg(mtype, **kw)))

    def _bcast(self, mtype: MsgType, **kw) -> None:
        self._out.append(Broadcast(self._msg(mtype, **kw)))

    def _log(self, event: str, **fields) -> None:
        self._out.append(Log(event, fields))

    def _election_timeout(self) -> float:
        return self.rng.uniform(self.cfg.election_timeout_min_s, self.cfg.election_timeout_max_s)

    def _enter_start(self, now: float) -> list[Action]:
        self.state, self.master = State.START, None
        self._deadlines = {Ev.TIMEOUT: now + self.reply_wait_s}
        return [Broadcast(self._msg(MsgType.MASTERREQ))]

    def _to_start(self, now: float) -> None:
        self._out.extend(self._enter_start(now))

    def _to_noleader(self, now: float) -> None:
        self.state, self.master = State.NOLEADER, None
        self._deadlines = {Ev.TIMEOUT: now + self._election_timeout()}

    def _to_follower(self, master: str, now: float) -> None:
        self.state, self.master = State.FOLLOWER, master
        self.master_since = None
        self.last_from_master = now
        self._follow_timeout_s = self.rng.uniform(self.cfg.master_timeout_min_s, self.cfg.master_timeout_max_s)
        self._arm_follow(now)

    def _arm_follow(self, now: float) -> None:
        self._deadlines = {Ev.TIMEOUT: now + self._follow_timeout_s}

    def heard_master(self, now: float) -> None:
        """Fast path for the commonest event, FOLLOWER + ROUND from our own master: exactly
        what the table's ``from_master`` handler does for it (refresh the loss timer),
        without the dispatch.  node.py calls it per PROBE and HEARTBEAT."""
        assert self.state is State.FOLLOWER
        self.last_from_master = now
        self._deadlines[Ev.TIMEOUT] = now + self._follow_timeout_s

    def _to_candidate(self, now: float) -> None:
        self.state, self.master = State.CANDIDATE, None
        self._votes = set()
        self._copies_left = ELECTION_COPIES - 1
        self._deadlines = {Ev.TIMEOUT: now + self.reply_wait_s}
        self._arm_resend(now)
        self._bcast(MsgType.ELECTION)
        self._log("election", phase="candidate", peer=self.name, votes=0)

    def _arm_resend(self, now: float) -> None:
        if self._copies_left > 0:
            self._deadlines[Ev.RESEND] = now + self.reply_wait_s / ELECTION_COPIES

    def _to_leader(self, now: float) -> None:
        self.state, self.master = State.LEADER, self.name
        self.master_since = now
        self._deadlines = {}

    def _to_accept(self, candidate: str, now: float) -> None:
        self.state, self.master = State.ACCEPT, None
        self._candidate = candidate
        self._refuse_until = now + self.cfg.refuse_window_s
        # Answer after a random delay so that N voters do not answer at once.
        self._deadlines = {Ev.ANSWER_DUE: now + self.rng.uniform(0.0, self.cfg.answer_delay_max_s),
                           Ev.TIMEOUT: now + self.cfg.refuse_window_s + self.reply_wait_s}
        self._log("election", phase="accepted", peer=candidate, votes=0)

    def _refuse(self, peer: str) -> None:
        self._send(peer, MsgType.REFUSE)
        self._log("election", phase="refused", peer=peer, votes=0)

    def _may_lead(self, peer: str) -> bool:
        return self.cfg.may_lead(peer)

    # --- handlers (named in TRANSITIONS) ----------------------------------------------

    def _h_join(self, peer: str, now: float, rank: int, target: str | None) -> None:
        if not self._may_lead(peer):
            return
        self._to_follower(peer, now)
        self._send(peer, MsgType.SLAVEUP)

    def _h_vote(self, peer: str, now: float, rank: int, target: str | None) -> None:
        if self._may_lead(peer):
            self._to_accept(peer, now)
        else:
            self._refuse(peer)

    def _h_force(self, peer: str, now: float, rank: int, target: str | None) -> None:
        if self.cfg.master_eligible:
            self._to_candidate(now)

    def _h_no_answer(self, peer: str, now: float, rank: int, target: str | None) -> None:
        self._to_noleader(now)

    def _h_stand(self, peer: str, now: float, rank: int, target: str | None) -> None:
        if self.cfg.master_eligible and self._may_lead(self.name):
            self._to_candidate(now)
        else:
            self._to_start(now)

    def _h_send_accept(self, peer: str, now: float, rank: int, target: str | None) -> None:
        assert self._candidate is not None
        self._send(self._candidate, MsgType.ACCEPT)

    def _h_refuse_other(self, peer: str, now: float, rank: int, target: str | None) -> None:
        if peer == self._candidate:
            if Ev.ANSWER_DUE not in self._deadlines:   # already answered: the ACCEPT was lost
                self._send(peer, MsgType.ACCEPT)
        elif not self._may_lead(peer):
            self._refuse(peer)
        elif now < self._refuse_until:
            if self._candidate is not None and peer < self._candidate:
                # concurrent candidates: move our vote to the lower name, and say so
                self._refuse(self._candidate)
                self._to_accept(peer, now)
            else:
                self._refuse(peer)
        else:
            self._to_accept(peer, now)

    def _h_vote_expired(self, peer: str, now: float, rank: int, target: str | None) -> None:
        self._to_noleader(now)

    def _h_count_vote(self, peer: str, now: float, rank: int, target: str | None) -> None:
        self._votes.add(peer)

    def _h_lost(self, peer: str, now: float, rank: int, target: str | None) -> None:
        self._log("election", phase="lost", peer=peer, votes=len(self._votes))
        self._to_noleader(now)

    def _h_rival(self, peer: str, now: float, rank: int, target: str | None) -> None:
        if peer < self.name and self._may_lead(peer):
            self._log("election", phase="yielded", peer=peer, votes=len(self._votes))
            self._to_accept(peer, now)      # the lower name stands; we vote for it
        else:
            self._refuse(peer)

    def _h_resend_election(self, peer: str, now: float, rank: int, target: str | None) -> None:
        # Another copy: one lost ELECTION or one lost answer must not let a candidate
        # win against a live master (the pre-vote rule in the module docstring).
        self._copies_left -= 1
        self._arm_resend(now)
        self._bcast(MsgType.ELECTION)

    def _h_won(self, peer: str, now: float, rank: int, target: str | None) -> None:
        self._to_leader(now)
        self._bcast(MsgType.MASTERUP)
        self._log("election", phase="won", peer=self.name, votes=len(self._votes))

    def _h_from_master(self, peer: str, now: float, rank: int, target: str | None) -> None:
        if peer == self.master:
            self.last_from_master = now
            self._arm_follow(now)
        elif self._may_lead(peer):
            # Two masters: tell ours about the other one and wait for it to resolve.
            self.state = State.CONSISTENCY
            self._send(self.master, MsgType.CONFLICT, target=peer)
            self._deadlines = {Ev.TIMEOUT: now + 4.0 * self.reply_wait_s}
            self._log("conflict", peer=peer, detail=f"second master; told {self.master}")

    def _h_announce(self, peer: str, now: float, rank: int, target: str | None) -> None:
        if peer == self.master:
            # Our own master announcing itself to non-followers: it purged us (our replies
            # were lost).  Rejoin, or we stay unsynchronized until a lost MASTERUP makes
            # us stand against a live master.
            self._send(peer, MsgType.SLAVEUP)
        self._h_from_master(peer, now, rank, target)

    def _h_follower_vote(self, peer: str, now: float, rank: int, target: str | None) -> None:
        if peer == self.master or now - self.last_from_master > self.cfg.master_timeout_min_s:
            self._h_vote(peer, now, rank, target)
        else:
            self._refuse(peer)   # our master is alive: we heard it within master_timeout_min_s

    def _h_master_lost(self, peer: str, now: float, rank: int, target: str | None) -> None:
        self._cause = f"no word from master {self.master}"
        self.master = None
        self._h_stand(peer, now, rank, target)

    def _h_recheck(self, peer: str, now: float, rank: int, target: str | None) -> None:
        if peer == self.master:
            self.state = State.FOLLOWER
            self.last_from_master = now
            self._arm_follow(now)

    def _h_reask(self, peer: str, now: float, rank: int, target: str | None) -> None:
        self._to_start(now)

    def _h_ack_request(self, peer: str, now: float, rank: int, target: str | None) -> None:
        self._send(peer, MsgType.MASTERACK, rank=self._rank(now))

    def _h_other_master(self, peer: str, now: float, rank: int, target: str | None) -> None:
        other = target if target is not None else peer
        if other == self.name or not self._may_lead(other):
            return
        self.state = State.CONFLICT
        self._contenders = {}
        if target is None:
            self._contenders[other] = -1       # rank unknown until it answers RESOLVE
        self._bcast(MsgType.RESOLVE, rank=self._rank(now))
        self._deadlines = {Ev.TIMEOUT: now + self.reply_wait_s}
        self._log("resolve", peer=other, detail="another master; broadcast RESOLVE")

    def _h_answer_resolve(self, peer: str, now: float, rank: int, target: str | None) -> None:
        self._send(peer, MsgType.MASTERACK, rank=self._rank(now))
        if self.state is State.CONFLICT:
            self._contenders[peer] = rank

    def _h_contender(self, peer: str, now: float, rank: int, target: str | None) -> None:
        if self._may_lead(peer):
            self._contenders[peer] = max(rank, self._contenders.get(peer, -1))

    def _h_quit(self, peer: str, now: float, rank: int, target: str | None) -> None:
        if not self._may_lead(peer):
            return
        if self.state is State.CONFLICT and beats(self._rank(now), self.name, rank, peer):
            return   # simultaneous resolution: we win, our own QUIT goes out on TIMEOUT
        self._log("quit", peer=peer, detail="stepping down")
        self._to_follower(peer, now)
        self._send(peer, MsgType.SLAVEUP)

    def _h_resolve(self, peer: str, now: float, rank: int, target: str | None) -> None:
        mine = self._rank(now)
        best_name, best_rank = self.name, mine
        for other, r in sorted(self._contenders.items()):
            if r >= 0 and beats(r, other, best_rank, best_name):
                best_name, best_rank = other, r
        if best_name != self.name:
            self._log("quit", peer=best_name, detail=f"stepping down (rank {mine} vs {best_rank})")
            self._to_follower(best_name, now)
            self._send(best_name, MsgType.SLAVEUP)
            return
        for other, r in sorted(self._contenders.items()):
            # also to a contender whose rank never arrived: under loss its answer may be
            # what was lost, and a dead one ignores the QUIT
            self._send(other, MsgType.QUIT, rank=mine)
            self._log("quit", peer=other, detail=f"sent QUIT (rank {mine} vs {r if r >= 0 else 'unknown'})")
        self._to_leader_keep(now)
        self._bcast(MsgType.MASTERUP)

    def _to_leader_keep(self, now: float) -> None:
        self.state, self.master = State.LEADER, self.name
        if self.master_since is None:
            self.master_since = now
        self._deadlines = {}
