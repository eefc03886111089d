"""Read a run folder into memory, tolerating damage and recording every problem.

Owns the file-level contract of docs/architecture.md "Run folder": which files exist (each
JSON-lines file may also be stored gzip-compressed as NAME.jsonl.gz),
JSON-lines parsing (a last line cut mid-way is dropped and reported, not fatal),
required manifest fields, per-node event logs and drift profiles.  It does not
interpret the records (that is :mod:`.tables`) and never writes anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from tempod.profile import DriftProfile, ProfileError, load_profile, parse_profile

RUN_FILES = ("manifest.json", "observer.jsonl", "faults.jsonl", "cpu.jsonl", "trials.jsonl", "runner.jsonl")
MANIFEST_FIELDS = ("suite", "seed", "inventory", "nodes", "versions", "git_commit", "started", "ended", "status")


class NotARunFolder(ConfigError):
    """The path given to the analysis is not a run folder at all."""


@dataclass
class RunData:
    """Everything the analysis knows about a run; ``problems`` lists what was wrong."""

    path: Path
    manifest: dict[str, Any]
    observer: list[dict[str, Any]]
    faults: list[dict[str, Any]]
    cpu: list[dict[str, Any]]
    trials: list[dict[str, Any]]
    runner: list[dict[str, Any]]
    events: dict[str, list[dict[str, Any]]]
    profiles: dict[str, DriftProfile]
    nodes: list[str]
    problems: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def suite_name(self) -> str:
        suite = self.manifest.get("suite")
        if isinstance(suite, dict):
            return str(suite.get("name") or suite.get("suite") or "unknown")
        return str(suite) if suite else "unknown"


def read_jsonl(path: Path, problems: list[str], rel: str | None = None) -> list[dict[str, Any]]:
    """Parse JSON lines; bad lines are skipped and reported in ``problems``.

    A cut last line (the writer was killed mid-write) is the expected damage; a bad
    line in the middle is reported with its line number.  A missing file is reported
    by the caller, which knows whether the file is required.
    """
    rel = rel or path.name
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            import gzip

            raw = gzip.decompress(raw)
    except (OSError, EOFError) as exc:
        problems.append(f"{rel}: cannot read ({getattr(exc, 'strerror', None) or exc})")
        return []
    text = raw.decode("utf-8", errors="replace")
    lines = text.split("\n")
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


def _check_run_folder(path: Path) -> None:
    if not path.exists():
        raise NotARunFolder("no such directory", source=str(path))
    if not path.is_dir():
        raise NotARunFolder("not a directory (expected a run folder results/<stamp>-<suite>/)", source=str(path))
    if not any((path / name).exists() or (path / f"{name}.gz").exists() for name in RUN_FILES):
        raise NotARunFolder(
            "not a run folder: none of " + ", ".join(RUN_FILES) + " is present", source=str(path)
        )


def load_run(path: str | Path) -> RunData:
    """Load a run folder.  Raises :class:`NotARunFolder` only when nothing is usable."""
    root = Path(path)
    _check_run_folder(root)
    problems: list[str] = []

    manifest: dict[str, Any] = {}
    mpath = root / "manifest.json"
    if not mpath.exists():
        problems.append("manifest.json: missing")
    else:
        try:
            loaded = json.loads(mpath.read_text(encoding="utf-8", errors="replace"))
            if isinstance(loaded, dict):
                manifest = loaded
            else:
                problems.append("manifest.json: not a JSON object")
        except json.JSONDecodeError as exc:
            problems.append(f"manifest.json: invalid JSON ({exc.msg} at line {exc.lineno})")
    if manifest or mpath.exists():
        for key in MANIFEST_FIELDS:
            if key not in manifest or manifest.get(key) in (None, ""):
                problems.append(f"manifest.json: field '{key}' missing")

    def jsonl(name: str, required: bool) -> list[dict[str, Any]]:
        p = existing(root / name)
        if not p.exists():
            if required:
                problems.append(f"{name}: missing")
            return []
        return read_jsonl(p, problems, name)

    observer = jsonl("observer.jsonl", True)
    faults = jsonl("faults.jsonl", False)
    cpu = jsonl("cpu.jsonl", True)
    trials = jsonl("trials.jsonl", True)
    runner = jsonl("runner.jsonl", False)

    manifest_nodes = manifest.get("nodes") if isinstance(manifest.get("nodes"), dict) else {}
    names: set[str] = set(manifest_nodes)
    names.update(str(r["node"]) for r in observer if r.get("node") is not None)
    names.update(str(r["node"]) for r in cpu if r.get("node") is not None)
    nodes_dir = root / "nodes"
    if nodes_dir.is_dir():
        names.update(p.name for p in nodes_dir.iterdir() if p.is_dir())

    events: dict[str, list[dict[str, Any]]] = {}
    profiles: dict[str, DriftProfile] = {}
    for node in sorted(names, key=node_sort_key):
        ev_path = existing(nodes_dir / node / "events.jsonl")
        if ev_path.exists():
            events[node] = read_jsonl(ev_path, problems, f"nodes/{node}/events.jsonl")
        else:
            problems.append(f"nodes/{node}/events.jsonl: missing (no daemon log for {node})")
        prof_path = nodes_dir / node / "drift.toml"
        try:
            if prof_path.exists():
                profiles[node] = load_profile(prof_path)
            elif isinstance(manifest_nodes.get(node), dict) and isinstance(manifest_nodes[node].get("profile"), dict):
                profiles[node] = parse_profile(manifest_nodes[node]["profile"], f"manifest nodes.{node}.profile")
                problems.append(f"nodes/{node}/drift.toml: missing, used the manifest's copy")
            else:
                problems.append(f"nodes/{node}/drift.toml: missing (event times aligned by the observer instead)")
        except ProfileError as exc:
            problems.append(f"drift profile of {node}: {exc}")

    return RunData(
        path=root,
        manifest=manifest,
        observer=observer,
        faults=faults,
        cpu=cpu,
        trials=trials,
        runner=runner,
        events=events,
        profiles=profiles,
        nodes=sorted(names, key=node_sort_key),
        problems=problems,
    )


def existing(path: Path) -> Path:
    """``path``, or its gzip-compressed ``path.gz`` when only that exists (the committed
    example keeps its raw records compressed)."""
    gz = path.with_name(path.name + ".gz")
    return gz if not path.exists() and gz.exists() else path


def node_sort_key(name: str) -> tuple[str, int, str]:
    """Sort n2 before n10: split a trailing integer off the name."""
    stem = name.rstrip("0123456789")
    digits = name[len(stem):]
    return (stem, int(digits) if digits else -1, name)
