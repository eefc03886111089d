"""``tempod.toml``: load, validate strictly, and split into core and runtime settings.

Owns the file format of docs/architecture.md ("Configuration file"): every key, its
type, its default and its allowed range live in one table (``SCHEMA``), which also
generates the reference in docs/daemon.md (``reference_markdown``) and the effective
config printed by ``tempod --check`` (``to_toml``).  Every error is a
:class:`ConfigError` whose message starts with the key path, e.g.
``timers.round_interval_s: must be > 0, got -1``.

The result is a :class:`DaemonConfig`: the core's :class:`~tempod.nodeconfig.NodeConfig`
plus :class:`RuntimeSettings` (key file, log path, report interval) that only the
runtime uses.  This module reads the config file and checks that the key file exists;
it knows nothing about sockets, clocks or the key file's contents (``auth`` owns those).
"""

from __future__ import annotations

import ipaddress
import math
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .nodeconfig import NodeConfig, Peer
from .nodeconfig import default as _nd   # every node default lives in NodeConfig

DEFAULT_PATH = "/etc/tempo/tempod.toml"
MAX_NAME_BYTES = 63  # TSP name field is 64 bytes with the NUL (wire.NAME_FIELD_LEN)


class ConfigError(ValueError):
    """The config file is missing, unreadable, not TOML, or has a bad value.

    ``key`` is the dotted key path (``""`` for whole-file problems); ``str()`` is the
    one-line message that ``tempod`` prints.
    """

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        super().__init__(f"{key}: {message}" if key else message)


# --- schema (data, not code) -------------------------------------------------------

Check = Callable[[Any], str | None]  # returns why the value is bad, or None


def _gt(lo: float) -> Check:
    return lambda v: None if v > lo else f"must be > {lo:g}, got {v!r}"


def _ge(lo: float) -> Check:
    return lambda v: None if v >= lo else f"must be >= {lo:g}, got {v!r}"


def _between(lo: float, hi: float) -> Check:
    return lambda v: None if lo <= v <= hi else f"must be in [{lo:g}, {hi:g}], got {v!r}"


def _open_between(lo: float, hi: float) -> Check:
    return lambda v: None if lo < v < hi else f"must be > {lo:g} and < {hi:g}, got {v!r}"


def _one_of(*choices: str) -> Check:
    return lambda v: None if v in choices else f"must be one of {', '.join(map(repr, choices))}, got {v!r}"


def _name_problem(v: str) -> str | None:
    if not v:
        return "must not be empty"
    if not v.isascii() or not v.isprintable():
        return f"must be printable ASCII, got {v!r}"
    if " " in v:
        return f"must not contain spaces, got {v!r}"
    if len(v) > MAX_NAME_BYTES:
        return f"must be at most {MAX_NAME_BYTES} bytes (TSP name field), got {len(v)}"
    return None


def _address_problem(v: str) -> str | None:
    try:
        ipaddress.ip_address(v)
    except ValueError:
        return f"must be an IPv4 or IPv6 address (no host names: the daemon must not depend on DNS), got {v!r}"
    return None


def _non_empty(v: str) -> str | None:
    return None if v else "must not be empty"


@dataclass(frozen=True)
class Key:
    """One config key: its TOML type, default (None = required), range check and meaning."""
    type: type | str            # str/int/float/bool, or "hosts" / "names" for the two lists
    default: Any
    check: Check | None
    doc: str


