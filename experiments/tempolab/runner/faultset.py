"""Installing and reverting one trial's faults over SSH, with the time each took effect.

Owns the guarantee that every fault installed is reverted on any exit path (exception,
Ctrl-C / SIGTERM raised as KeyboardInterrupt, SSH failure): :class:`FaultSet` is a
context manager whose ``__exit__`` reverts what is still active and records leftovers
it could not revert; and the fault records' times (the node's own clock right after the
command ran, :func:`stamped` / :func:`effect_time`). Which faults and when is
:mod:`schedule`'s; the commands are :mod:`faults`'.
"""

from __future__ import annotations

import secrets
import time
from typing import Any, Callable

from ..errors import HostUnreachable
from . import faults
from .faults import Fault
from .sshpool import SshPool

STAMP = "__tempo_t="


def stamped(cmds: dict[str, str]) -> dict[str, str]:
    """Make each command print the node's real time right after it ran (exit code kept).

    SSH command latency here is 0.1-0.4 s, far more than the failover detail we want;
    the node's own clock at the moment the fault took effect is exact in the lab (nodes
    share the host clock) and NTP-close on VMs. The node's shell is not under
    libfaketime, only the daemon is.
    """
    return {n: f"{{ {c}\n}}; __rc=$?; echo \"{STAMP}$(date +%s.%N)\"; exit $__rc"
            for n, c in cmds.items()}


def effect_time(results: dict, t_sent: float, t_done: float) -> tuple[float, dict[str, float]]:
    """(t_ref, per-node times): the latest node-reported time when it lies within the
    SSH call (a node clock off by more is not trusted), else the call's midpoint."""
    t_node: dict[str, float] = {}
    for n, r in results.items():
        for line in r.stdout.splitlines():
            if line.startswith(STAMP):
                try:
                    t_node[n] = float(line[len(STAMP):])
                except ValueError:
                    pass
    ok = [t for t in t_node.values() if t_sent - 0.05 <= t <= t_done + 0.05]
    if t_node and len(ok) == len(t_node):
        return max(ok), t_node
    return (t_sent + t_done) / 2, t_node


class FaultSet:
    """Faults installed in one trial; reverts everything still active on exit.

    A fault applied with a planned end (``apply(f, planned_end_t=...)``) also arms an
    on-node dead-man watchdog (:func:`faults.guarded`) that reverts it at the planned end
    plus ``deadman_margin_s`` if this process dies without running ``__exit__``
    (SIGKILL); ``revert`` cancels it in the same SSH command.
    """

    def __init__(self, pool: SshPool, record: Callable[[dict], None], trial: int,
                 clock: Callable[[], float] = time.time,
                 deadman_margin_s: float = faults.DEADMAN_MARGIN_S):
        self.pool = pool
        self.record = record
        self.trial = trial
        self.clock = clock
        self.deadman_margin_s = deadman_margin_s
        self.active: list[tuple[int, Fault]] = []
        self.leftovers: list[dict] = []
        self.log: list[dict] = []
        self._next_id = 0
        # per fault id: the revert commands (with the watchdog's cancel when armed)
        self._reverts: dict[int, dict[str, str]] = {}
        # distinguishes this runner's watchdogs from a killed earlier run's on the node
        self._token = secrets.token_hex(3)

    def _rec(self, fid: int, f: Fault, phase: str, detail: str, t_ref: float,
             **extra: Any) -> dict:
        r = {"t_ref": t_ref, "trial": self.trial, "fault_id": fid, "kind": f.kind,
             "phase": phase, "targets": f.targets, "detail": detail, **extra}
        if f.sides:
            r["sides"] = {"a": f.sides[0], "b": f.sides[1]}
        self.record(r)
        self.log.append(r)
        return r

    def apply(self, f: Fault, planned_end_t: float | None = None) -> dict:
        """Apply ``f``; ``planned_end_t`` (reference time of its planned revert) arms the
        dead-man watchdog to fire ``deadman_margin_s`` after it."""
        fid = self._next_id
        self._next_id += 1
        t_before = self.clock()
        delay_s = None
        if planned_end_t is not None:
            delay_s = max(planned_end_t - t_before, 0.0) + self.deadman_margin_s
        key = f"t{self.trial}-f{fid}-{self._token}"
        apply_cmds, self._reverts[fid] = faults.guarded(f, key, delay_s)
        # registered before the commands run: a half-applied fault is still reverted
        self.active.append((fid, f))
        try:
            res = self.pool.run_many(stamped(apply_cmds), timeout_s=30)
        except HostUnreachable as exc:
            return self._rec(fid, f, "start", f.detail, t_before, error=str(exc), t_sent=t_before)
        t_done = self.clock()
        errors = {n: (r.stderr.strip() or f"exit {r.rc}")[-200:] for n, r in res.items() if r.rc}
        t_ref, t_node = effect_time(res, t_before, t_done)
        return self._rec(fid, f, "start", f.detail, t_ref, t_sent=t_before, t_done=t_done,
                         t_node=t_node, **({"error": errors} if errors else {}))

    def revert(self, fid: int) -> dict | None:
        item = next(((i, f) for i, f in self.active if i == fid), None)
        if item is None:
            return None
        _, f = item
        t_before = self.clock()
        try:
            res = self.pool.run_many(stamped(self._reverts.get(fid, f.revert_cmds)), timeout_s=60)
        except HostUnreachable as exc:
            self.leftovers.append({"fault_id": fid, "kind": f.kind, "hosts": exc.hosts})
            self.active.remove(item)
            return self._rec(fid, f, "end", f.revert_detail, t_before, error=str(exc),
                             t_sent=t_before)
        t_done = self.clock()
        self.active.remove(item)
        errors = {n: (r.stderr.strip() or f"exit {r.rc}")[-200:] for n, r in res.items() if r.rc}
        if errors:
            self.leftovers.append({"fault_id": fid, "kind": f.kind, "hosts": sorted(errors)})
        t_ref, t_node = effect_time(res, t_before, t_done)
        return self._rec(fid, f, "end", f.revert_detail, t_ref, t_sent=t_before, t_done=t_done,
                         t_node=t_node, **({"error": errors} if errors else {}))

    def revert_all(self) -> None:
        for fid, _f in list(reversed(self.active)):
            try:
                self.revert(fid)
            except Exception as exc:  # noqa: BLE001 - keep reverting the others
                self.leftovers.append({"fault_id": fid, "error": str(exc)})

    def __enter__(self) -> "FaultSet":
        return self

    def __exit__(self, *exc: object) -> None:
        self.revert_all()
