"""Progress display: a rich live panel, plain lines for CI (``--quiet``), the end summary.

Owns presentation only: the driver pushes state (suite, trial i/n, phase, master, latest
skew) and lines; the summary is computed from the run folder's records by
:func:`summarize` (pure) so that a resumed or interrupted run summarizes what was kept.
"""

from __future__ import annotations

import statistics
import threading
import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from . import facts


class Progress:
    def __init__(self, suite: str, n_trials: int, *, quiet: bool = False,
                 console: Console | None = None):
        self.suite = suite
        self.n_trials = n_trials
        self.quiet = quiet
        self.console = console or Console(stderr=False)
        self.trial = 0
        self.phase = "starting"
        self.master: str | None = None
        self.skew_s: float | None = None
        self.health = ""
        self.lines: list[str] = []
        self._t0 = time.monotonic()
        self._lock = threading.Lock()
        self._live: Live | None = None

    # ------------------------------------------------------------------ updates
    def set(self, *, trial: int | None = None, phase: str | None = None,
            master: str | None = None, skew_s: float | None = None,
            health: str | None = None) -> None:
        with self._lock:
            changed_phase = phase is not None and phase != self.phase
            if trial is not None:
                self.trial = trial
            if phase is not None:
                self.phase = phase
            if master is not None:
                self.master = master
            if skew_s is not None:
                self.skew_s = skew_s
            if health is not None:
                self.health = health
        if self.quiet and changed_phase:
            self._plain(f"trial {self.trial}/{self.n_trials} {self.phase}")

    def log(self, line: str) -> None:
        with self._lock:
            self.lines = (self.lines + [line])[-6:]
        if self.quiet:
            self._plain(line)

    def _plain(self, line: str) -> None:
        el = time.monotonic() - self._t0
        print(f"[{el:7.1f}s] {self.suite}: {line}", flush=True)

    def _render(self) -> Group:
        t = Table.grid(padding=(0, 2))
        t.add_column(style="bold")
        t.add_column()
        skew = "-" if self.skew_s is None else f"{self.skew_s * 1e3:.3f} ms"
        t.add_row("suite", self.suite)
        t.add_row("trial", f"{self.trial}/{self.n_trials}")
        t.add_row("phase", self.phase)
        t.add_row("master", self.master or "-")
        t.add_row("max skew", skew)
        t.add_row("cluster", self.health or "-")
        t.add_row("elapsed", f"{time.monotonic() - self._t0:.0f} s")
        return Group(t, Text("\n".join(self.lines), style="dim"))

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> "Progress":
        if not self.quiet:
            self._live = Live(get_renderable=self._render, console=self.console,
                              refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None


def summarize(trials: list[dict], observer: list[dict], warm_up_until: dict[int, float]
              | None = None, interrupted: bool = False) -> dict[str, Any]:
    """One-screen summary: trials ok/failed, failover p50/max, max post-warm-up skew."""
    ok = [t for t in trials if t.get("outcome") == "ok"]
    failed = [t for t in trials if t.get("outcome") != "ok"]
    fo = sorted(t["new_master_s"] for t in trials if t.get("new_master_s") is not None)
    skew = None
    by_trial: dict[Any, list[dict]] = {}
    for s in observer:
        by_trial.setdefault(s.get("trial"), []).append(s)
    for k, samples in by_trial.items():
        since = (warm_up_until or {}).get(k)
        if since is None:
            continue
        st = facts.skew_stats(samples, since=since)
        if st["max_skew_s"] is not None:
            skew = st["max_skew_s"] if skew is None else max(skew, st["max_skew_s"])
    from .observer import bound_stats

    return {
        "trials_ok": len(ok), "trials_failed": len(failed),
        "failed": [{"trial": t.get("trial"), "reason": t.get("reason")} for t in failed],
        "failover_p50_s": statistics.median(fo) if fo else None,
        "failover_max_s": fo[-1] if fo else None,
        "max_skew_after_warm_up_s": skew,
        "observer_bound": bound_stats(observer),
        "interrupted": interrupted,
    }


def print_summary(summary: dict[str, Any], run_dir: str, console: Console | None = None,
                  plain: bool = False) -> None:
    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v * 1e3:.3f} ms"

    def s(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f} s"

    ob = summary["observer_bound"]
    rows = [
        ("run folder", run_dir),
        ("status", "INTERRUPTED (data kept)" if summary["interrupted"] else "finished"),
        ("trials", f"{summary['trials_ok']} ok, {summary['trials_failed']} failed"),
        ("failover (kill -> new master)", f"p50 {s(summary['failover_p50_s'])}, max {s(summary['failover_max_s'])}"),
        ("max skew after warm-up", ms(summary["max_skew_after_warm_up_s"])),
        ("observer bound", f"median {ms(ob['median_s'])}, p99 {ms(ob['p99_s'])} ({ob['n']} samples)"),
    ]
    for f in summary["failed"][:5]:
        rows.append((f"trial {f['trial']} failed", str(f["reason"])))
    if plain:
        for k, v in rows:
            print(f"{k}: {v}", flush=True)
        return
    t = Table(title="tempo run: summary", show_header=False)
    t.add_column(style="bold")
    t.add_column()
    for k, v in rows:
        t.add_row(k, v)
    (console or Console()).print(t)
