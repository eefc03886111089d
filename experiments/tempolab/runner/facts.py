"""Per-trial outcomes from observer samples and collected daemon events (pure).

Owns how a trial of each suite kind (kill, pause, partition, steady) is judged and what
it writes to trials.jsonl (docs/runner.md): which facts, which outcome and reason.  The
facts themselves -- "healthy", "one master per connected group", "new master", "first
round", a sweep's skew -- are defined once in :mod:`tempod.facts.checker`; this module
turns the runner's records (observer.jsonl dicts, event-log records mapped to
reference time by :func:`map_events`) into its history and calls it.  No I/O, no clock.
"""

from __future__ import annotations

import bisect

from typing import Any, Callable, Iterable

from tempod.facts import checker, history

Sample = dict[str, Any]


def _samples(records: Iterable[Sample]) -> list[history.Sample]:
    return history.observer_samples(records)


def health(latest: dict[str, Sample], nodes: Iterable[str]) -> tuple[bool, str | None, str]:
    """(healthy, master, reason) from one reading of every node (checker.healthy)."""
    snap = {n: s for n, s in ((n, history.sample(r, node=n)) for n, r in latest.items()) if s is not None}
    r = checker.healthy(snap, nodes)
    return r.valid is True, r.details.get("master"), r.reason


def skew_stats(samples: Iterable[Sample], since: float | None = None,
               exclude: Iterable[str] = ()) -> dict[str, float | None]:
    """Skew per sweep (checker.sweep_skew: max - min offset of the in-sync nodes that
    answered): max, median, count; ``exclude`` drops nodes (e.g. a killed or paused one)."""
    return checker.skew_stats(_samples(samples), since, exclude)


def map_events(events: Iterable[dict], true_at: Callable[[float], float]) -> list[dict]:
    """Add ``t_ref`` to event-log records: the node's hardware time mapped through its
    drift profile (``true_at`` = DriftProfile.true_at; in the lab true = reference)."""
    out = []
    for e in events:
        hw = e.get("hw")
        if isinstance(hw, (int, float)):
            out.append({**e, "t_ref": true_at(float(hw))})
    return out


def disciplined_kernel_clock(events: Iterable[dict]) -> bool:
    """Did this log come from tempod's kernel backend?  Its ``hw`` is then the guest's
    CLOCK_REALTIME, which the daemon itself disciplines, not a free-running hardware
    clock: the drift profile no longer maps it to reference time once corrections
    have moved it (by the group's offset from the host, hundreds of ms on VMs)."""
    return any(e.get("ev") == "start" and e.get("backend") == "kernel" for e in events)


def observer_true_at(samples: Iterable[Sample], node: str) -> Callable[[float], float] | None:
    """clk -> reference time for ``node`` through the observer's offsets
    (``offset = clk - t_ref``, interpolated; two fixed-point steps, as offsets change
    slowly), or None without samples of it.  The same mapping as analysis.tables'."""
    pts = sorted((float(s["t_ref"]), float(s["offset_s"])) for s in samples
                 if s.get("node") == node and isinstance(s.get("offset_s"), (int, float))
                 and isinstance(s.get("t_ref"), (int, float)) and not s.get("superseded"))
    if not pts:
        return None
    ts = [t for t, _ in pts]

    def off(t: float) -> float:
        i = bisect.bisect_left(ts, t)
        if i <= 0:
            return pts[0][1]
        if i >= len(pts):
            return pts[-1][1]
        (t0, o0), (t1, o1) = pts[i - 1], pts[i]
        return o0 if t1 == t0 else o0 + (o1 - o0) * (t - t0) / (t1 - t0)

    def true_at(clk: float) -> float:
        return clk - off(clk - off(clk))
    return true_at


def two_masters_after(samples: Iterable[Sample], t0: float,
                      groups: list[set[str]] | None = None) -> list[dict]:
    """Sweeps from ``t0`` in which one connected group shows two or more masters
    (checker.one_master's ``bad``)."""
    return list(checker.one_master(_samples(samples), t0, groups).details["bad"])


