"""The lab's state file ``lab.json``: what a lab is meant to contain and what was made.

It owns the on-disk record and its atomic replacement (write to a temporary file in
the same folder, fsync, rename), so a crash leaves either the old or the new record,
never half of one.  The record is written *before* each resource is created (intent
first), so ``down`` after a crash knows about everything ``up`` may have made.  It must
not know how resources are created or removed.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import ConfigError

STATE_VERSION = 1


@dataclass
class NodeState:
    name: str
    address: str
    netns: str
    veth_host: str
    #: host PID of the node's sshd, which is PID 1 inside the node's PID namespace
    sshd_pid: int | None = None


@dataclass
class LabState:
    name: str
    subnet: str
    bridge: str
    host_address: str
    nodes: list[NodeState] = field(default_factory=list)
    #: host paths this lab created and must remove (besides its own folder)
    created_paths: list[str] = field(default_factory=list)
    inventory_path: str | None = None
    version: int = STATE_VERSION

    def node(self, name: str) -> NodeState:
        for n in self.nodes:
            if n.name == name:
                return n
        raise ConfigError(f"lab {self.name!r} has no node {name!r} (nodes: {', '.join(n.name for n in self.nodes)})")

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = "lab.json") -> LabState:
        try:
            raw = json.loads(text)
            nodes = [NodeState(**n) for n in raw.pop("nodes", [])]
            return cls(nodes=nodes, **raw)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"unreadable lab state: {exc}", source=source) from exc


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    """Replace ``path`` with ``text`` so readers see the old or the new file, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def save(state: LabState, path: Path) -> None:
    write_atomic(path, state.to_json())


def load(path: Path) -> LabState | None:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    return LabState.from_json(text, source=str(path))
