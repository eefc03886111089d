"""The daemon's JSON-lines event log (docs/architecture.md, "Event log").

Owns the line format: one JSON object per line with ``ev``, ``node``, ``hw``
(hardware clock, s), ``clk`` (corrected clock, s) and ``wall`` (``time.time()``, which
equals ``hw`` under libfaketime) followed by the event's own fields.  Each line is
written with one ``write`` and flushed at once, so a SIGKILL loses at most the line being
written; ``reopen()`` (on SIGHUP) lets logrotate move the file away.

It knows nothing about sockets or the protocol: the caller passes two clock-reading
functions and the event fields.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import IO, Any, Callable

RESERVED = ("ev", "node", "hw", "clk", "wall")


def _jsonable(v: Any) -> Any:
    # Non-finite floats are not JSON; a log line must stay parseable by every reader.
    # The controller has its own helper for run-folder records (tempolab.runschema):
    # this package is stdlib-only and installed alone on nodes, so it cannot import
    # it.  Unlike that one, anything else becomes str here: a log call must never fail.
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return str(v)


def format_event(ev: str, node: str, hw: float, clk: float, wall: float, fields: dict[str, Any]) -> str:
    """One log line (with the trailing newline). Pure; the fields may not reuse reserved names."""
    clash = [k for k in fields if k in RESERVED]
    if clash:
        raise ValueError(f"event {ev!r}: field(s) {clash} clash with the reserved names {RESERVED}")
    obj = {"ev": ev, "node": node, "hw": hw, "clk": clk, "wall": wall}
    obj.update(_jsonable(fields))
    return json.dumps(obj, separators=(",", ":"), allow_nan=False) + "\n"


class EventLog:
    """Append-only JSON-lines writer. Not thread-safe (the daemon is single-threaded)."""

    def __init__(self, path: str | os.PathLike[str], node: str,
                 read_hw: Callable[[], float], read_clk: Callable[[], float],
                 wall: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.node = node
        self._read_hw = read_hw
        self._read_clk = read_clk
        self._wall = wall
        self._fh: IO[str] | None = None
        self.lines_written = 0
        self.write_errors = 0
        self.reopen()

    def reopen(self) -> None:
        """(Re)open the file in append mode; creates missing parent folders.

        Raises OSError if it cannot be opened (the caller decides whether that is fatal).
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Line buffering plus an explicit flush: each event reaches the kernel before
        # write() returns, so a crash after it cannot lose it.
        fh = open(self.path, "a", buffering=1, encoding="utf-8")
        old, self._fh = self._fh, fh
        if old is not None:
            try:
                old.close()
            except OSError:
                self.write_errors += 1

    def set_clock(self, read_hw: Callable[[], float], read_clk: Callable[[], float]) -> None:
        self._read_hw = read_hw
        self._read_clk = read_clk

    def write(self, ev: str, **fields: Any) -> None:
        self.write_fields(ev, fields)

    def write_fields(self, ev: str, fields: dict[str, Any]) -> None:
        if self._fh is None:
            raise ValueError("event log is closed")
        line = format_event(ev, self.node, self._read_hw(), self._read_clk(), self._wall(), fields)
        try:
            self._fh.write(line)
            self._fh.flush()
        except OSError:
            # Disk full or the file system went away: a time daemon that stops keeping
            # time because it cannot log would be worse.  Count it (shown in `counters`).
            self.write_errors += 1
            return
        self.lines_written += 1

    def close(self) -> None:
        if self._fh is not None:
            fh, self._fh = self._fh, None
            try:
                fh.close()
            except OSError:  # the final flush of a line that already failed (disk full)
                self.write_errors += 1

    def __enter__(self) -> "EventLog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
