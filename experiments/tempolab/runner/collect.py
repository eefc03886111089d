"""Log collection: what the runner copies off the nodes into the run folder.

Owns which files come back and where they land: each node's drift profile
(nodes/<name>/drift.toml, also recorded in the manifest's ``nodes``), its event log
(nodes/<name>/events.jsonl), chronyd's logs when protocol ntp is in the suite
(nodes/<name>/chrony/) and ``chronyc`` views at the end of an ntp trial; and the event
logs mapped to reference time through each node's profile for the trial facts. A node
that cannot be reached is an event in runner.jsonl, not an error: the run goes on.
Paths on the node come from :data:`nodelayout.LAYOUT`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ..errors import HostUnreachable
from ..nodelayout import LAYOUT
from ..runschema import read_jsonl
from . import facts, protocols
from .hosts import Host
from .runfolder import RunFolder
from .sshpool import SshPool

Event = Callable[..., None]  # runner.jsonl: event(phase, **fields)


def fetch_profiles(pool: SshPool, hosts: list[Host], rf: RunFolder, event: Event) -> None:
    """Each node's drift profile -> nodes/<name>/drift.toml and the manifest's nodes."""
    nodes = {}
    for h in hosts:
        dest = rf.node_dir(h.name) / "drift.toml"
        prof = None
        try:
            if pool.get(h.name, LAYOUT.profile, dest):
                prof = profile_dict(dest)
        except HostUnreachable as exc:
            event("fetch_failed", node=h.name, error=str(exc))
        nodes[h.name] = {"address": h.address, "profile": prof}
    m = rf.read_manifest()
    m.setdefault("nodes", {}).update(nodes)
    rf.write_manifest(m)


def collect_logs(pool: SshPool, hosts: list[Host], rf: RunFolder, event: Event, *, chrony: bool) -> None:
    """Every node's event log -> nodes/<name>/events.jsonl (SFTP); with ``chrony``
    (protocol ntp in the suite), chronyd's own logs too (nodes/<name>/chrony/)."""
    for h in hosts:
        try:
            ok = pool.get(h.name, LAYOUT.event_log, rf.node_dir(h.name) / "events.jsonl")
            if not ok:
                event("collect_missing", node=h.name, path=LAYOUT.event_log)
            if chrony:
                for name in protocols.CHRONY_LOGS:
                    pool.get(h.name, f"{protocols.CHRONY_LOG_DIR}/{name}",
                             rf.node_dir(h.name) / "chrony" / name)
        except HostUnreachable as exc:
            event("collect_failed", node=h.name, error=str(exc))


def chrony_view(pool: SshPool, hosts: list[Host], rf: RunFolder, event: Event, k: int) -> None:
    """chronyd's own view at the end of trial ``k`` -> nodes/<name>/chronyc-trial<k>.txt."""
    try:
        res = pool.run_many({h.name: protocols.chronyc_view_cmd() for h in hosts}, timeout_s=30)
    except HostUnreachable as exc:
        event("chronyc_failed", trial=k, error=str(exc))
        return
    for n, r in res.items():
        (rf.node_dir(n) / f"chronyc-trial{k}.txt").write_text(r.stdout)


def node_events(rf: RunFolder, hosts: list[Host], samples: list[dict] | None = None) -> dict[str, list[dict]]:
    """The collected event logs, mapped to reference time via each node's drift profile
    (kernel clock mode: via the observer's ``samples``, see facts.disciplined_kernel_clock)."""
    out: dict[str, list[dict]] = {}
    for h in hosts:
        d = rf.node_dir(h.name)
        ev, prof = d / "events.jsonl", d / "drift.toml"
        if not ev.exists():
            continue
        records = read_jsonl(ev)
        mapping = true_at(prof)
        if samples and facts.disciplined_kernel_clock(records):
            mapping = facts.observer_true_at(samples, h.name) or mapping
        out[h.name] = facts.map_events(records, mapping)
    return out


def profile_dict(path: Path) -> dict[str, Any] | None:
    import tomllib

    try:
        return tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return None


def true_at(profile_path: Path) -> Callable[[float], float]:
    """hw -> reference time for a node; identity (with a note) when the profile is missing."""
    try:
        from tempod.profile import load_profile

        return load_profile(profile_path).true_at
    except Exception:  # noqa: BLE001 - missing/invalid profile: hw taken as reference
        return lambda hw: hw
