"""Suite files: YAML -> validated, frozen ``Suite`` objects.

Owns the suite schema (field names, types, defaults, ranges) and the error messages
that name the file and the field path (``leader-kill.yaml: faults[0].at_s: expected a
number, got 'soon'``). It does not know about hosts, SSH or the run folder; the only
I/O is reading the YAML file.

A suite may have a ``sweep``: a list of override mappings (keys ``nodes``,
``drift.max_ppm``, ``drift.distribution``, ``daemon.<timer>``); each sweep point runs
``trials`` trials, so a suite has ``len(sweep or [{}]) * trials`` trials per protocol.

``protocol`` (``berkeley``, ``cristian``, ``ntp`` or a list of them) runs the whole set
of trials once per protocol, in the order given, on the same nodes and drift profiles
and with the same fault times (trial ``j`` of every protocol draws them from the same
seed): ``len(protocols) * len(sweep or [{}]) * trials`` trials in all.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from tempod.facts import history as fhistory
from tempod.nodeconfig import NodeConfig

from ..errors import ConfigError
from ..lab.plan import DEFAULT_NAME

# A suite may not ask for more drift than the daemon's frequency loop can cancel by
# default; the bound is the daemon's, not a second number kept here.
MAX_DRIFT_PPM = NodeConfig.__dataclass_fields__["freq_max_ppm"].default

# package data (pyproject ships tempolab/suites/*.yaml), so an installed tempo has them too
SUITES_DIR = Path(__file__).resolve().parents[1] / "suites"

# the one fault vocabulary (tempod.facts.history); old names (pause, kill-master, ...) are accepted
FAULT_KINDS = fhistory.FAULT_KINDS
# kinds that exist only through tc netem (a kernel with sch_netem: VMs, not this lab host)
NETEM_KINDS = ("delay", "jitter", "asym_delay", "netem_loss")
# how node clocks drift (docs/clock.md): libfaketime per daemon process, or the VM's own
# kernel clock drifted below the guest kernel (qemu under libfaketime; VMs only)
CLOCK_MODES = ("faketime", "kernel")
TARGETS = ("master", "random_follower", "all", "side_a", "side_b")
DISTRIBUTIONS = ("uniform", "normal")  # as tempod.profile.generate_profiles
# daemon timers the suite may set; each becomes the Ansible variable tempod_<key>
DAEMON_KEYS: dict[str, type] = {
    "round_interval_s": float,
    "heartbeat_interval_s": float,
    "master_timeout_min_s": float,
    "master_timeout_max_s": float,
    "probes_per_round": int,
    "probe_timeout_s": float,
    "election_timeout_min_s": float,
    "election_timeout_max_s": float,
    "answer_delay_max_s": float,
    "refuse_window_s": float,
    "purge_after_missed": int,
    "ntp_port": int,
    "tsp_port": int,
    "cpu_report_interval_s": float,
    # not a timer: the bound on the learned frequency correction; drift profiles of
    # +-10 % need >= 220000 (a follower may have to run 20 % off its hardware rate)
    "freq_max_ppm": float,
    # not a timer either: 0 = normal scheduling, 1-99 = SCHED_FIFO priority
    "realtime_priority": int,
}
# A suite that says nothing about these runs the daemon's own defaults (NodeConfig).
DAEMON_DEFAULTS: dict[str, Any] = {
    k: NodeConfig.__dataclass_fields__[k].default
    for k in ("round_interval_s", "probes_per_round", "probe_timeout_s",
              "election_timeout_min_s", "election_timeout_max_s", "ntp_port", "tsp_port")
}
REQUIREMENTS = ("netem", "lab")
# berkeley: tempod's Berkeley + election; cristian: tempod polling one time server;
# ntp: stock chronyd (roles/chrony).  See docs/baselines.md.
PROTOCOLS = ("berkeley", "cristian", "ntp")


@dataclass(frozen=True)
class Drift:
    distribution: str = "uniform"   # how each node's rate is drawn, see docs/runner.md
    max_ppm: float = 100.0          # |rate| bound, ppm (100000 ppm = 10 %)
    max_offset_s: float = 1.0       # |initial offset| bound, seconds
    seed: int | None = None         # None: the suite's seed


@dataclass(frozen=True)
class FaultSpec:
    kind: str
    at_s: float | None = None                     # fixed time after warm-up, seconds
    window_s: tuple[float, float] | None = None   # or drawn uniformly in [min, max]
    duration_s: float | None = None               # None: never reverted inside the trial
    targets: str | tuple[str, ...] = "master"     # a selector of TARGETS or node names
    percent: float | None = None                  # loss
    delay_ms: float | None = None                 # delay / jitter / asym_delay (targets' egress)
    jitter_ms: float | None = None
    reverse_delay_ms: float | None = None         # asym_delay: the others' egress to the targets
    side_a: int | tuple[str, ...] | None = None   # partition: first k nodes or names

    def draw_at(self, rng: random.Random) -> float:
        """Time of this fault after warm-up (s); a window is drawn from ``rng``."""
        if self.window_s is not None:
            lo, hi = self.window_s
            return rng.uniform(lo, hi)
        assert self.at_s is not None
        return self.at_s


@dataclass(frozen=True)
class Suite:
    name: str
    source: str
    description: str = ""
    seed: int = 1
    inventory: str | None = None      # None: the local lab
    provider: str | None = None       # lab | vagrant | inventory; None: inventory if given, else lab
    clock_mode: str = "faketime"      # CLOCK_MODES; kernel needs VMs (provider vagrant)
    lab_name: str = DEFAULT_NAME
    lab_subnet: str | None = None
    nodes: int = 3
    drift: Drift = field(default_factory=Drift)
    daemon: dict[str, Any] = field(default_factory=lambda: dict(DAEMON_DEFAULTS))
    warm_up_s: float = 20.0
    trials: int = 1
    trial_duration_s: float = 30.0
    settle_s: float | None = None     # None: derived from the timers (settle_time_s)
    healthy_timeout_s: float = 60.0
    observer_hz: float = 10.0
    observer_timeout_s: float = 0.5
    # the observer's clock filter (runner/observer.py): re-query a node, up to
    # observer_retries times per sweep, when a reply's error bound exceeds
    # max(observer_retry_bound_s, observer_retry_factor x its running median bound)
    observer_retries: int = 2
    observer_retry_bound_s: float = 100e-6
    observer_retry_factor: float = 3.0
    # 0: the observer thread at normal priority; 1-99: SCHED_FIFO (root on the controller)
    observer_realtime_priority: int = 0
    cpu_interval_s: float = 5.0
    faults: tuple[FaultSpec, ...] = ()
    requires: tuple[str, ...] = ()
    sweep: tuple[dict[str, Any], ...] = ()
    redeploy_each_trial: bool = False
    protocols: tuple[str, ...] = ("berkeley",)

    @property
    def trials_per_protocol(self) -> int:
        return max(1, len(self.sweep)) * self.trials

    @property
    def n_trials(self) -> int:
        return len(self.protocols) * self.trials_per_protocol

    def protocol_of(self, trial: int) -> str:
        """The protocol of ``trial`` (0-based): each protocol runs all its trials in turn."""
        return self.protocols[trial // self.trials_per_protocol]

    def base_trial(self, trial: int) -> int:
        """``trial`` (0-based) within its protocol: the same number for the same sweep point
        and fault draw under every protocol."""
        return trial % self.trials_per_protocol

    def settle_time_s(self) -> float:
        """Time after the last fault within which one master must be settled (s).

        Two election timeouts (a first election may collide) plus two rounds (the new
        master's first round and the followers' first correction).
        """
        if self.settle_s is not None:
            return self.settle_s
        return 2 * float(self.daemon["election_timeout_max_s"]) + 2 * float(
            self.daemon["round_interval_s"]
        )

    def point(self, trial: int) -> dict[str, Any]:
        """The sweep overrides in force for ``trial`` (0-based)."""
        if not self.sweep:
            return {}
        return dict(self.sweep[self.base_trial(trial) // self.trials])

    def at_point(self, trial: int) -> "Suite":
        """This suite with the sweep point of ``trial`` applied (sweep removed)."""
        over = self.point(trial)
        drift = self.drift
        daemon = dict(self.daemon)
        nodes = self.nodes
        for key, value in over.items():
            if key == "nodes":
                nodes = value
            elif key.startswith("drift."):
                drift = dataclasses.replace(drift, **{key[6:]: value})
            elif key.startswith("daemon."):
                daemon[key[7:]] = value
        return dataclasses.replace(self, nodes=nodes, drift=drift, daemon=daemon, sweep=())

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------- validation helpers


class _Checker:
    """Reads fields out of plain YAML data, raising ConfigError with the field path."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, path: str, message: str) -> ConfigError:
        return ConfigError(message, source=self.source, field=path)

    def number(self, value: Any, path: str, *, minimum: float | None = None,
               maximum: float | None = None, positive: bool = False) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(path, f"expected a number, got {value!r}")
        try:
            v = float(value)
        except OverflowError:  # an int beyond float range (found by tests/test_hardening_fuzz.py)
            raise self.fail(path, f"number out of range, got {value!r}") from None
        if not math.isfinite(v):  # NaN passes every < / > range check
            raise self.fail(path, f"must be a finite number, got {value!r}")
        if positive and v <= 0:
            raise self.fail(path, f"must be > 0, got {value!r}")
        if minimum is not None and v < minimum:
            raise self.fail(path, f"must be >= {minimum:g}, got {value!r}")
        if maximum is not None and v > maximum:
            raise self.fail(path, f"must be <= {maximum:g}, got {value!r}")
        return v

    def integer(self, value: Any, path: str, *, minimum: int | None = None,
                maximum: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(path, f"expected an integer, got {value!r}")
        if minimum is not None and value < minimum:
            raise self.fail(path, f"must be >= {minimum}, got {value!r}")
        if maximum is not None and value > maximum:
            raise self.fail(path, f"must be <= {maximum}, got {value!r}")
        return value

    def string(self, value: Any, path: str, *, choices: tuple[str, ...] | None = None) -> str:
        if not isinstance(value, str):
            raise self.fail(path, f"expected a string, got {value!r}")
        if choices is not None and value not in choices:
            raise self.fail(path, f"expected one of {', '.join(choices)}, got {value!r}")
        return value

    def mapping(self, value: Any, path: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, f"expected a mapping, got {value!r}")
        for key in value:
            if key not in allowed:
                where = f"{path}.{key}" if path else str(key)
                raise self.fail(where, f"unknown field (allowed: {', '.join(allowed)})")
        return value

    def str_list(self, value: Any, path: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not value:
            raise self.fail(path, f"expected a non-empty list of names, got {value!r}")
        return tuple(self.string(v, f"{path}[{i}]") for i, v in enumerate(value))


_TOP = ("name", "description", "seed", "inventory", "provider", "lab", "nodes", "drift", "daemon",
        "warm_up_s", "trials", "trial_duration_s", "settle_s", "healthy_timeout_s",
        "observer_hz", "observer_timeout_s", "observer_retries", "observer_retry_bound_s",
        "observer_retry_factor", "observer_realtime_priority", "cpu_interval_s", "faults", "requires",
        "clock_mode",
        "sweep", "redeploy_each_trial", "protocol")
_FAULT = ("kind", "at_s", "duration_s", "targets", "percent", "delay_ms", "jitter_ms",
          "reverse_delay_ms", "side_a")


def _drift(c: _Checker, raw: Any, path: str, base: Drift) -> Drift:
    d = c.mapping(raw, path, ("distribution", "max_ppm", "max_offset_s", "seed"))
    out = base
    if "distribution" in d:
        out = dataclasses.replace(out, distribution=c.string(
            d["distribution"], f"{path}.distribution", choices=DISTRIBUTIONS))
    if "max_ppm" in d:
        # 10 % = 100000 ppm is the top of the drift sweep; a drift beyond the daemon's
        # frequency bound (NodeConfig.freq_max_ppm) could never be corrected
        out = dataclasses.replace(out, max_ppm=c.number(
            d["max_ppm"], f"{path}.max_ppm", minimum=0, maximum=MAX_DRIFT_PPM))
    if "max_offset_s" in d:
        out = dataclasses.replace(out, max_offset_s=c.number(
            d["max_offset_s"], f"{path}.max_offset_s", minimum=0, maximum=86400))
    if "seed" in d:
        out = dataclasses.replace(out, seed=None if d["seed"] is None else c.integer(
            d["seed"], f"{path}.seed"))
    return out


def _daemon(c: _Checker, raw: Any, path: str, base: dict[str, Any]) -> dict[str, Any]:
    d = c.mapping(raw, path, tuple(DAEMON_KEYS))
    out = dict(base)
    for key, value in d.items():
        if DAEMON_KEYS[key] is int:
            out[key] = c.integer(value, f"{path}.{key}", minimum=0)
        else:
            out[key] = c.number(value, f"{path}.{key}", positive=True)
    if out.get("realtime_priority", 0) > 99:
        raise c.fail(f"{path}.realtime_priority",
                     f"expected 0 (off) or a SCHED_FIFO priority 1-99, got {out['realtime_priority']}")
    if out["election_timeout_min_s"] > out["election_timeout_max_s"]:
        raise c.fail(f"{path}.election_timeout_min_s",
                     f"{out['election_timeout_min_s']} > election_timeout_max_s "
                     f"{out['election_timeout_max_s']}")
    return out


def _fault(c: _Checker, raw: Any, path: str) -> FaultSpec:
    d = c.mapping(raw, path, _FAULT)
    if "kind" not in d:
        raise c.fail(f"{path}.kind", f"missing (one of {', '.join(FAULT_KINDS)})")
    kind = fhistory.fault_kind(c.string(d["kind"], f"{path}.kind"))
    if kind not in FAULT_KINDS:
        raise c.fail(f"{path}.kind", f"expected one of {', '.join(FAULT_KINDS)}, got {d['kind']!r}")
    at_s = window = None
    if "at_s" not in d:
        raise c.fail(f"{path}.at_s", "missing (seconds after warm-up, or [min, max])")
    raw_at = d["at_s"]
    if isinstance(raw_at, list):
        if len(raw_at) != 2:
            raise c.fail(f"{path}.at_s", f"a window must be [min, max], got {raw_at!r}")
        lo = c.number(raw_at[0], f"{path}.at_s[0]", minimum=0)
        hi = c.number(raw_at[1], f"{path}.at_s[1]", minimum=0)
        if lo > hi:
            raise c.fail(f"{path}.at_s", f"window min {lo:g} > max {hi:g}")
        window = (lo, hi)
    else:
        at_s = c.number(raw_at, f"{path}.at_s", minimum=0)
    duration = None
    if d.get("duration_s") is not None:
        duration = c.number(d["duration_s"], f"{path}.duration_s", positive=True)
    targets: str | tuple[str, ...] = "all" if kind in ("loss", "delay", "jitter", "netem_loss") else "master"
    if "targets" in d:
        t = d["targets"]
        if isinstance(t, list):
            targets = c.str_list(t, f"{path}.targets")
        else:
            targets = c.string(t, f"{path}.targets", choices=TARGETS)
    if kind == "partition" and "targets" in d:
        raise c.fail(f"{path}.targets", "a partition has sides (side_a), not targets")
    percent = delay = jitter = reverse = None
    side_a: int | tuple[str, ...] | None = None
    if kind in ("loss", "netem_loss"):
        if "percent" not in d:
            raise c.fail(f"{path}.percent", "missing (loss percent, 0..100)")
        percent = c.number(d["percent"], f"{path}.percent", minimum=0, maximum=100)
    elif "percent" in d:
        raise c.fail(f"{path}.percent", f"only for kinds loss/netem_loss, not {kind}")
    if kind in ("delay", "jitter", "asym_delay"):
        if "delay_ms" not in d:
            raise c.fail(f"{path}.delay_ms", "missing (milliseconds)")
        delay = c.number(d["delay_ms"], f"{path}.delay_ms", minimum=0, maximum=10000)
        if kind == "jitter":
            if "jitter_ms" not in d:
                raise c.fail(f"{path}.jitter_ms", "missing (milliseconds)")
        if "jitter_ms" in d:
            jitter = c.number(d["jitter_ms"], f"{path}.jitter_ms", minimum=0, maximum=10000)
        if kind == "asym_delay":
            if "reverse_delay_ms" not in d:
                raise c.fail(f"{path}.reverse_delay_ms", "missing (milliseconds, the other way)")
            reverse = c.number(d["reverse_delay_ms"], f"{path}.reverse_delay_ms", minimum=0, maximum=10000)
    else:
        for k in ("delay_ms", "jitter_ms"):
            if k in d:
                raise c.fail(f"{path}.{k}", f"only for kinds delay/jitter/asym_delay, not {kind}")
    if "reverse_delay_ms" in d and kind != "asym_delay":
        raise c.fail(f"{path}.reverse_delay_ms", f"only for kind asym_delay, not {kind}")
    if kind == "partition":
        raw_side = d.get("side_a")
        if raw_side is None:
            side_a = None  # half the nodes, see faults.split_sides
        elif isinstance(raw_side, list):
            side_a = c.str_list(raw_side, f"{path}.side_a")
        else:
            side_a = c.integer(raw_side, f"{path}.side_a", minimum=1)
    elif "side_a" in d:
        raise c.fail(f"{path}.side_a", f"only for kind partition, not {kind}")
    if kind in ("partition", "loss", "stop", *NETEM_KINDS) and duration is None:
        raise c.fail(f"{path}.duration_s", f"a {kind} fault needs a duration (it is healed after it)")
    return FaultSpec(kind=kind, at_s=at_s, window_s=window, duration_s=duration,
                     targets=targets, percent=percent, delay_ms=delay, jitter_ms=jitter,
                     reverse_delay_ms=reverse, side_a=side_a)


def parse_protocols(c: _Checker, raw: Any, path: str) -> tuple[str, ...]:
    """``berkeley`` or a non-empty list of distinct PROTOCOLS."""
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        raise c.fail(path, f"expected one of {', '.join(PROTOCOLS)} or a list of them, got []")
    out = tuple(c.string(v, f"{path}[{i}]" if isinstance(raw, list) else path, choices=PROTOCOLS)
                for i, v in enumerate(items))
    if len(set(out)) != len(out):
        raise c.fail(path, f"lists a protocol twice: {list(out)}")
    return out


def parse_suite(data: Any, source: str) -> Suite:
    """Validate plain YAML data; ``source`` (the file name) prefixes every error."""
    c = _Checker(source)
    if not isinstance(data, dict):
        raise ConfigError(f"a suite file is a mapping, got {type(data).__name__}", source=source)
    c.mapping(data, "", _TOP)
    stem = Path(source).stem
    kw: dict[str, Any] = {"name": stem, "source": source}
    if "name" in data:
        kw["name"] = c.string(data["name"], "name")
    if "description" in data:
        kw["description"] = c.string(data["description"], "description")
    if "seed" in data:
        kw["seed"] = c.integer(data["seed"], "seed")
    if data.get("inventory") is not None:
        kw["inventory"] = c.string(data["inventory"], "inventory")
    if data.get("provider") is not None:
        kw["provider"] = c.string(data["provider"], "provider")
        if kw["provider"] not in ("lab", "vagrant", "inventory"):
            raise ConfigError("must be one of lab, vagrant, inventory", source=source,
                              field="provider")
    if "lab" in data:
        lab = c.mapping(data["lab"], "lab", ("name", "subnet"))
        if "name" in lab:
            kw["lab_name"] = c.string(lab["name"], "lab.name")
        if "subnet" in lab:
            kw["lab_subnet"] = c.string(lab["subnet"], "lab.subnet")
    if "nodes" in data:
        kw["nodes"] = c.integer(data["nodes"], "nodes", minimum=1, maximum=64)
    if "drift" in data:
        kw["drift"] = _drift(c, data["drift"], "drift", Drift())
    kw["daemon"] = _daemon(c, data.get("daemon", {}), "daemon", DAEMON_DEFAULTS)
    for key in ("warm_up_s", "settle_s"):
        if data.get(key) is not None:
            kw[key] = c.number(data[key], key, minimum=0)
    for key in ("trial_duration_s", "healthy_timeout_s", "observer_timeout_s",
                "cpu_interval_s"):
        if key in data:
            kw[key] = c.number(data[key], key, positive=True)
    if "observer_hz" in data:
        kw["observer_hz"] = c.number(data["observer_hz"], "observer_hz", positive=True,
                                     maximum=1000)
    if "observer_retries" in data:
        kw["observer_retries"] = c.integer(data["observer_retries"], "observer_retries", minimum=0,
                                           maximum=10)
    if "observer_retry_bound_s" in data:
        kw["observer_retry_bound_s"] = c.number(data["observer_retry_bound_s"], "observer_retry_bound_s",
                                                minimum=0, maximum=1.0)
    if "observer_retry_factor" in data:
        kw["observer_retry_factor"] = c.number(data["observer_retry_factor"], "observer_retry_factor",
                                               minimum=1, maximum=1000)
    if "observer_realtime_priority" in data:
        kw["observer_realtime_priority"] = c.integer(data["observer_realtime_priority"],
                                                     "observer_realtime_priority", minimum=0, maximum=99)
    if "trials" in data:
        kw["trials"] = c.integer(data["trials"], "trials", minimum=1)
    if "clock_mode" in data:
        kw["clock_mode"] = c.string(data["clock_mode"], "clock_mode", choices=CLOCK_MODES)
    if "redeploy_each_trial" in data:
        if not isinstance(data["redeploy_each_trial"], bool):
            raise c.fail("redeploy_each_trial", f"expected true/false, got {data['redeploy_each_trial']!r}")
        kw["redeploy_each_trial"] = data["redeploy_each_trial"]
    if "protocol" in data:
        kw["protocols"] = parse_protocols(c, data["protocol"], "protocol")
    faults = data.get("faults", [])
    if not isinstance(faults, list):
        raise c.fail("faults", f"expected a list, got {faults!r}")
    kw["faults"] = tuple(_fault(c, f, f"faults[{i}]") for i, f in enumerate(faults))
    requires = data.get("requires", [])
    if not isinstance(requires, list):  # list(None) / list(5) would raise TypeError
        raise c.fail("requires", f"expected a list, got {requires!r}")
    requires = list(requires)
    for i, r in enumerate(requires):
        c.string(r, f"requires[{i}]", choices=REQUIREMENTS)
    if any(f.kind in NETEM_KINDS for f in kw["faults"]) and "netem" not in requires:
        requires.append("netem")  # these kinds exist only through netem
    kw["requires"] = tuple(requires)
    sweep = data.get("sweep", [])
    if not isinstance(sweep, list):
        raise c.fail("sweep", f"expected a list of override mappings, got {sweep!r}")
    points = []
    for i, point in enumerate(sweep):
        p = f"sweep[{i}]"
        if not isinstance(point, dict) or not point:
            raise c.fail(p, f"expected a non-empty mapping, got {point!r}")
        checked: dict[str, Any] = {}
        for key, value in point.items():
            if key == "nodes":
                checked[key] = c.integer(value, f"{p}.nodes", minimum=1, maximum=64)
            elif key == "drift.max_ppm":
                checked[key] = c.number(value, f"{p}.{key}", minimum=0, maximum=MAX_DRIFT_PPM)
            elif key == "drift.distribution":
                checked[key] = c.string(value, f"{p}.{key}", choices=DISTRIBUTIONS)
            elif isinstance(key, str) and key.startswith("daemon.") and key[7:] in DAEMON_KEYS:
                checked[key] = (c.integer(value, f"{p}.{key}", minimum=0)
                                if DAEMON_KEYS[key[7:]] is int
                                else c.number(value, f"{p}.{key}", positive=True))
            else:
                raise c.fail(f"{p}.{key}", "unknown sweep key (nodes, drift.max_ppm, "
                             "drift.distribution, daemon.<timer>)")
        points.append(checked)
    kw["sweep"] = tuple(points)
    suite = Suite(**kw)
    for i, f in enumerate(suite.faults):
        if isinstance(f.side_a, int) and f.side_a >= suite.nodes:
            raise c.fail(f"faults[{i}].side_a",
                         f"side A of {f.side_a} nodes leaves side B empty ({suite.nodes} nodes)")
        last = (f.window_s[1] if f.window_s else f.at_s or 0.0) + (f.duration_s or 0.0)
        if last > suite.trial_duration_s:
            raise c.fail(f"faults[{i}]", f"ends at {last:g} s, after trial_duration_s "
                         f"{suite.trial_duration_s:g} s")
    return suite


def load_suite(name_or_path: str) -> Suite:
    """Load a built-in suite by name (``smoke``) or a YAML file by path."""
    return load_suite_raw(name_or_path)[0]


def load_suite_raw(name_or_path: str) -> tuple[Suite, Any]:
    """Like :func:`load_suite`, also returning the plain YAML data (kept in the manifest)."""
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = SUITES_DIR / f"{name_or_path}.yaml"
        if not path.exists():
            known = ", ".join(sorted(p.stem for p in SUITES_DIR.glob("*.yaml")))
            raise ConfigError(f"no such suite {name_or_path!r} (built-in: {known})")
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read suite: {exc.strerror}", source=str(path)) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", source=path.name) from None
    try:
        data = yaml.safe_load(text)
        copied = copy.deepcopy(data)
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", source=path.name) from exc
    except RecursionError:  # thousands of nested [ or {: PyYAML's composer recurses per level
        raise ConfigError("not a usable suite: nested too deeply", source=path.name) from None
    return parse_suite(copied, path.name), data


def builtin_suites() -> list[str]:
    return sorted(p.stem for p in SUITES_DIR.glob("*.yaml"))
