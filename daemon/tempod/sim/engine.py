"""Deterministic discrete-event simulator: N real ``Node`` cores, simulated clocks and network.

This module owns the event loop (a heap ordered by *true* time), the simulated network
(delay = base + uniform jitter, loss, partitions), crashes/restarts, pauses and the
invariant checks.  It runs ``node.Node`` unchanged: every node has a hardware clock
(``clocks.SimClock``: offset, rate, optional wander) and a software clock
(``discipline.SoftwareClock``); a node's deadlines (hardware seconds) become true times
with the exact inverse ``SimClock.true_at``.  All randomness comes from one seed,
split per component (one ``random.Random`` per node, one for the network, one for the
faults), so the same ``SimConfig`` gives the same result.  It must not know the
election's or the round's rules: it only reads ``Log`` actions and node state.

Invariants (each reports pass/fail and the first violation with seed and time):

* ``one_master``: once ``settle_s`` (scenario.settle_s) has passed since the last fault
  change, every connected component that has an eligible live node has exactly one
  master (LEADER or CONFLICT) -- at most one, and not none (no stuck state).
* ``monotonic``: a node incarnation's corrected clock never runs backwards (checked at
  every read the simulator makes, i.e. at every event the node handles).  A restarted
  node starts a fresh software clock; that is a new incarnation.
* ``stable_master``: no master change without a fault -- once ``settle_s`` has passed
  since the start and since the last fault change, no node becomes master (enters
  LEADER or CONFLICT from another state).  Background loss (``loss``) is not a fault:
  a run with loss and no fault keeps its first master for its whole length.
  Candidacies in that window are counted (``figures.spurious_candidacies``): they are
  allowed, winning one is not.
* ``post_sync_skew``: after a converged round (the master's term has run
  ``converged_after_rounds`` rounds with the same group members and neither this
  round nor the previous one
  corrected a group member by more than ``converged_corr_s``), once the corrections are absorbed, the true-time
  skew between any two group members' corrected clocks is <= b_i + b_j + residual,
  where b = the offset bounds (rtt/2) of the two worst members (0 for the master) and
  residual = ``residual_ppm`` x (time since the measurement).
"""

from __future__ import annotations

import heapq
import math
import random
import time
from dataclasses import dataclass, field

from .. import wire
from ..actions import Broadcast, Log, Reply, Send
from ..clocks import SimClock
from ..cristian import make_core
from ..discipline import SoftwareClock
from ..election import State
from ..facts import checker, history
from ..node import PASSIVE_TYPES, Node  # the type of SimNode.node (or a cristian.CristianNode)
from ..nodeconfig import NodeConfig
from .scenario import SimConfig

_DELIVER, _TIMER, _FAULT, _SAMPLE, _CHECK, _BDELIVER = 0, 1, 2, 3, 4, 5
_LEADING = tuple(State(s) for s in sorted(history.MASTER_STATES))   # LEADER, CONFLICT


@dataclass(slots=True)
class SimNode:
    idx: int
    name: str
    cfg: NodeConfig
    hw: SimClock
    sw: SoftwareClock
    node: Node
    rng: random.Random
    alive: bool = False                 # becomes True at its boot event
    paused: bool = False
    gen: int = 0                        # incarnation (restarts)
    timer_t: float | None = None        # true time of the scheduled timer event
    timer_hw: float = 0.0
    last_clk: float = -math.inf
    backlog: list = field(default_factory=list)
    # Passive deliveries (``Node.passive``: heartbeats from its master) kept out of the
    # event queue: (true time, seq, msg, src), handed over before the node's next event.
    held: list = field(default_factory=list)
    held_sorted: bool = True            # False once one arrived before an earlier-held one
    holds: bool = False                 # this incarnation may hold at all (see _can_hold)
    hold_ok: bool = False               # ... and may now: set after each of its events
    # hw = lin_h0 + lin_k * (true - lin_e) when the clock has no wander (lin = True): the
    # exact expression SimClock.read/true_at evaluate, without a method call per event.
    lin: bool = False
    lin_h0: float = 0.0
    lin_k: float = 1.0
    lin_e: float = 0.0


