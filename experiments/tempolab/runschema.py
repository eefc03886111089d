"""The run folder's schema: what each file holds, its version, and the one way to read
and write it.

Owns the record types of every stream of ``results/<stamp>-<suite>/`` (observer
samples, CPU samples, faults, trials, runner events, the daemons' event logs, the
manifest, the report's summary), the schema version the runner writes into the
manifest, and the only JSON helpers the controller uses on run-folder data:
:func:`jsonable` (to plain JSON values), :func:`dumps_line` / :func:`dump_jsonl` /
:func:`write_json` (writers) and :func:`read_jsonl` (the reader).  The runner
(:mod:`.runner.runfolder`), the analysis (:mod:`.analysis.load`, the report) and the
test generator of synthetic runs all go through here, so a field or a file changes in
one place.

It does not know what the records mean (facts, tables and summaries do) and it never
decides whether a run went well.  The daemon keeps its own few lines of JSON in
``tempod/eventlog.py``: the node package is stdlib-only and installed alone on nodes,
so it cannot import the controller; :data:`NODE_EVENT` here describes the lines it
writes, and a test keeps the two in step.
"""

from __future__ import annotations

import gzip
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

#: Written into every new manifest as ``schema_version``.  Folders written before this
#: module existed have no such field: :func:`schema_version` reads them as version 0,
#: whose files are the same as version 1's (version 1 only adds the field), so both
#: load the same way.  Bump it when a field changes meaning or name, and teach
#: :func:`upgrade` the old form.
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class RecordType:
    """One kind of record: the file it lives in and the fields it carries.

    ``required`` fields are in every record a current runner writes; ``optional`` ones
    appear when they apply (an unreachable node has ``error`` and no ``root_dispersion_s``)
    or only in newer folders (``since`` says from which runner change, in words).
    """

    name: str
    file: str
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    since: tuple[tuple[str, str], ...] = ()
    doc: str = ""

    @property
    def fields(self) -> tuple[str, ...]:
        return self.required + self.optional

    def missing(self, record: dict[str, Any]) -> list[str]:
        """Required fields absent from ``record`` (an old folder may lack optional ones)."""
        return [k for k in self.required if k not in record]


OBSERVER = RecordType(
    "observer", "observer.jsonl",
    required=("t_ref", "trial", "sweep", "node", "offset_s", "bound_s", "rtt_s", "state", "master",
              "stratum"),
    optional=("retry", "superseded", "root_dispersion_s", "error"),
    since=(("retry", "the observer's clock filter (absent: one query per node per sweep)"),
           ("superseded", "the observer's clock filter (absent: no sample superseded)")),
    doc="one NTP query of one node's daemon by the runner's observer; offset = node - reference (s)",
)
CPU = RecordType(
    "cpu", "cpu.jsonl",
    required=("t_ref", "trial", "node", "role", "pid", "utime_s", "stime_s"),
    optional=("cpu_ns", "base_cpu_ns", "error"),
    since=(("cpu_ns", "the schedstat sampler (ns counters of tempod and of the node's PID 1)"),
           ("base_cpu_ns", "the schedstat sampler")),
    doc="one CPU reading of a node's daemon process; pid null with error when it did not run",
)
FAULT = RecordType(
    "faults", "faults.jsonl",
    required=("t_ref", "trial", "fault_id", "kind", "phase", "targets", "detail"),
    optional=("t_sent", "t_done", "t_node", "sides", "error"),
    doc="a fault's start or end (phase), t_ref when it took effect on the node",
)
TRIAL = RecordType(
    "trials", "trials.jsonl",
    required=("trial", "t_start", "t_end", "outcome"),
    optional=("protocol", "base_trial", "point", "nodes", "master_before", "max_drift_ppm",
              "round_interval_s", "warm_up_end_t", "faults", "leftovers", "reason", "facts_reason",
              "max_skew_s", "median_skew_s", "max_skew_settled_s"),
    since=(("protocol", "the protocol axis (older folders are all berkeley)"),
           ("base_trial", "the protocol axis")),
    doc="one finished trial: its times, its faults and the runner's facts about it",
)
RUNNER_EVENT = RecordType(
    "runner", "runner.jsonl",
    required=("t_ref", "phase"),
    doc="the runner's own steps (start, deploy_start, trial_start, ..., end) with their details",
)
NODE_EVENT = RecordType(
    "events", "nodes/<node>/events.jsonl",
    required=("ev", "node", "hw", "clk", "wall"),
    doc="one line of a daemon's event log (tempod/eventlog.py): hw/clk/wall are the node's clocks (s)",
)
MANIFEST = RecordType(
    "manifest", "manifest.json",
    required=("suite", "seed", "inventory", "nodes", "versions", "git_commit", "started", "ended",
              "status"),
    optional=("schema_version", "suite_raw", "provider", "lab", "host", "n_trials", "resumed"),
    since=(("schema_version", "this module (absent: version 0)"),),
    doc="what ran, where, with which code; rewritten atomically as the run goes on",
)
SUMMARY = RecordType(
    "summary", "summary.json",
    required=("run", "suite", "generated", "counts", "accuracy", "failover", "cpu", "cpu_cost",
              "observer", "figures", "missing", "unknown"),
    doc="the report's numbers (tempo report); everything but 'generated' follows from the folder",
)