SCHEMA: dict[str, dict[str, Key]] = {
    "node": {
        "name": Key(str, None, _name_problem, "TSP name of this node: printable ASCII, no spaces, <= 63 bytes. Required."),
        "address": Key(str, None, _address_problem, "IP address both sockets bind to; peers reach this node there. Required."),
        "tsp_port": Key(int, _nd("tsp_port"), _between(1, 65535), "UDP port of the TSP protocol (peers and tempoctl); the same on every node."),
        "ntp_port": Key(int, _nd("ntp_port"), _between(0, 65535), "UDP port of the NTP responder; 0 disables it."),
        "master_eligible": Key(bool, _nd("master_eligible"), None, "false: this node never becomes master (it still votes and follows)."),
    },
    "peers": {
        "hosts": Key("hosts", [], None, "Every other node of the group: [{name, address}]. TSP broadcast is a unicast to each."),
        "trusted": Key("names", [], None, "Names allowed to become master; empty = every eligible node."),
    },
    "auth": {
        "key_file": Key(str, "/etc/tempo/tempo.key", _non_empty, "Shared secret (hex, >= 32 bytes decoded). Relative paths are relative to the config file."),
        "key_id": Key(int, 1, _between(0, 65535), "Key id (u16) written in each packet's trailer."),
        "required": Key(bool, True, None, "Reject unauthenticated packets. false only for tests on loopback."),
    },
    "timers": {
        "round_interval_s": Key(float, _nd("round_interval_s"), _gt(0), "Master: seconds between synchronization rounds."),
        "heartbeat_interval_s": Key(float, _nd("heartbeat_interval_s"), _gt(0), "Master: seconds between HEARTBEATs to each follower (independent of rounds)."),
        "master_timeout_min_s": Key(float, _nd("master_timeout_min_s"), _gt(0), "Follower: lower end of the randomized master-loss timeout (>= 3 heartbeat intervals)."),
        "master_timeout_max_s": Key(float, _nd("master_timeout_max_s"), _gt(0), "Follower: upper end of the randomized master-loss timeout (>= min)."),
        "probes_per_round": Key(int, _nd("probes_per_round"), _between(1, 64), "Probe exchanges per follower per round (the smallest round trip wins)."),
        "probe_timeout_s": Key(float, _nd("probe_timeout_s"), _gt(0), "Seconds to wait for one PROBE_REPLY."),
        "election_timeout_min_s": Key(float, _nd("election_timeout_min_s"), _gt(0), "Lower end of the randomized wait before standing (no master known, or a lost candidacy)."),
        "election_timeout_max_s": Key(float, _nd("election_timeout_max_s"), _gt(0), "Upper end of the randomized election timeout (>= min)."),
        "answer_delay_max_s": Key(float, _nd("answer_delay_max_s"), _ge(0), "Random delay before answering a broadcast (spreads replies)."),
        "refuse_window_s": Key(float, _nd("refuse_window_s"), _gt(0), "After accepting a candidate, refuse others for this long."),
        "retransmit_initial_s": Key(float, _nd("retransmit_initial_s"), _gt(0), "First retransmission timeout of a state-changing message (doubles each try)."),
        "retransmit_max_tries": Key(int, _nd("retransmit_max_tries"), _between(1, 32), "Sends of a state-changing message before the peer counts one miss."),
        "purge_after_missed": Key(int, _nd("purge_after_missed"), _between(1, 1000), "Consecutive missed rounds before the master drops a follower."),
    },
    "clock": {
        "backend": Key(str, _nd("backend"), _one_of("process", "kernel"), "process: the daemon's own clock (libfaketime drifts it); kernel: adjust the system clock (CAP_SYS_TIME)."),
        "slew_max_ppm": Key(float, _nd("slew_max_ppm"), _open_between(0, 1e6), "Bound on the slew rate of offset corrections (adjtime-like)."),
        "step_threshold_s": Key(float, _nd("step_threshold_s"), _gt(0), "Larger forward corrections are stepped; backward ones are always slewed."),
        "freq_max_ppm": Key(float, _nd("freq_max_ppm"), _open_between(0, 1e6), "Bound on the learned frequency correction."),
    },
    "sync": {
        "agreement_s": Key(float, _nd("agreement_s"), _gt(0), "Fault-tolerant average: clocks within this of the group agree."),
        "settime_threshold_s": Key(float, _nd("settime_threshold_s"), _gt(0), "Corrections beyond this go out as SETTIME instead of ADJTIME."),
    },
    "log": {
        "event_log": Key(str, "/var/log/tempo/events.jsonl", _non_empty, "JSON-lines event log (reopened on SIGHUP). Relative paths are relative to the config file."),
        "cpu_report_interval_s": Key(float, 10.0, _gt(0), "Seconds between `cpu` and `counters` events."),
        "trace": Key(bool, False, None, "Start with message tracing on (a `trace` event per message in and out)."),
    },
    "protocol": {
        "mode": Key(str, "berkeley", _one_of("berkeley", "cristian"), "berkeley: Berkeley rounds and the Gusella-Zatti election; cristian: poll one time server (no election, docs/baselines.md)."),
        "time_server": Key(str, "", None, "cristian: the node name of the time server (this node or a peer); it runs free on its hardware clock."),
    },
    "process": {
        "realtime_priority": Key(int, 0, _between(0, 99), "0: normal scheduling. 1-99: run under SCHED_FIFO at this priority (as chronyd -P, ntpd -N), so a busy host cannot preempt the daemon between a timestamp and its sendto; needs root or CAP_SYS_NICE, else a warning and normal scheduling."),
    },
}