def _cache_linear(sn: SimNode) -> None:
    """Cache the hardware clock's line when it has no wander (``SimClock.read`` is then
    ``(epoch + offset) + (1 + rate) * (true - epoch)``).  Checked against ``read`` and
    ``true_at`` so that a change of SimClock's arithmetic falls back to the method calls
    instead of silently changing results."""
    hw = sn.hw
    if hw.wander != 0.0:
        return
    h0, k, e = hw.epoch_s + hw.offset_s, 1.0 + hw.rate_ppm * 1e-6, hw.epoch_s
    for x in (-1.5, 0.0, 0.123456789, 1234.5678, 98765.4321):
        if h0 + k * (x - e) != hw.read(x) or e + (x - h0) / k != hw.true_at(x):
            return
    sn.lin, sn.lin_h0, sn.lin_k, sn.lin_e = True, h0, k, e


def _pct(sorted_vals: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an ascending list (q in [0, 100])."""
    if not sorted_vals:
        return None
    k = max(0, min(len(sorted_vals) - 1, math.ceil(q / 100.0 * len(sorted_vals)) - 1))
    return sorted_vals[k]


class Simulation:
    def __init__(self, sc: SimConfig) -> None:
        self.sc = sc
        self.cfgs = sc.node_configs()
        base = self.cfgs[0]
        self.settle_s = sc.settle_s(base)
        self.plan = sc.fault_plan(base)
        root = random.Random(sc.seed)
        self.net_rng = random.Random(root.getrandbits(64))
        self.fault_rng = random.Random(root.getrandbits(64))
        self.delay_s = sc.delay_ms / 1000.0
        self.jitter_s = sc.jitter_ms / 1000.0
        self.loss = sc.loss
        self._wire = sc.wire
        self._encode = wire.encode
        self.index = {c.name: i for i, c in enumerate(self.cfgs)}
        self.addrs = [(c.address, c.tsp_port) for c in self.cfgs]
        self.comp: list[int] = [0] * sc.nodes    # partition component of each node
        self.nodes: list[SimNode] = []
        self.heap: list[tuple] = []
        self._seq = 0
        self.t = 0.0
        for i, cfg in enumerate(self.cfgs):
            crng = random.Random(root.getrandbits(64))
            hw = SimClock(offset_s=crng.uniform(-sc.offset_max_s, sc.offset_max_s),
                          rate_ppm=crng.uniform(-sc.drift_ppm, sc.drift_ppm),
                          wander_ppm_per_sqrt_s=sc.wander_ppm_per_sqrt_s,
                          seed=crng.getrandbits(32), wander_step_s=10.0)
            nrng = random.Random(root.getrandbits(64))
            sn = SimNode(i, cfg.name, cfg, hw, self._new_sw(cfg), None, nrng)  # type: ignore[arg-type]
            _cache_linear(sn)
            self.nodes.append(sn)
        # Stagger boots over the first second so that startup is not a synchronized burst.
        for sn in self.nodes:
            self._push(root.uniform(0.0, 1.0), _FAULT, sn.idx, ("boot", None))
        # results
        self.leaders: set[int] = set()
        self.state_log: list[tuple[float, str, str, str]] = []
        self.rounds: list[dict] = []
        self.msgs_sent = 0
        self.msgs_dropped = 0
        self.post_skews: list[float] = []
        self.between_skews: list[float] = []
        self.violations: dict[str, dict | None] = {"one_master": None, "monotonic": None,
                                                   "stable_master": None, "post_sync_skew": None}
        self.checks = {"one_master": 0, "monotonic": 0, "stable_master": 0, "post_sync_skew": 0}
        # (time, seq) of each first violation: held deliveries are handled after events
        # that come later in the queue, so "first" is the smallest key, not the first seen
        self._vkeys: dict[str, tuple[float, int]] = {}
        self._key_seq = 0                   # seq of the event being handled
        self._held_events = 0               # held deliveries handed over (events, clock checks)
        self.spurious_candidacies = 0
        self.spurious_master_changes = 0
        self.fault_log: list[dict] = []
        self.last_change = 0.0
        self.term_rounds: dict[str, int] = {}
        self.stable_rounds: dict[str, int] = {}
        self.last_group: dict[str, frozenset] = {}
        self.last_maxc: dict[str, float] = {}
        self.round_count = 0
        for start, length, kind in self.plan:
            self._push(start, _FAULT, -1, (kind, length))
        # one_master is checked every half round interval
        self._push(base.round_interval_s / 2.0, _CHECK, -1, None)

    # --- helpers --------------------------------------------------------------------

    def _new_sw(self, cfg: NodeConfig) -> SoftwareClock:
        return SoftwareClock(cfg.slew_max_ppm, cfg.step_threshold_s, cfg.freq_max_ppm)

    def _push(self, t: float, kind: int, idx: int, payload: object) -> None:
        self._seq += 1
        heapq.heappush(self.heap, (t, self._seq, kind, idx, payload))

    def _violate(self, inv: str, detail: str, key: tuple[float, int] | None = None) -> None:
        if key is None:
            key = (self.t, self._key_seq)
        old = self._vkeys.get(inv)
        if old is None or key < old:
            self._vkeys[inv] = key
            self.violations[inv] = {"seed": self.sc.seed, "t": round(key[0], 6), "detail": detail}

    def _read(self, sn: SimNode) -> float:
        """hw at the current true time, with the never-backwards check on the clk."""
        hw = sn.lin_h0 + sn.lin_k * (self.t - sn.lin_e) if sn.lin else sn.hw.read(self.t)
        clk = sn.sw.corrected(hw)
        self.checks["monotonic"] += 1
        if clk < sn.last_clk:
            self._violate("monotonic", f"{sn.name} clk {clk!r} < earlier {sn.last_clk!r}")
        sn.last_clk = clk
        return hw

    def _reschedule(self, sn: SimNode) -> None:
        self._arm(sn, sn.node.next_deadline())

    def _arm(self, sn: SimNode, d: float | None) -> None:
        """Make sure a TIMER event fires at the true time of hw deadline ``d``."""
        if d is None:
            sn.timer_t = None
            return
        if sn.timer_t is not None and d >= sn.timer_hw:
            # Lazy re-arming: the queued event fires no later than needed and the TIMER
            # branch re-arms if the deadline moved later.  A follower's loss timer moves
            # at every PROBE; pushing a heap event each time was ~1/3 of the heap traffic.
            return
        tt = sn.lin_e + (d - sn.lin_h0) / sn.lin_k if sn.lin else sn.hw.true_at(d)
        if tt < self.t:
            tt = self.t
        if tt != sn.timer_t:
            sn.timer_t = tt
            sn.timer_hw = d
            self._push(tt, _TIMER, sn.idx, sn.gen)

    # --- held (passive) deliveries -------------------------------------------------------
    #
    # With the default 0.2 s heartbeat a 1,000-node group carries 5,000 HEARTBEATs per
    # second, 5x the datagrams of its rounds; a follower's only reaction is to move its
    # master-loss deadline (``Node.passive``).  Such a delivery is not pushed into the
    # heap: it waits in the receiver's ``held`` list and is handed to ``handle_message``,
    # with the clock read and never-backwards check it would have had, right before the
    # receiver's next event (or the end of the run), in (time, seq) order.  Nothing else
    # can tell: a passive message changes only the receiver's own loss deadline and rx
    # counter, which only the receiver's own events read, and it never re-arms the timer
    # (the deadline moves later).  Whatever makes it non-passive is an event of that
    # receiver (a message, its timer, a fault aimed at it); after each one the remaining
    # held deliveries are checked again and those no longer passive go into the heap
    # with their original keys.  Seq numbers are drawn as before, so every other event
    # keeps its key.  Only nodes with a linear clock hold (hw is then non-decreasing in
    # float arithmetic), and not in wire mode (which decodes every datagram on arrival).

    def _can_hold(self, sn: SimNode, d: float | None) -> bool:
        """May deliveries to ``sn`` be held now (``d``: its ``next_deadline()``)?  The
        queued timer event must stay the one the node needs: a passive delivery moves
        the deadline later, so the engine would not re-arm it."""
        return (sn.holds and sn.alive and not sn.paused and sn.timer_t is not None
                and d is not None and sn.timer_hw <= d)

    def _flush(self, sn: SimNode, t: float, s: float) -> None:
        """Hand over ``sn``'s held deliveries with a (time, seq) key before (t, s)."""
        held = sn.held
        if not sn.held_sorted:
            held.sort()      # keys are unique; out of order only when jitter > heartbeat interval
            sn.held_sorted = True
        corrected = sn.sw.corrected
        h0, k, e = sn.lin_h0, sn.lin_k, sn.lin_e
        n = 0
        for th, sh, msg, _src in held:
            if th > t or (th == t and sh > s):
                break
            n += 1
            hw = h0 + k * (th - e)
            clk = corrected(hw)       # the read and check each delivery had in the heap
            if clk < sn.last_clk:
                self._violate("monotonic", f"{sn.name} clk {clk!r} < earlier {sn.last_clk!r}", (th, sh))
            sn.last_clk = clk
        if n:
            # all from the node's master (passive) and nothing in between: the last decides
            sn.node.handle_passive(held[n - 1][2], hw, n)
            del held[:n]
            self._held_events += n

    def _touched(self, sn: SimNode, d: float | None) -> None:
        """After an event of ``sn`` (``d``: its ``next_deadline()`` now)."""
        sn.hold_ok = self._can_hold(sn, d)
        if sn.held:
            self._requeue(sn)

    def _requeue(self, sn: SimNode) -> None:
        """Held deliveries that are no longer passive go into the heap with their keys."""
        keep = []
        passive = sn.node.passive if sn.hold_ok else None
        for e in sn.held:
            if passive is not None and passive(e[2]):
                keep.append(e)
            else:
                heapq.heappush(self.heap, (e[0], e[1], _DELIVER, sn.idx, (e[2], e[3])))
        sn.held = keep

    # --- actions ----------------------------------------------------------------------

    def _route(self, src: SimNode, actions: list) -> None:
        # Loop invariants hoisted: a master's heartbeat is one list of N-1 Sends (5 per
        # second at 1,000 nodes).  Nothing in here changes loss, partitions or the time.
        si = src.idx
        comp = self.comp
        ci = comp[si]
        loss = self.loss
        rnd = self.net_rng.random
        jit = self.jitter_s
        delay = self.delay_s
        now = self.t
        index = self.index
        nodes = self.nodes
        heap = self.heap
        push = heapq.heappush
        encode = self._encode if self._wire else None
        seq = self._seq
        sent = dropped = 0
        for a in actions:
            ta = type(a)
            if ta is Send:
                # one datagram (a round is ~10 per follower): loss, partition, delay + jitter
                sent += 1
                j = index[a.to]
                if comp[j] != ci or (loss and rnd() < loss):
                    dropped += 1
                    continue
                msg = a.msg
                payload = msg if encode is None else encode(msg)
                tt = now + (delay + (jit * rnd() if jit else 0.0))
                seq += 1
                if msg.type in PASSIVE_TYPES:
                    tgt = nodes[j]
                    if tgt.hold_ok and tgt.node.passive(msg):
                        held = tgt.held
                        if held and held[-1][0] > tt:
                            tgt.held_sorted = False
                        held.append((tt, seq, payload, si))
                        continue
                push(heap, (tt, seq, _DELIVER, j, (payload, si)))
            elif ta is Broadcast:
                self._seq = seq
                self._broadcast(src, a.msg)
                seq = self._seq
            elif ta is Log:
                self._seq = seq
                self._log(src, a)      # may queue skew samples
                seq = self._seq
            elif ta is Reply:
                pass   # no control clients in the simulation
        self._seq = seq
        self.msgs_sent += sent
        self.msgs_dropped += dropped

    def _broadcast(self, src: SimNode, msg: wire.Message) -> None:
        """A Send to every other node, with the loop's invariants hoisted: the startup
        is N broadcasts of MASTERREQ, N^2 datagrams (1 M at 1,000 nodes).

        The deliveries go into the heap one at a time: they are drawn (loss, jitter, seq)
        exactly as N separate sends would be, sorted by (time, seq), and only the earliest
        is pushed; popping it pushes the next (a k-way merge, see ``run``).  The global
        order of events is the same as pushing all of them -- (time, seq) keys are unique
        -- but the heap holds one entry per broadcast instead of N, which at startup keeps
        it at ~1,000 entries instead of ~1,000,000 (heappop cost grows with its depth)."""
        i = src.idx
        comp = self.comp
        ci = comp[i]
        loss = self.loss
        rnd = self.net_rng.random
        jit = self.jitter_s
        base = self.t + self.delay_s
        payload = self._encode(msg) if self._wire else msg
        seq = self._seq
        sent = dropped = 0
        todo = []
        add = todo.append
        for j in range(len(comp)):
            if j == i:
                continue
            sent += 1
            if comp[j] != ci or (loss and rnd() < loss):
                dropped += 1
                continue
            seq += 1
            add((base + (jit * rnd() if jit else 0.0), seq, j))
        self._seq = seq
        self.msgs_sent += sent
        self.msgs_dropped += dropped
        if todo:
            todo.sort()
            t0, s0, j0 = todo[0]
            heapq.heappush(self.heap, (t0, s0, _BDELIVER, j0, (payload, i, todo, 0)))

    def _log(self, sn: SimNode, a: Log) -> None:
        ev = a.event
        if ev == "state":
            f = a.fields
            self.state_log.append((self.t, sn.name, f["from"], f["to"]))
            quiet = self.t > self.settle_s and self.t - self.last_change > self.settle_s
            if quiet and f["to"] == "CANDIDATE":
                self.spurious_candidacies += 1
            if f["to"] in history.MASTER_STATES:
                if f["from"] not in history.MASTER_STATES:
                    if quiet:
                        self.spurious_master_changes += 1
                        self._violate("stable_master", f"{sn.name} became master ({f['cause']}) "
                                      f"{self.t - self.last_change:.3f} s after the last fault change")
                    self.term_rounds[sn.name] = 0
                    self.last_maxc.pop(sn.name, None)
                self.leaders.add(sn.idx)
            else:
                self.leaders.discard(sn.idx)
        elif ev == "round":
            self.round_count += 1
            self.term_rounds[sn.name] = self.term_rounds.get(sn.name, 0) + 1
            rec = {"t": self.t, "master": sn.name, "round": a.fields["round"],
                   "n": len(a.fields["followers"]), "term_round": self.term_rounds[sn.name]}
            self.rounds.append(rec)
            if self.sc.sample_skew:
                self._plan_skew_samples(sn, a.fields)

    def _plan_skew_samples(self, sn: SimNode, f: dict) -> None:
        cfg = sn.cfg
        thr = cfg.step_threshold_s
        settle = 0.0
        members = [sn.idx]
        worst = [0.0, 0.0]
        for row in f["followers"]:
            if not row["in_group"] or row["kind"] != "adjtime":
                continue
            c = row["correction_s"]
            # time for the follower's discipline to absorb the correction (see discipline.py)
            s = 0.0 if c > thr else (abs(c) / 0.5 if c < -thr else abs(c) / (cfg.slew_max_ppm * 1e-6))
            settle = max(settle, s)
            members.append(self.index[row["name"]])
            worst = sorted(worst + [row["bound_s"]])[-2:]
        mc = f["master_correction_s"]
        settle = max(settle, abs(mc) / (cfg.slew_max_ppm * 1e-6) if abs(mc) <= thr else abs(mc) / 0.5)
        settle += 4.0 * (self.delay_s + self.jitter_s) + 0.01
        # Converged: the term has run a few rounds and neither this nor the previous
        # round had to correct anyone by more than converged_corr_s (a large correction
        # means the frequency loops are still learning and the skew bound does not hold).
        maxc = max([abs(mc)] + [abs(r["correction_s"]) for r in f["followers"]
                                if r["in_group"] and r["kind"] == "adjtime"])
        prev = self.last_maxc.get(sn.name, math.inf)
        self.last_maxc[sn.name] = maxc
        # ... and the group has had the same members for that many rounds (a partition
        # or a join changes the average the frequency loops are converging to).
        group = frozenset(members)
        if self.last_group.get(sn.name) == group:
            self.stable_rounds[sn.name] = self.stable_rounds.get(sn.name, 0) + 1
        else:
            self.stable_rounds[sn.name] = 1
        self.last_group[sn.name] = group
        converged = (min(self.term_rounds[sn.name], self.stable_rounds[sn.name]) > self.sc.converged_after_rounds
                     and max(maxc, prev) <= self.sc.converged_corr_s)
        if len(members) < 2 or settle > 0.5 * cfg.round_interval_s:
            return
        info = (sn.name, members, worst[0] + worst[1], self.t - f["duration_s"], converged, self.t)
        self._push(self.t + settle, _SAMPLE, sn.idx, ("post",) + info)
        self._push(self.t + 0.95 * cfg.round_interval_s - f["duration_s"], _SAMPLE, sn.idx,
                   ("between",) + info)

    # --- events -----------------------------------------------------------------------

    def _boot(self, sn: SimNode) -> None:
        assert not sn.held         # handed over or queued when it died
        sn.alive, sn.paused = True, False
        sn.gen += 1
        sn.sw = self._new_sw(sn.cfg)
        sn.last_clk = -math.inf
        sn.timer_t = None
        sn.backlog = []
        # the protocol's core (SimConfig.protocol); Cristian's time server is the first node
        sn.node = make_core(sn.cfg, sn.sw, sn.rng, sn.hw.read(self.t), self.sc.protocol, self.cfgs[0].name)
        # a core without the predicate (cristian) never holds
        sn.holds = sn.lin and not self._wire and getattr(sn.node, "passive", None) is not None
        self._reschedule(sn)

    def _fault(self, kind: str, arg: object) -> None:
        self.last_change = self.t
        nodes = self.nodes
        live = [sn for sn in nodes if sn.alive and not sn.paused]
        masters = [sn for sn in live if sn.node.state in _LEADING]
        target = masters[0] if masters else (self.fault_rng.choice(live) if live else None)
        rec = {"t": round(self.t, 6), "kind": kind, "phase": "start",
               "target": target.name if target else None, "had_master": bool(masters)}
        if target is not None and target.held:
            self._flush(target, self.t, self._key_seq)
        length = float(arg)  # type: ignore[arg-type]
        if kind == "kill" and target is not None:
            target.alive = False
            self.leaders.discard(target.idx)
            self._push(self.t + length, _FAULT, target.idx, ("restart", None))
        elif kind == "stop" and target is not None:
            target.paused = True
            self._push(self.t + length, _FAULT, target.idx, ("resume", None))
        elif kind == "partition":
            # The master with a minority: the majority side must elect its own master.
            others = [sn.idx for sn in nodes if sn is not target]
            self.fault_rng.shuffle(others)
            k = (len(nodes) - 1) // 2          # minority size, the master included
            minority = set(others[: max(k - 1, 0)])
            if target is not None:
                minority.add(target.idx)
            self.comp = [1 if i in minority else 0 for i in range(len(nodes))]
            rec["minority"] = sorted(nodes[i].name for i in minority)
            self._push(self.t + length, _FAULT, -1, ("heal", None))
        elif kind == "loss":
            self.loss = self.sc.fault_loss
            self._push(self.t + length, _FAULT, -1, ("loss-end", None))
        if target is not None:
            self._touched(target, self._deadline_if_live(target))
        self.fault_log.append(rec)

    @staticmethod
    def _deadline_if_live(sn: SimNode) -> float | None:
        return sn.node.next_deadline() if sn.alive and not sn.paused else None

    def _fault_end(self, kind: str, sn: SimNode | None) -> None:
        self.last_change = self.t
        if kind == "restart" and sn is not None:
            self._boot(sn)
        elif kind == "resume" and sn is not None:
            assert not sn.held     # queued when it paused
            sn.paused = False
            sn.timer_t = None      # its timer event fired (and was skipped) while paused
            hw = self._read(sn)
            backlog, sn.backlog = sn.backlog, []
            for payload, src in backlog:
                self._deliver(sn, payload, src, hw)
            if sn.alive:
                self._route(sn, sn.node.handle_timer(hw))
                self._reschedule(sn)
        elif kind == "heal":
            self.comp = [0] * len(self.nodes)
        elif kind == "loss-end":
            self.loss = self.sc.loss
        if sn is not None:
            self._touched(sn, self._deadline_if_live(sn))
        # recorded as the end of its fault (one vocabulary: kill/stop/partition/loss, start/end)
        self.fault_log.append({"t": round(self.t, 6), "kind": history.CLOSES[kind], "phase": "end",
                               "target": sn.name if sn else None})

    def _deliver(self, sn: SimNode, payload: object, src: int, hw: float) -> None:
        msg = wire.decode(payload) if self.sc.wire else payload  # type: ignore[arg-type]
        acts = sn.node.handle_message(msg, self.addrs[src], hw)
        if acts:
            self._route(sn, acts)

    def _check_masters(self) -> None:
        ri = self.cfgs[0].round_interval_s
        self._push(self.t + ri / 2.0, _CHECK, -1, None)
        if self.t - self.last_change < self.settle_s:
            return
        self.checks["one_master"] += 1
        self.checks["stable_master"] += 1    # one more half round without a master change
        if self.sc.protocol == "cristian" and self.sc.sample_skew:
            self._sample_cristian()
        comps: dict[int, list[SimNode]] = {}
        for sn in self.nodes:
            if sn.alive and not sn.paused:
                comps.setdefault(self.comp[sn.idx], []).append(sn)
        for c, members in comps.items():
            leaders = [sn.name for sn in members if sn.node.state in _LEADING]
            eligible = any(sn.cfg.master_eligible for sn in members)
            if len(leaders) > 1:
                self._violate("one_master", f"component {c}: masters {leaders}")
            elif eligible and not leaders and self.sc.protocol == "berkeley":
                # Cristian has no election: a dead time server leaves no master, by design
                self._violate("one_master", f"component {c}: no master (stuck)")

    def _sample_cristian(self) -> None:
        """Cristian has no rounds: the skew of the live nodes that have been corrected at
        least once (and the server) at every check, as between-rounds skew.  Clients of a
        dead server count: drifting apart is what the protocol does then."""
        clks = []
        for sn in self.nodes:
            if sn.alive and not sn.paused and sn.node.clock_synced:
                clks.append(sn.sw.corrected(sn.hw.read(self.t)))
        if len(clks) >= 2:
            self.between_skews.append(max(clks) - min(clks))

    def _sample(self, payload: tuple) -> None:
        phase, master, members, bound_sum, measured_t, converged, round_t = payload
        m = self.nodes[self.index[master]]
        if not (m.alive and not m.paused and m.node.state is State.LEADER):
            return
        clks = []
        for i in members:
            sn = self.nodes[i]
            if not sn.alive or sn.paused:
                continue
            if i != m.idx:
                # Only followers that applied this round's correction (it may be lost).
                last = sn.node.last_sync_hw
                if (sn.node.state is not State.FOLLOWER or sn.node.master != master
                        or last is None or last < sn.hw.read(round_t)):
                    continue
            clks.append(sn.sw.corrected(sn.hw.read(self.t)))
        if len(clks) < 2:
            return
        skew = max(clks) - min(clks)
        if not converged:
            return
        if phase == "post":
            self.post_skews.append(skew)
            self.checks["post_sync_skew"] += 1
            bound = bound_sum + self.sc.residual_ppm * 1e-6 * (self.t - measured_t)
            if skew > bound:
                self._violate("post_sync_skew", f"master {master}: skew {skew:.3e} s > bound {bound:.3e} s")
        else:
            self.between_skews.append(skew)

    # --- run --------------------------------------------------------------------------

    def run(self) -> dict:
        wall0 = time.perf_counter()
        self._cpu0 = time.process_time()   # CPU time: comparable on a machine shared with others
        end = self.sc.duration_s
        heap = self.heap
        nodes = self.nodes
        pop = heapq.heappop
        push = heapq.heappush
        addrs = self.addrs
        wire_mode = self._wire
        decode = wire.decode
        mono = 0
        events = 0
        while heap and heap[0][0] <= end:
            t, _s, kind, idx, payload = pop(heap)
            events += 1
            self.t = t
            self._key_seq = _s
            if kind <= 0 or kind == _BDELIVER:
                if kind == _BDELIVER:
                    # next delivery of the same broadcast (see _broadcast)
                    msg, src, todo, k = payload
                    k += 1
                    if k < len(todo):
                        tk, sk, jk = todo[k]
                        push(heap, (tk, sk, _BDELIVER, jk, (msg, src, todo, k)))
                else:
                    msg, src = payload
                sn = nodes[idx]
                if sn.held:
                    self._flush(sn, t, _s)
                if not sn.alive:
                    continue
                if sn.paused:
                    if len(sn.backlog) < 256:     # a socket buffer's worth; the rest is lost
                        sn.backlog.append((msg, src))
                    continue
                # inlined _read + _deliver + _reschedule (the hot path: one per datagram)
                hw = sn.lin_h0 + sn.lin_k * (t - sn.lin_e) if sn.lin else sn.hw.read(t)
                clk = sn.sw.corrected(hw)
                if clk < sn.last_clk:
                    self._violate("monotonic", f"{sn.name} clk {clk!r} < earlier {sn.last_clk!r}")
                sn.last_clk = clk
                mono += 1
                if wire_mode:
                    msg = decode(msg)
                node = sn.node
                acts = node.handle_message(msg, addrs[src], hw)
                if acts:
                    self._route(sn, acts)
                d = node.next_deadline()
                if d is None:
                    sn.timer_t = None
                elif sn.timer_t is None or d < sn.timer_hw:
                    self._arm(sn, d)
                # == self._touched(sn, d), inlined (alive and not paused here)
                sn.hold_ok = sn.holds and sn.timer_t is not None and d is not None and sn.timer_hw <= d
                if sn.held:
                    self._requeue(sn)
            elif kind == _TIMER:
                sn = nodes[idx]
                if sn.held:
                    self._flush(sn, t, _s)
                if not sn.alive or sn.paused or payload != sn.gen or t != sn.timer_t:
                    continue
                sn.timer_t = None
                hw = self._read(sn)
                d = sn.node.next_deadline()
                if d is None:
                    pass
                elif d > sn.timer_hw:    # the deadline moved later since this was queued
                    self._arm(sn, d)     # (== _reschedule: nothing changed since d was read)
                else:
                    if hw < d:
                        hw = d         # float round-off of true_at/read: never early
                    acts = sn.node.handle_timer(hw)
                    if acts:
                        self._route(sn, acts)
                    d = sn.node.next_deadline()
                    self._arm(sn, d)
                self._touched(sn, d)
            elif kind == _SAMPLE:
                self._sample(payload)
            elif kind == _CHECK:
                self._check_masters()
            else:
                what, arg = payload
                if what == "boot":
                    self._boot(nodes[idx])
                elif idx >= 0 and what in ("restart", "resume"):
                    self._fault_end(what, nodes[idx])
                elif what in ("heal", "loss-end"):
                    self._fault_end(what, None)
                else:
                    self._fault(what, arg)
        for sn in nodes:          # held deliveries due by the end were events of the run
            if sn.held:
                self._flush(sn, end, math.inf)
        self.checks["monotonic"] += mono + self._held_events
        self.events = events + self._held_events
        wall = time.perf_counter() - wall0
        return self._summary(wall)

    # --- results ----------------------------------------------------------------------

    def _failovers(self) -> list[dict]:
        """Fault -> new master / first round of every fault but loss, by the one
        definition (``tempod.facts.checker``) over the trace as a history."""
        h = history.from_sim(self.state_log, self.rounds, self.fault_log, [c.name for c in self.cfgs])
        out = []
        for f, fo in checker.failovers(h):
            out.append({"kind": f.kind, "t": f.start, "old_master": fo.old_master,
                        "new_master": fo.new_master,
                        "to_new_master_s": None if fo.to_new_master_s is None else round(fo.to_new_master_s, 6),
                        "to_first_round_s": None if fo.to_first_round_s is None else round(fo.to_first_round_s, 6)})
        return out

    def _quiet_s(self) -> float:
        """Simulated seconds in which ``stable_master`` applied (settled, no fault)."""
        edges = sorted({0.0, self.sc.duration_s} | {float(r["t"]) for r in self.fault_log})
        out = 0.0
        for a, b in zip(edges, edges[1:]):
            out += max(0.0, b - (a + self.settle_s))
        return out

    def _summary(self, wall: float) -> dict:
        post = sorted(self.post_skews)
        between = sorted(self.between_skews)
        invariants = {k: {"ok": v is None, "checks": self.checks[k], "first_violation": v}
                      for k, v in self.violations.items()}
        sc = self.sc
        node_s = sc.nodes * sc.duration_s
        return {
            "config": {"nodes": sc.nodes, "duration_s": sc.duration_s, "seed": sc.seed,
                       "drift_ppm": sc.drift_ppm, "loss": sc.loss, "delay_ms": sc.delay_ms,
                       "jitter_ms": sc.jitter_ms, "round_interval_s": sc.round_interval_s,
                       "profile": sc.profile,
                       "heartbeat_interval_s": self.cfgs[0].heartbeat_interval_s,
                       "master_timeout_s": [self.cfgs[0].master_timeout_min_s, self.cfgs[0].master_timeout_max_s],
                       "faults": list(sc.faults), "wire": sc.wire, "settle_s": self.settle_s,
                       "protocol": sc.protocol},
            "ok": all(v is None for v in self.violations.values()),
            "invariants": invariants,
            "figures": {
                "post_sync_skew_s": {"n": len(post), "p50": _pct(post, 50), "p95": _pct(post, 95),
                                     "p99": _pct(post, 99), "max": post[-1] if post else None},
                "between_rounds_skew_max_s": between[-1] if between else None,
                "between_rounds_skew_p50_s": _pct(between, 50),
                "rounds": self.round_count,
                "messages": self.msgs_sent,
                "messages_dropped": self.msgs_dropped,
                "messages_per_round": (self.msgs_sent / self.round_count) if self.round_count else None,
                "failovers": self._failovers(),
                "spurious_candidacies": self.spurious_candidacies,
                "spurious_master_changes": self.spurious_master_changes,
                "quiet_s": self._quiet_s(),
            },
            "faults": self.fault_log,
            "perf": {"wall_s": wall, "node_seconds_per_wall_s": node_s / wall if wall > 0 else None,
                     "events": self.events, "cpu_s": time.process_time() - self._cpu0},
        }


def run(sc: SimConfig) -> dict:
    """Run one simulation and return its JSON-able summary (see ``Simulation``)."""
    return Simulation(sc).run()
