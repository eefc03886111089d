"""Read a run folder into memory, tolerating damage and recording every problem.

Owns what a reading of a folder reports as missing or damaged: which files are
required, the manifest's required fields, per-node event logs and drift profiles
(each JSON-lines file may also be stored gzip-compressed as NAME.jsonl.gz).  File
names, record fields, the schema version and the JSON-lines parser (a last line cut
mid-way is dropped and reported, not fatal) are :mod:`tempolab.runschema`'s.  It does not
interpret the records (that is :mod:`.tables`) and never writes anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..runschema import MANIFEST, RUN_FILES, existing, read_jsonl, suite_name, upgrade
from tempod.profile import DriftProfile, ProfileError, load_profile, parse_profile

MANIFEST_FIELDS = MANIFEST.required


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
        return suite_name(self.manifest)


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
    problems += upgrade(manifest)
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


def node_sort_key(name: str) -> tuple[str, int, str]:
    """Sort n2 before n10: split a trailing integer off the name."""
    stem = name.rstrip("0123456789")
    digits = name[len(stem):]
    return (stem, int(digits) if digits else -1, name)
