"""Deterministic synthetic run folders with known answers, for tests and benchmarks.

Owns a small model of a Berkeley group observed by the runner: each node has a drift
profile (hardware clock), a software adjustment that is set instantly at each round,
a master that may be killed (then a known detect / new-master / first-round schedule),
CPU counters that grow at a known percent of one core per role, and an observer that
sweeps the nodes at a fixed period.  It writes exactly the files of
docs/architecture.md "Run folder", through :mod:`tempolab.runschema`'s writers (the ones
the runner uses), and returns a :class:`Truth` with the numbers the
analysis must find.  It knows nothing about how the analysis computes them; the truth
comes from the model (e.g. the offsets it wrote for each node's first sample after a
round), never from the analysis code.

Everything is derived from ``SyntheticSpec.seed``: the same spec gives byte-identical
files.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from tempod.profile import DriftProfile, RateChange, dump_profile

from ..runschema import SCHEMA_VERSION, dump_jsonl, write_json

EPOCH_LEAD_S = 100.0  # profiles' epoch is this long before the run starts (hardware "powered on")


@dataclass(frozen=True)
class SyntheticSpec:
    nodes: int = 5
    seed: int = 1
    suite: str = "leader-kill"
    start_s: float = 1_795_000_000.0
    trials: int = 2                      # trial 1 is a baseline, later ones kill the master
    trial_s: float = 60.0
    kill_at_s: float = 25.5              # into each kill trial
    detect_after_s: float = 3.25         # kill -> first election candidate
    new_master_after_s: float = 3.75     # kill -> new master
    first_round_after_s: float = 4.6     # kill -> first round of the new master (off the sweep grid)
    round_interval_s: float = 10.0
    round_phase_s: float = 2.3           # first round this long after a trial starts
    round_duration_s: float = 0.05       # round start (master hw) -> corrections applied
    sweep_interval_s: float = 1.0
    sweep_gap_s: float = 0.002           # between two nodes of one observer sweep
    max_rate_ppm: float = 100.0
    initial_offset_s: float = 0.5        # hardware offsets uniform in +-this
    post_spread_s: float = 1e-4          # post-round offsets uniform in +-this
    obs_bound_s: float = 2e-5
    daemon_bound_s: float = 3e-5
    cpu_interval_s: float = 5.0
    cpu_report_interval_s: float = 10.0
    master_cpu_pct: float = 2.0
    follower_cpu_pct: float = 0.5
    baseline_cpu_pct: float = 0.01       # the node's PID 1 (sampler's idle baseline)
    # scale run: per-trial group size written to trials.jsonl (len == trials), and the
    # master's extra CPU per follower at that size (known per-follower cost)
    cluster_sizes: tuple[int, ...] | None = None
    master_cpu_per_follower_pct: float = 0.0
    # drift sweep: per-trial multiplier of every node's rate (len == trials), else None
    drift_levels_ppm: tuple[float, ...] | None = None
    write_profiles: bool = True


@dataclass
class Truth:
    """Known answers for a synthetic run."""

    post_skews_s: list[float] = field(default_factory=list)       # per round, max-min of first post samples
    pre_offsets: dict[tuple[int, str], float] = field(default_factory=dict)   # (round, node) -> last obs offset before
    post_offsets: dict[tuple[int, str], float] = field(default_factory=dict)  # (round, node) -> first obs offset after
    round_t_ref: dict[int, float] = field(default_factory=dict)
    failovers: list[dict[str, float | str | int]] = field(default_factory=list)
    cpu_pct_by_role: dict[str, float] = field(default_factory=dict)
    samples: int = 0
    rounds: int = 0
    trials: int = 0
    max_rate_ppm: float = 0.0
    node_names: list[str] = field(default_factory=list)


class _Model:
    def __init__(self, spec: SyntheticSpec):
        self.spec = spec
        self.rng = random.Random(spec.seed)
        self.names = [f"n{i + 1}" for i in range(spec.nodes)]
        epoch = spec.start_s - EPOCH_LEAD_S
        self.base_rate = {n: self.rng.uniform(-1.0, 1.0) for n in self.names}
        # the fastest-drifting node sits exactly at max_rate so rho is known
        self.base_rate[self.names[-1]] = 1.0
        self.profiles: dict[str, DriftProfile] = {}
        for n in self.names:
            off = self.rng.uniform(-spec.initial_offset_s, spec.initial_offset_s)
            if spec.drift_levels_ppm:
                levels = spec.drift_levels_ppm
                changes = tuple(
                    RateChange(EPOCH_LEAD_S + j * spec.trial_s, self.base_rate[n] * levels[j])
                    for j in range(1, len(levels))
                )
                rate0 = self.base_rate[n] * levels[0]
            else:
                changes, rate0 = (), self.base_rate[n] * spec.max_rate_ppm
            self.profiles[n] = DriftProfile(epoch, off, rate0, changes)
        self.adj = {n: 0.0 for n in self.names}
        self.alive = {n: True for n in self.names}
        self.joined = {n: False for n in self.names}
        self.master: str | None = self.names[0]
        self.believed_master: dict[str, str | None] = {n: self.names[0] for n in self.names}
        self.candidate: str | None = None
        self.pid = {n: 1000 + 10 * i for i, n in enumerate(self.names)}
        self.pid_start = {n: spec.start_s for n in self.names}
        self.cpu_cum = {n: 0.0 for n in self.names}       # cumulative utime+stime since pid start
        self.cpu_last_t = {n: spec.start_s for n in self.names}
        self.cpu_intervals: list[tuple[str, float, float]] = []  # (role at end, pct, dt)
        self.round_no = 0
        self.observer: list[dict[str, Any]] = []
        self.cpu: list[dict[str, Any]] = []
        self.faults: list[dict[str, Any]] = []
        self.trials: list[dict[str, Any]] = []
        self.events: dict[str, list[dict[str, Any]]] = {n: [] for n in self.names}
        self.truth = Truth(node_names=list(self.names))
        self.pending_post: dict[int, set[str]] = {}
        self.last_obs: dict[str, float] = {}
        self.round_nodes: dict[int, list[str]] = {}
        self.trial_no = 0
        self.sweep_no = 0
        self.fault_id = 0
        self.open_kill: dict[str, int] = {}

    # --- clock model -------------------------------------------------------------
    def offset(self, n: str, t: float) -> float:
        """Corrected clock - reference, seconds."""
        return self.profiles[n].offset_at(t) + self.adj[n]

    def role(self, n: str) -> str:
        return "master" if n == self.master else "follower"

    def cpu_pct(self, n: str) -> float:
        if n != self.master:
            return self.spec.follower_cpu_pct
        sizes = self.spec.cluster_sizes
        size = sizes[self.trial_no - 1] if sizes and self.trial_no >= 1 else self.spec.nodes
        return self.spec.master_cpu_pct + self.spec.master_cpu_per_follower_pct * (size - 1)

    def _accrue_cpu(self, n: str, t: float) -> None:
        # CPU time grows at the node's current role rate; called before any role change
        self.cpu_cum[n] += self.cpu_pct(n) / 100.0 * (t - self.cpu_last_t[n])
        self.cpu_last_t[n] = t

    def log(self, n: str, t: float, ev: str, **fields: Any) -> None:
        hw = self.profiles[n].hw_at(t)
        rec = {"ev": ev, "node": n, "hw": hw, "clk": hw + self.adj[n], "wall": hw}
        rec.update(fields)
        self.events[n].append(rec)

    def set_master(self, t: float, new: str | None) -> None:
        for n in self.names:
            if self.alive[n]:
                self._accrue_cpu(n, t)
        self.master = new

    # --- scheduled actions -------------------------------------------------------
    def sweep(self, t0: float) -> None:
        self.sweep_no += 1
        for idx, n in enumerate(self.names):
            t = t0 + idx * self.spec.sweep_gap_s
            rec: dict[str, Any] = {"t_ref": t, "trial": self.trial_no, "sweep": self.sweep_no, "node": n}
            if not self.alive[n]:
                rec.update(offset_s=None, bound_s=None, rtt_s=None, state="unreachable", master=None, stratum=None,
                           error="timeout")
            else:
                if n == self.master:
                    state, master, stratum = "LEADER", n, 1
                elif n == self.candidate:
                    state, master, stratum = "CANDIDATE", None, 16
                elif self.joined[n]:
                    state, master, stratum = "FOLLOWER", self.believed_master[n], 2
                else:
                    state, master, stratum = "START", None, 16
                off = self.offset(n, t)
                rec.update(offset_s=off, bound_s=self.spec.obs_bound_s, rtt_s=2 * self.spec.obs_bound_s,
                           state=state, master=master, stratum=stratum)
                self.last_obs[n] = off
                for rnd, waiting in self.pending_post.items():
                    if n in waiting:
                        self.truth.post_offsets[(rnd, n)] = off
                        waiting.discard(n)
            self.observer.append(rec)
            self.truth.samples += 1
        for rnd in [r for r, w in self.pending_post.items() if not w]:
            del self.pending_post[rnd]
            offs = [self.truth.post_offsets[(rnd, n)] for n in self.round_nodes[rnd] if (rnd, n) in self.truth.post_offsets]
            self.truth.post_skews_s.append(max(offs) - min(offs))

    def round(self, t: float) -> None:
        m = self.master
        if m is None or not self.alive[m]:
            return
        s = self.spec
        self.round_no += 1
        rnd = self.round_no
        members = [n for n in self.names if self.alive[n]]
        self.round_nodes[rnd] = members
        self.truth.round_t_ref[rnd] = t
        for n in members:
            if n in self.last_obs:
                self.truth.pre_offsets[(rnd, n)] = self.last_obs[n]
        t_apply = t + s.round_duration_s
        targets = {n: self.rng.uniform(-s.post_spread_s, s.post_spread_s) for n in members}
        corrections = {n: targets[n] - self.offset(n, t_apply) for n in members}
        followers = [
            {"name": n, "offset_s": self.offset(n, t) - self.offset(m, t), "bound_s": s.daemon_bound_s,
             "rtt_s": 2 * s.daemon_bound_s, "in_group": True, "correction_s": corrections[n],
             "kind": "adjtime" if abs(corrections[n]) < 1.0 else "settime"}
            for n in members if n != m
        ]
        self.log(m, t, "round", round=rnd, master=m, followers=followers,
                 master_correction_s=corrections[m], average_s=0.0, group_size=len(members),
                 duration_s=s.round_duration_s)
        self.truth.rounds += 1
        # corrections land round_duration_s after the round starts (master hw time)
        self.schedule(t_apply, 0, lambda tt: self._apply(rnd, m, members, corrections, tt))

    def _apply(self, rnd: int, m: str, members: list[str], corrections: dict[str, float], t_apply: float) -> None:
        for n in members:
            if not self.alive[n]:
                continue
            self.adj[n] += corrections[n]
            self.log(n, t_apply, "adjust", round=rnd, **{"from": m}, delta_s=corrections[n],
                     kind="adjtime", applied="step" if abs(corrections[n]) > 0.128 else "slew", freq_ppm=0.0)
            if not self.joined[n] and n != m:
                self.log(n, t_apply, "state", **{"from": "START", "to": "FOLLOWER", "cause": "round", "master": m})
            self.joined[n] = True
            self.believed_master[n] = m
        self.pending_post[rnd] = {n for n in members if self.alive[n]}

    def cpu_sample(self, t: float) -> None:
        for n in self.names:
            if not self.alive[n]:
                continue
            self._accrue_cpu(n, t)
            dt = t - self._cpu_prev_t.get(n, self.pid_start[n])
            prev_cum = self._cpu_prev_cum.get(n)
            cum = self.cpu_cum[n]
            if prev_cum is not None and dt > 0:
                self.cpu_intervals.append((self.role(n), (cum - prev_cum) / dt * 100.0, dt))
            self._cpu_prev_t[n], self._cpu_prev_cum[n] = t, cum
            self.cpu.append({"t_ref": t, "trial": self.trial_no, "node": n, "pid": self.pid[n],
                             "utime_s": 0.7 * cum, "stime_s": 0.3 * cum, "cpu_ns": int(round(cum * 1e9)),
                             # the node's PID 1, idle: a known baseline percent
                             "base_cpu_ns": int(round((t - self.spec.start_s) * self.spec.baseline_cpu_pct * 1e7)),
                             # the runner's sampler records the observed election state
                             "role": "LEADER" if self.role(n) == "master" else "FOLLOWER"})

    def cpu_report(self, n: str, t: float) -> None:
        if self.alive[n]:
            self._accrue_cpu(n, t)
            self.log(n, t, "cpu", utime_s=0.7 * self.cpu_cum[n], stime_s=0.3 * self.cpu_cum[n],
                     cpu_ns=int(round(self.cpu_cum[n] * 1e9)))

    def kill(self, t: float, trial: dict[str, Any]) -> None:
        s = self.spec
        old = self.master
        assert old is not None
        alive_others = [n for n in self.names if self.alive[n] and n != old]
        new = self.rng.choice(alive_others)
        self._accrue_cpu(old, t)
        self.alive[old] = False
        self.set_master(t, None)
        self.fault_id += 1
        self.open_kill[old] = self.fault_id
        self.faults.append({"t_ref": t, "trial": self.trial_no, "fault_id": self.fault_id, "kind": "kill",
                            "phase": "start", "targets": [old], "detail": "SIGKILL tempod"})
        detect_t, nm_t, fr_t = t + s.detect_after_s, t + s.new_master_after_s, t + s.first_round_after_s
        trial.update(kill_t=t, killed=old, detect_t=detect_t, new_master=new, new_master_t=nm_t, first_round_t=fr_t)
        self.truth.failovers.append({"trial": self.trial_no, "killed": old, "new_master": new,
                                     "detect_s": detect_t - t, "new_master_s": nm_t - t, "first_round_s": fr_t - t})

        def detect(tt: float) -> None:
            self.candidate = new
            self.log(new, tt, "state", **{"from": "FOLLOWER", "to": "CANDIDATE", "cause": "master timeout", "master": None})
            self.log(new, tt, "election", phase="candidate", peer=None, votes=0)

        def elected(tt: float) -> None:
            self.candidate = None
            self.log(new, tt, "election", phase="won", peer=None, votes=len(alive_others) - 1)
            self.log(new, tt, "state", **{"from": "CANDIDATE", "to": "LEADER", "cause": "election won", "master": new})
            self.set_master(tt, new)
            for n in alive_others:
                if n != new:
                    self.believed_master[n] = new
                    self.log(n, tt, "state", **{"from": "FOLLOWER", "to": "FOLLOWER", "cause": "accepted", "master": new})

        self.schedule(detect_t, 1, detect)
        self.schedule(nm_t, 1, elected)
        t_r = fr_t
        while t_r < trial["t_end"]:
            self.schedule(t_r, 2, self.round)
            t_r += s.round_interval_s

    # --- driver --------------------------------------------------------------------
    def schedule(self, t: float, prio: int, fn: Callable[[float], None]) -> None:
        heapq.heappush(self.queue, (t, prio, self._seq, fn))
        self._seq += 1

    def run(self) -> None:
        s = self.spec
        self.queue: list[tuple[float, int, int, Callable[[float], None]]] = []
        self._seq = 0
        self._cpu_prev_t: dict[str, float] = {}
        self._cpu_prev_cum: dict[str, float | None] = {}
        for n in self.names:
            self.log(n, s.start_s, "start", version="0.1.0", pid=self.pid[n], config={}, backend="process")
            self.log(n, s.start_s, "state", **{"from": "START", "to": "LEADER" if n == self.master else "START",
                                              "cause": "startup", "master": self.master})
        self.joined[self.names[0]] = True
        end = s.start_s + s.trials * s.trial_s
        t = s.start_s
        while t < end - 1e-9:
            self.schedule(t, 3, self.sweep)
            t += s.sweep_interval_s
        t = s.start_s + s.cpu_interval_s
        while t <= end + 1e-9:
            self.schedule(t, 4, self.cpu_sample)
            t += s.cpu_interval_s
        for n in self.names:
            t = s.start_s + s.cpu_report_interval_s
            while t <= end + 1e-9:
                self.schedule(t, 5, lambda tt, n=n: self.cpu_report(n, tt))
                t += s.cpu_report_interval_s
        for j in range(s.trials):
            t0, t1 = s.start_s + j * s.trial_s, s.start_s + (j + 1) * s.trial_s
            kind = "baseline" if j == 0 else "leader-kill"
            trial: dict[str, Any] = {"trial": j + 1, "name": kind, "t_start": t0, "t_end": t1, "outcome": "ok"}
            if s.drift_levels_ppm:
                trial["drift_ppm"] = s.drift_levels_ppm[j]
            if s.cluster_sizes:
                trial["cluster_size"] = s.cluster_sizes[j]
            self.trials.append(trial)
            self.schedule(t0, 0, lambda tt, j=j: self._begin_trial(j + 1, tt))
            last_round_t = t1 if kind == "baseline" else t0 + s.kill_at_s
            t_r = t0 + s.round_phase_s
            while t_r < last_round_t:
                self.schedule(t_r, 2, self.round)
                t_r += s.round_interval_s
            if kind != "baseline":
                self.schedule(t0 + s.kill_at_s, 1, lambda tt, trial=trial: self.kill(tt, trial))
        self.truth.trials = s.trials
        while self.queue:
            tt, _, _, fn = heapq.heappop(self.queue)
            fn(tt)
        # rounds whose post samples never came (end of run) do not count as post skews

    def _begin_trial(self, number: int, t: float) -> None:
        for n in self.names:
            if self.alive[n]:
                self._accrue_cpu(n, t)   # at the old trial's rate (group size)
        self.trial_no = number
        for n in self.names:
            if not self.alive[n]:
                # restart: a new pid with fresh CPU counters; the hardware clock kept drifting
                self.alive[n] = True
                self.joined[n] = False
                self.adj[n] = 0.0
                self.pid[n] += 1
                self.pid_start[n] = t
                self.cpu_cum[n] = 0.0
                self.cpu_last_t[n] = t
                # the sampler has no reading of the new pid yet: its first sample starts a series
                self._cpu_prev_t.pop(n, None)
                self._cpu_prev_cum.pop(n, None)
                # contract: the end of a kill is its restart (same kind and fault_id)
                self.faults.append({"t_ref": t, "trial": number, "fault_id": self.open_kill.pop(n, None),
                                    "kind": "kill", "phase": "end", "targets": [n], "detail": "tempod-service start"})
                self.log(n, t, "start", version="0.1.0", pid=self.pid[n], config={}, backend="process")


def make_run(out_dir: str | Path, spec: SyntheticSpec = SyntheticSpec()) -> Truth:
    """Write a synthetic run folder into ``out_dir`` (created) and return its truth."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = _Model(spec)
    model.run()
    truth = model.truth
    truth.max_rate_ppm = max(p.max_abs_rate_ppm() for p in model.profiles.values())
    by_role: dict[str, tuple[float, float]] = {}
    for role, pct, dt in model.cpu_intervals:
        total, weight = by_role.get(role, (0.0, 0.0))
        by_role[role] = (total + pct, weight + 1)
    truth.cpu_pct_by_role = {r: tot / w for r, (tot, w) in by_role.items()}
    end = spec.start_s + spec.trials * spec.trial_s
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "suite": {"name": spec.suite, "round_interval_s": spec.round_interval_s},
        "seed": spec.seed,
        "inventory": "synthetic",
        "nodes": {n: {"address": f"10.77.0.{11 + i}",
                      "profile": {"epoch_unix_s": p.epoch_unix_s, "offset_s": p.offset_s, "rate_ppm": p.rate_ppm,
                                  "changes": [{"at_s": c.at_s, "rate_ppm": c.rate_ppm} for c in p.changes]}}
                  for i, (n, p) in enumerate(model.profiles.items())},
        "versions": {"tempo": "0.1.0", "generator": "tempolab.testing.synthetic"},
        "git_commit": "0" * 40,
        "host": {"kernel": "synthetic"},
        "started": spec.start_s,
        "ended": end,
        "status": "ok",
    }
    write_json(out / "manifest.json", manifest)
    dump_jsonl(out / "observer.jsonl", model.observer)
    dump_jsonl(out / "faults.jsonl", model.faults)
    dump_jsonl(out / "cpu.jsonl", model.cpu)
    dump_jsonl(out / "trials.jsonl", model.trials)
    dump_jsonl(out / "runner.jsonl", [{"t_ref": spec.start_s, "phase": "start"}, {"t_ref": end, "phase": "end"}])
    for n in model.names:
        d = out / "nodes" / n
        d.mkdir(parents=True, exist_ok=True)
        dump_jsonl(d / "events.jsonl", model.events[n])
        if spec.write_profiles:
            (d / "drift.toml").write_text(dump_profile(model.profiles[n]))
    return truth
