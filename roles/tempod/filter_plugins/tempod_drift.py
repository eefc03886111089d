"""Ansible filter ``tempod_drift_profile``: a node's drift profile as TOML text.

Owns the per-host choice of profile for the role: explicit per-host values win, the
rest are drawn by :func:`tempod.profile.generate_profiles` (the daemon's own code, so
the lab, the simulator and the runner draw identical profiles from one seed and node
name), and the epoch is kept from the profile already on the node so that re-deploys
leave the hardware clock continuous.  It must not know about hosts or files: the
existing profile comes in as text.
"""

from __future__ import annotations

import time
import tomllib

from ansible.errors import AnsibleFilterError

try:
    from tempod import profile as _profile
except ImportError as exc:  # pragma: no cover - the controller venv has the project
    _profile = None
    _IMPORT_ERROR = exc


def _existing_epoch(existing: str) -> float | None:
    if not existing or not existing.strip():
        return None
    try:
        value = tomllib.loads(existing).get("epoch_unix_s")
    except tomllib.TOMLDecodeError:
        return None  # unreadable: a fresh epoch, the new file replaces it
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def tempod_drift_profile(
    name: str,
    seed: int | str = 1,
    distribution: str = "uniform",
    offset_range_s: list[float] | tuple[float, float] = (-1.0, 1.0),
    rate_range_ppm: list[float] | tuple[float, float] = (-100.0, 100.0),
    offset_s: float | None = None,
    rate_ppm: float | None = None,
    changes: list[dict] | None = None,
    epoch_unix_s: float | None = None,
    existing: str = "",
) -> str:
    if _profile is None:
        raise AnsibleFilterError(f"tempod_drift_profile needs the tempod package on the controller: {_IMPORT_ERROR}")
    epoch = epoch_unix_s if epoch_unix_s is not None else _existing_epoch(existing)
    if epoch is None:
        # first deploy: now, to the millisecond (the file is then stable across runs)
        epoch = round(time.time(), 3)
    try:
        drawn = _profile.generate_profiles(
            [str(name)], seed, distribution, epoch_unix_s=float(epoch),
            offset_s=tuple(float(x) for x in offset_range_s), rate_ppm=tuple(float(x) for x in rate_range_ppm),
        )[str(name)]
        data = {
            "epoch_unix_s": float(epoch),
            "offset_s": float(offset_s) if offset_s is not None else drawn.offset_s,
            "rate_ppm": float(rate_ppm) if rate_ppm is not None else drawn.rate_ppm,
        }
        if changes:
            data["changes"] = [{"at_s": float(c["at_s"]), "rate_ppm": float(c["rate_ppm"])} for c in changes]
        return _profile.dump_profile(_profile.parse_profile(data, source=f"drift profile of {name}"))
    except (_profile.ProfileError, KeyError, TypeError, ValueError) as exc:
        raise AnsibleFilterError(f"drift profile of {name}: {exc}") from exc


class FilterModule:
    def filters(self) -> dict:
        return {"tempod_drift_profile": tempod_drift_profile}