def settled_t(samples: Iterable[Sample], t0: float, nodes: Iterable[str]) -> tuple[float | None, str | None]:
    """(time, master) of the first sweep after ``t0`` where all ``nodes`` are healthy."""
    return checker.settled(_samples(samples), t0, nodes)


def failover(samples: list[Sample], kill_t: float, killed: str, nodes: list[str],
             events: dict[str, list[dict]] | None = None, until: float | None = None) -> dict[str, Any]:
    """Facts of a master kill (or pause) at ``kill_t``.

    - detect_t: first sign among the other nodes that the master is gone: an observer
      sample of a state other than FOLLOWER-of-the-old-master, or a ``state`` event
      leaving FOLLOWER in a collected log (whichever is earlier; ``detect_source`` says).
    - new_master / new_master_t / first_round_t: by the one definition of
      ``tempod.facts.checker`` (the first node other than the killed one that becomes
      master after the fault, from the collected ``state`` events; its first ``round``
      event after that), whenever the collected logs show one
      (``new_master_source`` / ``first_round_source`` = "log").  Without logs: the
      leader of the first healthy sweep among the survivors and the first sample
      showing it LEADER, and the first sweep in which every survivor follows it
      ("observer").  ``obs_new_master_t`` is the observer's view either way.
    - settled_master: the leader of the first healthy sweep among the survivors.
    """
    others = [n for n in nodes if n != killed]
    after = [s for s in samples if s["t_ref"] > kill_t and (until is None or s["t_ref"] <= until)]
    out: dict[str, Any] = {"kill_t": kill_t, "killed": killed}
    changes, rounds = history.events_history(events or {})
    # every answer counts here, superseded retries too: a state is a state, whatever its bound
    answers = [x for x in (history.sample(s) for s in after) if x is not None and x.node in others]
    det_obs = checker.detected_by_observer(answers, kill_t, killed, until)
    det_log = checker.detected(changes, kill_t, killed, until)
    cands = [(t, src) for t, src in ((det_obs, "observer"), (det_log, "log")) if t is not None]
    out["detect_t"], out["detect_source"] = min(cands) if cands else (None, None)
    st, m = settled_t(after, kill_t, others)
    out["settled_t"] = st
    if m is None:
        out.update(new_master=None, new_master_t=None, first_round_t=None,
                   outcome="failed", reason="the survivors never settled on one master")
        return out
    out["settled_master"] = m
    out["obs_new_master_t"] = next(s["t_ref"] for s in sorted(after, key=lambda s: s["t_ref"])
                                   if s["node"] == m and s.get("state") == "LEADER")
    fo = checker.failover(changes, rounds, kill_t, killed, until)
    if fo.new_master is not None:
        m = fo.new_master
        out["new_master"], out["new_master_t"], out["new_master_source"] = m, fo.new_master_t, "log"
    else:
        out["new_master"], out["new_master_t"], out["new_master_source"] = m, out["obs_new_master_t"], "observer"
    first = checker.first_round(rounds, m, out["new_master_t"] if fo.new_master is not None else kill_t)
    if first is not None:
        out["first_round_t"] = first
        out["first_round_source"] = "log"
    else:
        out["first_round_t"] = st
        out["first_round_source"] = "observer"
    if out["settled_master"] == killed:
        out.update(outcome="failed", reason="the killed master is master again")
    else:
        out.update(outcome="ok", reason=None)
    for key in ("detect", "new_master", "first_round", "obs_new_master"):
        t = out.get(f"{key}_t")
        out[f"{key}_s"] = None if t is None else t - kill_t
    return out