# --- result ------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class RuntimeSettings:
    """What only the runtime needs: ``[auth]`` and ``[log]``. Paths are absolute."""
    key_file: Path
    key_id: int
    auth_required: bool
    event_log: Path
    cpu_report_interval_s: float
    trace: bool
    realtime_priority: int = 0   # [process]; 0 = normal scheduling


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    node: NodeConfig
    runtime: RuntimeSettings
    source: Path | None       # the file it came from (None when built from a dict)
    values: dict[str, dict[str, Any]]  # the effective value of every key, by section
    mode: str = "berkeley"             # [protocol]: which core runs (cristian.make_core)
    time_server: str = ""

    @property
    def tsp_addr(self) -> tuple[str, int]:
        return (self.node.address, self.node.tsp_port)

    def peer_address(self, name: str) -> tuple[str, int]:
        """(address, tsp_port) of the configured peer ``name``; KeyError if unknown."""
        for p in self.node.peers:
            if p.name == name:
                return (p.address, self.node.tsp_port)
        raise KeyError(name)


# --- loading -----------------------------------------------------------------------

def load(path: str | os.PathLike[str]) -> DaemonConfig:
    """Read, parse and validate ``path``; raise ConfigError (never OSError/TOMLDecodeError)."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError("", f"config file {p} does not exist") from None
    except OSError as exc:
        raise ConfigError("", f"cannot read config file {p}: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError("", f"{p}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("", f"{p}: invalid TOML: {exc}") from None
    except RecursionError:  # thousands of nested [ or {: tomllib recurses per level
        raise ConfigError("", f"{p}: invalid TOML: nested too deeply") from None
    return from_dict(data, base_dir=p.resolve().parent, source=p, check_files=True)


def from_dict(data: dict[str, Any], base_dir: Path | None = None, source: Path | None = None,
              check_files: bool = True) -> DaemonConfig:
    """Validate an already-parsed TOML document. Pure apart from the key-file check."""
    base = base_dir if base_dir is not None else Path.cwd()
    if not isinstance(data, dict):
        raise ConfigError("", f"config must be a table, got {type(data).__name__}")
    for section in data:
        if section not in SCHEMA:
            raise ConfigError(section, f"unknown section (known: {', '.join(SCHEMA)})")
    values: dict[str, dict[str, Any]] = {}
    for section, keys in SCHEMA.items():
        table = data.get(section, {})
        if not isinstance(table, dict):
            raise ConfigError(section, f"must be a table, got {_tname(table)}")
        for key in table:
            if key not in keys:
                raise ConfigError(f"{section}.{key}", f"unknown key (known in [{section}]: {', '.join(keys)})")
        values[section] = {k: _value(f"{section}.{k}", spec, table) for k, spec in keys.items()}

    _cross_checks(values)
    key_file = _abs(base, values["auth"]["key_file"])
    if check_files and values["auth"]["required"]:
        if not key_file.is_file():
            raise ConfigError("auth.key_file", f"{key_file} does not exist (auth.required = true needs a key)")
        if not os.access(key_file, os.R_OK):
            raise ConfigError("auth.key_file", f"{key_file} is not readable by this user")

    node_values = {**values["node"], **values["timers"], **values["clock"], **values["sync"]}
    node_values["peers"] = tuple(Peer(h["name"], h["address"]) for h in values["peers"]["hosts"])
    node_values["trusted"] = tuple(values["peers"]["trusted"])
    try:
        node = NodeConfig(**node_values)
    except ValueError as exc:  # relations NodeConfig checks that we did not (keeps its field name)
        raise ConfigError(_path_of_field(str(exc)), str(exc)) from None
    runtime = RuntimeSettings(
        key_file=key_file,
        key_id=values["auth"]["key_id"],
        auth_required=values["auth"]["required"],
        event_log=_abs(base, values["log"]["event_log"]),
        cpu_report_interval_s=values["log"]["cpu_report_interval_s"],
        trace=values["log"]["trace"],
        realtime_priority=values["process"]["realtime_priority"],
    )
    proto = values["protocol"]
    if proto["mode"] == "cristian" and proto["time_server"] not in (node.name, *node.peer_names):
        raise ConfigError("protocol.time_server", f"mode cristian needs the time server's name, this node "
                          f"or one of [peers].hosts, got {proto['time_server']!r}")
    return DaemonConfig(node=node, runtime=runtime, source=source, values=values,
                        mode=proto["mode"], time_server=proto["time_server"])


def _abs(base: Path, value: str) -> Path:
    p = Path(value)
    return p if p.is_absolute() else (base / p)


def _tname(v: Any) -> str:
    return {str: "a string", int: "an integer", float: "a float", bool: "a boolean",
            list: "an array", dict: "a table"}.get(type(v), type(v).__name__)


def _value(path: str, spec: Key, table: dict[str, Any]) -> Any:
    if path.rsplit(".", 1)[1] not in table:
        if spec.default is None:
            raise ConfigError(path, "is required")
        return list(spec.default) if isinstance(spec.default, list) else spec.default
    v = table[path.rsplit(".", 1)[1]]
    if spec.type == "hosts":
        return _hosts(path, v)
    if spec.type == "names":
        if not isinstance(v, list):
            raise ConfigError(path, f"must be an array of names, got {_tname(v)}")
        for i, item in enumerate(v):
            if not isinstance(item, str):
                raise ConfigError(f"{path}[{i}]", f"must be a string, got {_tname(item)}")
            if (why := _name_problem(item)) is not None:
                raise ConfigError(f"{path}[{i}]", why)
        return list(v)
    if spec.type is float:
        # TOML writes 10 for 10.0; an integer is a fine float, a bool is not.
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ConfigError(path, f"must be a number, got {_tname(v)}")
        try:
            v = float(v)
        except OverflowError:  # tomllib keeps integers of any size (found by a fuzz)
            raise ConfigError(path, f"must be a finite number, got an integer of {len(str(v))} digits") from None
        if not math.isfinite(v):
            raise ConfigError(path, f"must be finite, got {v!r}")
    elif spec.type is int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ConfigError(path, f"must be an integer, got {_tname(v)}")
    elif not isinstance(v, spec.type):  # str, bool
        raise ConfigError(path, f"must be {_tname(spec.type())}, got {_tname(v)}")
    if spec.check is not None and (why := spec.check(v)) is not None:
        raise ConfigError(path, why)
    return v


def _hosts(path: str, v: Any) -> list[dict[str, str]]:
    if not isinstance(v, list):
        raise ConfigError(path, f"must be an array of {{name, address}} tables, got {_tname(v)}")
    out = []
    for i, item in enumerate(v):
        where = f"{path}[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(where, f"must be a table {{name, address}}, got {_tname(item)}")
        for k in item:
            if k not in ("name", "address"):
                raise ConfigError(f"{where}.{k}", "unknown key (known: name, address)")
        for k, check in (("name", _name_problem), ("address", _address_problem)):
            if k not in item:
                raise ConfigError(f"{where}.{k}", "is required")
            if not isinstance(item[k], str):
                raise ConfigError(f"{where}.{k}", f"must be a string, got {_tname(item[k])}")
            if (why := check(item[k])) is not None:
                raise ConfigError(f"{where}.{k}", why)
        out.append({"name": item["name"], "address": item["address"]})
    return out


def _cross_checks(values: dict[str, dict[str, Any]]) -> None:
    node, peers, timers = values["node"], values["peers"], values["timers"]
    names: dict[str, str] = {node["name"]: "node.name"}
    addrs: dict[str, str] = {_norm_addr(node["address"]): "node.address"}
    for i, h in enumerate(peers["hosts"]):
        where = f"peers.hosts[{i}]"
        if h["name"] in names:
            raise ConfigError(f"{where}.name", f"duplicate name {h['name']!r} (also {names[h['name']]})")
        names[h["name"]] = f"{where}.name"
        a = _norm_addr(h["address"])
        if a in addrs:
            # Peers share one tsp_port, so an address identifies a node.
            raise ConfigError(f"{where}.address", f"duplicate address {h['address']!r} (also {addrs[a]})")
        addrs[a] = f"{where}.address"
    for i, t in enumerate(peers["trusted"]):
        if t not in names:
            raise ConfigError(f"peers.trusted[{i}]", f"{t!r} is neither node.name nor a peers.hosts name")
    if node["ntp_port"] == node["tsp_port"]:
        raise ConfigError("node.ntp_port", f"must differ from node.tsp_port ({node['tsp_port']})")
    if timers["election_timeout_min_s"] > timers["election_timeout_max_s"]:
        raise ConfigError("timers.election_timeout_min_s",
                          f"must be <= timers.election_timeout_max_s ({timers['election_timeout_max_s']!r}), "
                          f"got {timers['election_timeout_min_s']!r}")
    budget = timers["probes_per_round"] * timers["probe_timeout_s"]
    if budget >= timers["round_interval_s"]:
        raise ConfigError("timers.round_interval_s",
                          f"must exceed probes_per_round * probe_timeout_s = {budget:g} s, "
                          f"got {timers['round_interval_s']!r}")
    if peers["trusted"] and not node["master_eligible"] and peers["trusted"] == [node["name"]]:
        raise ConfigError("peers.trusted", "only trusts this node, which has master_eligible = false: no one can lead")


def _norm_addr(a: str) -> str:
    return str(ipaddress.ip_address(a))


_FIELD_SECTION = {k: s for s, keys in SCHEMA.items() for k in keys}
_FIELD_SECTION["peers"] = "peers"


def _path_of_field(message: str) -> str:
    # NodeConfig says "config: <field>: ..." -- map the field back to its TOML section.
    parts = message.split(": ")
    field = parts[1] if len(parts) > 2 and parts[0] == "config" else ""
    section = _FIELD_SECTION.get(field)
    return f"{section}.{field}" if section and section != field else field


# --- output ------------------------------------------------------------------------

def _toml_scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        if v and isinstance(v[0], dict):
            return "[\n" + "".join(
                "  { " + ", ".join(f"{k} = {_toml_scalar(x)}" for k, x in item.items()) + " },\n"
                for item in v) + "]"
        return "[" + ", ".join(_toml_scalar(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def to_toml(cfg: DaemonConfig) -> str:
    """The effective config (every key, defaults filled in, paths absolute) as TOML."""
    lines: list[str] = []
    for section, keys in SCHEMA.items():
        lines.append(f"[{section}]")
        for key in keys:
            v = cfg.values[section][key]
            if (section, key) == ("auth", "key_file"):
                v = str(cfg.runtime.key_file)
            elif (section, key) == ("log", "event_log"):
                v = str(cfg.runtime.event_log)
            lines.append(f"{key} = {_toml_scalar(v)}")
        lines.append("")
    return "\n".join(lines)


def summary(cfg: DaemonConfig) -> dict[str, Any]:
    """Short config summary for the ``start`` event."""
    n = cfg.node
    return {"address": n.address, "tsp_port": n.tsp_port, "ntp_port": n.ntp_port,
            "peers": [p.name for p in n.peers], "master_eligible": n.master_eligible,
            "round_interval_s": n.round_interval_s,
            "election_timeout_s": [n.election_timeout_min_s, n.election_timeout_max_s],
            "heartbeat_interval_s": n.heartbeat_interval_s,
            "master_timeout_s": [n.master_timeout_min_s, n.master_timeout_max_s],
            "auth_required": cfg.runtime.auth_required, "source": str(cfg.source) if cfg.source else None,
            "realtime_priority": cfg.runtime.realtime_priority}


def reference_markdown() -> str:
    """The config reference table of docs/daemon.md, generated from SCHEMA."""
    out = []
    for section, keys in SCHEMA.items():
        out.append(f"### `[{section}]`\n\n| key | type | default | meaning |\n|---|---|---|---|")
        for key, spec in keys.items():
            t = spec.type if isinstance(spec.type, str) else spec.type.__name__
            d = "(required)" if spec.default is None else f"`{_toml_scalar(spec.default)}`"
            out.append(f"| `{key}` | {t} | {d} | {spec.doc} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":  # `python -m tempod.config --reference` regenerates the docs table
    import sys
    if sys.argv[1:] != ["--reference"]:
        sys.exit("usage: python -m tempod.config --reference")
    print(reference_markdown())
