"""``tempo sim``: run the deterministic simulator (``tempod.sim``) from the command line.

A thin wrapper: parse options into ``tempod.sim.SimConfig``, run, print the summary
(JSON with ``--json``, a readable table otherwise).  Exit code 1 if an invariant failed,
2 for bad options.  The same seed gives the same output (apart from ``perf``).
"""

from __future__ import annotations

import argparse
import json

from .errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sim",
        help="simulate N nodes (real election + Berkeley code) under faults, check invariants",
        description=__doc__,
        epilog="example: tempo sim --nodes 7 --duration 900 --seed 3 --drift-ppm 100000 "
               "--faults kill,stop,partition,loss",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--nodes", type=int, default=5, help="number of nodes (default 5)")
    p.add_argument("--duration", type=float, default=300.0, help="simulated seconds (default 300)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--drift-ppm", type=float, default=100.0,
                   help="hardware rates uniform in +-this (default 100; 100000 = 10%%)")
    p.add_argument("--offset-ms", type=float, default=500.0, help="initial offsets uniform in +-this (default 500)")
    p.add_argument("--wander", type=float, default=0.0, help="rate random walk, ppm/sqrt(s) (default 0)")
    p.add_argument("--loss", type=float, default=0.0, help="background loss probability (default 0)")
    p.add_argument("--delay-ms", type=float, default=0.1, help="one-way base delay (default 0.1)")
    p.add_argument("--jitter-ms", type=float, default=0.05, help="+ uniform jitter (default 0.05)")
    p.add_argument("--round-interval", type=float, default=10.0, help="seconds between rounds (default 10)")
    p.add_argument("--profile", default="default", help="timer profile: default or fast (tempod.nodeconfig.PROFILES)")
    p.add_argument("--faults", default="", help="comma list: kill,stop,partition,loss (the master; old names kill-master, pause-master accepted)")
    p.add_argument("--ineligible", default="", help="comma list of node names with master_eligible=false")
    p.add_argument("--wire", action="store_true", help="round-trip every message through wire.encode/decode")
    p.add_argument("--protocol", choices=("berkeley", "cristian"), default="berkeley",
                   help="the core every node runs: berkeley (default) or cristian (n1 is the time server)")
    p.add_argument("--json", action="store_true", help="print the full JSON summary")
    p.set_defaults(func=run)


def _split(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def build_config(args: argparse.Namespace):
    from tempod.sim import SimConfig

    try:
        return SimConfig(nodes=args.nodes, duration_s=args.duration, seed=args.seed,
                         drift_ppm=args.drift_ppm, offset_max_s=args.offset_ms / 1000.0,
                         wander_ppm_per_sqrt_s=args.wander, loss=args.loss,
                         delay_ms=args.delay_ms, jitter_ms=args.jitter_ms,
                         round_interval_s=args.round_interval, faults=_split(args.faults),
                         ineligible=_split(args.ineligible), wire=args.wire, protocol=args.protocol,
                         profile=args.profile)
    except ValueError as exc:
        raise ConfigError(str(exc), source="tempo sim") from None


def _fmt(v: object, scale: float = 1e6, unit: str = "us") -> str:
    return "-" if v is None else f"{v * scale:.1f} {unit}"  # type: ignore[operator]


def render(result: dict) -> str:
    """The human-readable summary of a ``tempod.sim.run`` result."""
    c, f = result["config"], result["figures"]
    lines = [f"tempo sim: {c.get('protocol', 'berkeley')}, {c['nodes']} nodes, {c['duration_s']:g} s, seed {c['seed']}, "
             f"drift +-{c['drift_ppm']:g} ppm, faults: {','.join(c['faults']) or 'none'}"]
    for name, inv in result["invariants"].items():
        v = inv["first_violation"]
        status = "ok" if inv["ok"] else f"FAILED at t={v['t']} (seed {v['seed']}): {v['detail']}"
        lines.append(f"  invariant {name:<15} {status}  [{inv['checks']} checks]")
    ps = f["post_sync_skew_s"]
    lines.append(f"  post-sync skew   p50 {_fmt(ps['p50'])}  p95 {_fmt(ps['p95'])}  p99 {_fmt(ps['p99'])}"
                 f"  max {_fmt(ps['max'])}  ({ps['n']} rounds)")
    lines.append(f"  between rounds   max {_fmt(f['between_rounds_skew_max_s'])}"
                 f"  p50 {_fmt(f['between_rounds_skew_p50_s'])}")
    mpr = f["messages_per_round"]
    lines.append(f"  rounds {f['rounds']}, messages {f['messages']} ({f['messages_dropped']} dropped), "
                 f"{'-' if mpr is None else f'{mpr:.1f}'} per round")
    for fo in f["failovers"]:
        lines.append(f"  {fo['kind']} at {fo['t']:.1f} s (master {fo['old_master']}): new master "
                     f"{fo['new_master']} after {_fmt(fo['to_new_master_s'], 1, 's')}, first round after "
                     f"{_fmt(fo['to_first_round_s'], 1, 's')}")
    perf = result["perf"]
    lines.append(f"  {perf['wall_s']:.2f} s wall ({perf['cpu_s']:.2f} s CPU), "
                 f"{perf['node_seconds_per_wall_s']:.0f} node-seconds per wall second, {perf['events']} events")
    lines.append("OK" if result["ok"] else "INVARIANT FAILED")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from tempod.sim import run as sim_run

    sc = build_config(args)
    try:
        result = sim_run(sc)
    except ValueError as exc:   # e.g. duration too short for the faults asked for
        raise ConfigError(str(exc), source="tempo sim") from None
    print(json.dumps(result, indent=2, sort_keys=True) if args.json else render(result))
    return 0 if result["ok"] else 1