def pause(samples: list[Sample], stop_t: float, cont_t: float, old: str, nodes: list[str],
          settle_s: float, events: dict[str, list[dict]] | None = None,
          until: float | None = None) -> dict[str, Any]:
    """Facts of a SIGSTOP of the master at ``stop_t``, SIGCONT at ``cont_t``."""
    out = failover(samples, stop_t, old, nodes, events, until=cont_t)
    out = {("stop_t" if k == "kill_t" else "paused" if k == "killed" else k): v
           for k, v in out.items()}
    out["cont_t"] = cont_t
    after = sorted((s for s in samples if s["t_ref"] > cont_t and (until is None or s["t_ref"] <= until)),
                   key=lambda s: s["t_ref"])
    was_leader = [s for s in after if s["node"] == old and s.get("state") == "LEADER"]
    answers = [x for x in (history.sample(s) for s in after) if x is not None]
    down = checker.stepped_down(answers, old, cont_t, until)
    out["old_master_seen_leader_after_cont"] = bool(was_leader)
    out["old_master_stepped_down_t"] = down
    bad = two_masters_after(after, cont_t + settle_s)
    out["two_masters_after_settle"] = bool(bad)
    out["two_masters_samples"] = bad[:5]
    end_t, end_m = settled_t(after, cont_t, nodes)
    out["final_settled_t"], out["final_master"] = end_t, end_m
    if out.get("new_master") is None:
        out.update(outcome="failed", reason="no new master while the old one was stopped")
    elif down is None and end_m == old:
        out.update(outcome="failed", reason="the old master never stepped down")
    elif bad:
        out.update(outcome="failed", reason=f"two masters after settling ({bad[0]['masters']})")
    elif end_m is None:
        out.update(outcome="failed", reason="never settled on one master after SIGCONT")
    else:
        out.update(outcome="ok", reason=None)
    return out


def partition(samples: list[Sample], start_t: float, heal_t: float,
              sides: tuple[list[str], list[str]], settle_s: float,
              until: float | None = None) -> dict[str, Any]:
    """Facts of a partition A|B from ``start_t`` to ``heal_t``."""
    a, b = sides
    out: dict[str, Any] = {"partition_t": start_t, "heal_t": heal_t, "side_a": a, "side_b": b}
    during = [s for s in samples if start_t + settle_s <= s["t_ref"] <= heal_t]
    for label, side in (("a", a), ("b", b)):
        st, m = settled_t(during, start_t + settle_s, side)
        out[f"master_{label}"] = m
        out[f"settled_{label}_t"] = st
    after = [s for s in samples if s["t_ref"] > heal_t and (until is None or s["t_ref"] <= until)]
    rt, rm = settled_t(after, heal_t, a + b)
    out["resolved_t"], out["resolved_master"] = rt, rm
    out["resolve_s"] = None if rt is None else rt - heal_t
    bad = two_masters_after(after, heal_t + settle_s)
    split = two_masters_after(during, start_t + settle_s, [set(a), set(b)])
    out["two_masters_after_settle"] = bool(bad)
    out["two_masters_samples"] = bad[:5]
    out["two_masters_in_one_side"] = bool(split)
    if out["master_a"] is None or out["master_b"] is None:
        out.update(outcome="failed", reason="a side did not settle on its own master")
    elif rm is None:
        out.update(outcome="failed", reason="no single master after healing")
    elif bad or split:
        out.update(outcome="failed", reason="two masters in one connected group after settling")
    else:
        out.update(outcome="ok", reason=None)
    return out


def steady(samples: list[Sample], t0: float, nodes: list[str], settle_s: float,
           until: float | None = None) -> dict[str, Any]:
    """Facts of a trial without master faults (smoke, loss): one master throughout."""
    win = [s for s in samples if s["t_ref"] >= t0 and (until is None or s["t_ref"] <= until)]
    bad = two_masters_after(win, t0 + settle_s)
    masters = sorted({s["master"] for s in win if s.get("state") == "LEADER"})
    unanswered = sum(1 for s in win if s.get("state") == "unreachable")
    out: dict[str, Any] = {"masters_seen": masters, "two_masters_after_settle": bool(bad),
                           "two_masters_samples": bad[:5], "unanswered_samples": unanswered,
                           "samples": len(win)}
    st, m = settled_t(win, t0, nodes)
    out["settled_t"], out["master"] = st, m
    if m is None:
        out.update(outcome="failed", reason="never healthy (one master, all following)")
    elif bad:
        out.update(outcome="failed", reason=f"two masters after settling ({bad[0]['masters']})")
    else:
        out.update(outcome="ok", reason=None)
    return out