#: The run's appendable JSON-lines streams, by the name the runner appends to.
STREAMS: dict[str, RecordType] = {t.name: t for t in (OBSERVER, FAULT, CPU, TRIAL, RUNNER_EVENT)}
#: Files of the top level of a run folder, the manifest first.
RUN_FILES: tuple[str, ...] = (MANIFEST.file,) + tuple(t.file for t in STREAMS.values())
#: The summary fields that change on every regeneration (the rest must not).
VOLATILE_SUMMARY_FIELDS = ("generated",)


# ------------------------------------------------------------------- JSON values
def jsonable(value: Any) -> Any:
    """``value`` as plain JSON values: NaN and infinities become None (the honest "no
    value"; they are not JSON), numpy / pandas scalars become Python numbers, dict keys
    strings, tuples lists.  Anything else is left for ``json.dumps`` to accept or refuse.

    numpy and pandas are recognised without importing them: the runner must not pull
    in the analysis stack.
    """
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, (str, int)):
        return value
    if isinstance(value, float):  # np.float64 is a float: plain it too
        return float(value) if math.isfinite(value) else None
    module = type(value).__module__
    if module == "numpy" and hasattr(value, "item"):
        return jsonable(value.item())  # np.int64, np.float32, np.bool_ ...
    if module.startswith("pandas") and type(value).__name__ in ("NAType", "NaTType"):
        return None
    return value


def dumps_line(record: dict[str, Any]) -> str:
    """One JSON-lines record, keys sorted, with its newline."""
    return json.dumps(jsonable(record), sort_keys=True) + "\n"


def dump_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """Write a whole stream at once (generators, fixtures); the runner appends instead."""
    Path(path).write_text("".join(dumps_line(r) for r in records), encoding="utf-8")


def write_json(path: Path, obj: Any, *, sort_keys: bool = True) -> None:
    """Write a JSON document atomically: temp file + rename, so a crash never leaves
    half a manifest.  ``sort_keys=False`` keeps the caller's order (the summary's
    sections read top to bottom)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(jsonable(obj), indent=2, sort_keys=sort_keys) + "\n", encoding="utf-8")
    os.replace(tmp, path)


# ------------------------------------------------------------------- reading
def existing(path: Path) -> Path:
    """``path``, or its gzip-compressed ``path.gz`` when only that exists (the committed
    example keeps its raw records compressed)."""
    path = Path(path)
    gz = path.with_name(path.name + ".gz")
    return gz if not path.exists() and gz.exists() else path


def read_jsonl(path: Path, problems: list[str] | None = None, rel: str | None = None) -> list[dict[str, Any]]:
    """Parse a JSON-lines file (``.gz`` too); bad lines are skipped and reported.

    A cut last line (the writer was killed mid-write) is the expected damage; a bad
    line in the middle is reported with its line number.  ``problems`` collects the
    reports (None: the caller does not want them, e.g. the runner reading its own
    streams back).  A missing file is reported by the caller, which knows whether
    the file is required.
    """
    problems = [] if problems is None else problems
    path = Path(path)
    rel = rel or path.name
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
    except (OSError, EOFError) as exc:
        problems.append(f"{rel}: cannot read ({getattr(exc, 'strerror', None) or exc})")
        return []
    lines = raw.decode("utf-8", errors="replace").split("\n")
    records: list[dict[str, Any]] = []
    last_index = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            if i == last_index:
                problems.append(f"{rel}: last line {i + 1} is truncated and was ignored")
            else:
                problems.append(f"{rel}: line {i + 1} is not valid JSON and was ignored")
            continue
        if not isinstance(obj, dict):
            problems.append(f"{rel}: line {i + 1} is not a JSON object and was ignored")
            continue
        records.append(obj)
    if not records and raw.strip() == b"":
        problems.append(f"{rel}: empty file")
    return records


# ------------------------------------------------------------------- versions
def schema_version(manifest: dict[str, Any]) -> int:
    """The manifest's schema version; 0 for folders written before it was recorded."""
    v = manifest.get("schema_version", 0)
    return v if isinstance(v, int) and not isinstance(v, bool) else 0


def upgrade(manifest: dict[str, Any]) -> list[str]:
    """Problems that make a folder unreadable by this code (a newer schema), else [].

    Versions 0 and 1 have the same files and field names, so nothing is rewritten;
    a later version that renames a field maps the old name here, on read, and leaves
    the files as they are.
    """
    v = schema_version(manifest)
    if v > SCHEMA_VERSION:
        return [f"manifest.json: schema_version {v} is newer than this tempolab reads "
                f"({SCHEMA_VERSION}); figures may miss fields"]
    return []


def suite_name(manifest: dict[str, Any]) -> str:
    """The suite's name from a manifest: ``suite`` is the suite as a mapping (its
    ``name``); hand-made and very early folders give ``suite`` as a plain string."""
    suite = manifest.get("suite")
    if isinstance(suite, dict):
        return str(suite.get("name") or suite.get("suite") or "unknown")
    return str(suite) if suite else "unknown"
