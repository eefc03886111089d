"""The run folder ``results/<YYYYmmdd-HHMMSS>-<suite>/`` (docs/architecture.md "Run folder").

Owns file names, the manifest (written atomically: temp file + rename, so a crash never
leaves half a manifest) and the append-only JSON-lines streams: each record is one line,
written and flushed as it arrives under a per-stream lock (the observer, the CPU sampler
and the driver append from different threads), so an interrupted run keeps everything
measured up to the interruption. Resume reads which trials finished.

Record types, the schema version and the JSON helpers are :mod:`tempolab.runschema`'s;
this module stamps ``schema_version`` into every manifest it creates.  It does not know
what the records mean beyond the ``trial`` key of ``trials.jsonl``.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import IO, Any

from ..errors import ConfigError
from ..runschema import SCHEMA_VERSION, STREAMS, dumps_line, read_jsonl, write_json


def run_dir_name(suite: str, t: float | None = None) -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.localtime(time.time() if t is None else t)) + f"-{suite}"


class RunFolder:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._files: dict[str, IO[str]] = {}
        self._locks = {s: threading.Lock() for s in STREAMS}
        self._manifest_lock = threading.Lock()

    # ---------------------------------------------------------------- creation
    @classmethod
    def create(cls, results: Path, suite: str, manifest: dict[str, Any],
               now: float | None = None) -> "RunFolder":
        results = Path(results)
        results.mkdir(parents=True, exist_ok=True)
        base = run_dir_name(suite, now)
        path = results / base
        i = 1
        while path.exists():  # two runs in the same second: keep both
            i += 1
            path = results / f"{base}-{i}"
        path.mkdir()
        (path / "nodes").mkdir()
        rf = cls(path)
        rf.write_manifest({**manifest, "schema_version": SCHEMA_VERSION})
        return rf

    @classmethod
    def open(cls, path: Path) -> "RunFolder":
        path = Path(path)
        if not (path / "manifest.json").is_file():
            raise ConfigError("not a run folder (no manifest.json)", source=str(path))
        return cls(path)

    # ---------------------------------------------------------------- manifest
    def read_manifest(self) -> dict[str, Any]:
        try:
            return json.loads((self.path / "manifest.json").read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"unreadable manifest: {exc}", source=str(self.path)) from exc

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        with self._manifest_lock:
            write_json(self.path / "manifest.json", manifest)

    def update_manifest(self, **fields: Any) -> dict[str, Any]:
        m = self.read_manifest()
        m.update(fields)
        self.write_manifest(m)
        return m

    # ---------------------------------------------------------------- streams
    def append(self, stream: str, record: dict[str, Any]) -> None:
        if stream not in self._locks:
            raise ValueError(f"unknown stream {stream!r} (one of {', '.join(STREAMS)})")
        line = dumps_line(record)
        with self._locks[stream]:
            f = self._files.get(stream)
            if f is None:
                p = self.path / STREAMS[stream].file
                torn = p.exists() and p.stat().st_size > 0 and not p.read_bytes().endswith(b"\n")
                f = open(p, "a", encoding="utf-8")
                if torn:
                    # a crash mid-write left half a line: end it so it stays one bad
                    # (skipped) line instead of swallowing the next record
                    f.write("\n")
                self._files[stream] = f
            f.write(line)
            f.flush()

    def read(self, stream: str) -> list[dict[str, Any]]:
        """Records of a stream; a torn last line (crash mid-write) is skipped."""
        p = self.path / STREAMS[stream].file
        return read_jsonl(p) if p.exists() else []

    def close(self) -> None:
        for stream, f in list(self._files.items()):
            with self._locks[stream]:
                f.close()
        self._files.clear()

    # ---------------------------------------------------------------- resume
    def finished_trials(self) -> set[int]:
        return {int(r["trial"]) for r in self.read("trials") if "trial" in r}

    def next_trial(self, n_trials: int) -> int | None:
        """First trial number (1-based) without a trials.jsonl record, None when all done."""
        done = self.finished_trials()
        for k in range(1, n_trials + 1):
            if k not in done:
                return k
        return None

    def node_dir(self, node: str) -> Path:
        d = self.path / "nodes" / node
        d.mkdir(parents=True, exist_ok=True)
        return d
