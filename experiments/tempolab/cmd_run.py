"""``tempo run``: run an experiment suite (thin CLI over :mod:`tempolab.runner`)."""

from __future__ import annotations

import argparse
import copy
import signal
from pathlib import Path



def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "run",
        help="run an experiment suite (faults, observer, CPU) into a run folder",
        description="Run a suite's trials on the lab (default) or an inventory and record "
                    "everything under results/<YYYYmmdd-HHMMSS>-<suite>/.",
        epilog="examples:\n  tempo run smoke\n  tempo run leader-kill --quiet\n"
               "  tempo run smoke --provider vagrant       # on the VMs of `tempo vm up`\n"
               "  tempo run --resume results/20261123-101500-leader-kill\n"
               "  tempo run protocols --protocol berkeley,cristian,ntp\n"
               "  tempo run --cleanup --lab trun",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from .runner.suite import builtin_suites

    p.add_argument("suite", nargs="?", help=f"built-in suite name ({', '.join(builtin_suites())}) "
                   "or a suite YAML path")
    p.add_argument("--provider", choices=("lab", "vagrant", "inventory"),
                   help="where the nodes come from (default: the suite's provider:, else "
                        "inventory when one is given, else the local lab)")
    p.add_argument("--vm", dest="vm_name", help="VM lab of provider vagrant (default tvm)")
    p.add_argument("--inventory", "-i", type=Path, help="Ansible inventory (provider inventory)")
    p.add_argument("--lab", dest="lab_name", help="lab name (default: the suite's, tslab)")
    p.add_argument("--subnet", dest="lab_subnet", help="lab subnet when the lab is created")
    p.add_argument("--out", type=Path, default=None,
                   help="results folder (default: results/ of the project folder: $TEMPO_HOME, "
                        "else the checkout tempolab runs from, else the current directory)")
    p.add_argument("--quiet", "-q", action="store_true", help="plain progress lines (CI)")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR",
                   help="continue RUN_DIR at its first unfinished trial")
    p.add_argument("--cleanup", action="store_true",
                   help="remove leftover faults on every node (tempo_fault tables, "
                        "SIGCONT stopped daemons, start dead ones) and exit")
    p.add_argument("--trials", type=int, metavar="N", help="override the suite's trial count")
    p.add_argument("--seed", type=int, metavar="K", help="override the suite's seed (fault times, drift draws)")
    p.add_argument("--protocol", metavar="P[,P...]",
                   help="override the suite's protocol axis: berkeley, cristian, ntp or a "
                        "comma-separated list run in turn (same nodes, drift, fault draws)")
    p.add_argument("--clock-mode", dest="clock_mode", choices=("faketime", "kernel"),
                   help="override the suite's clock_mode (kernel: the VMs' own kernel clocks, drifted "
                        "below the guest kernel; provider vagrant only, docs/clock.md)")
    p.add_argument("--no-deploy", dest="deploy", action="store_false",
                   help="use the daemons already deployed (restart them instead of ansible)")
    # tempo demo says what is left up once, at its very end
    p.add_argument("--no-still-up", dest="no_still_up", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def _sigterm(_signum: int, _frame: object) -> None:
    # same path as Ctrl-C: faults reverted, data flushed, exit 130
    raise KeyboardInterrupt


def _override(suite, raw: dict, **over: object) -> tuple:
    """The suite with fields replaced; re-validated, and the manifest keeps the result."""
    from .runner.suite import parse_suite

    raw = dict(raw, **{k: v for k, v in over.items() if v is not None})
    return parse_suite(copy.deepcopy(raw), suite.source), raw


def run(args: argparse.Namespace) -> int:
    from .errors import ConfigError
    from .runner.driver import Runner, RunOptions, resume_suite
    from .runner.suite import Suite, load_suite_raw

    opts = RunOptions(results=args.out, inventory=args.inventory, lab_name=args.lab_name,
                      lab_subnet=args.lab_subnet, quiet=args.quiet, resume=args.resume,
                      deploy=args.deploy, provider=args.provider, vm_name=args.vm_name)
    if args.cleanup:
        suite = Suite(name="cleanup", source="--cleanup")
        if args.suite:
            suite = load_suite_raw(args.suite)[0]
        r = Runner(suite, opts)
        r._ensure_hosts_existing()
        results = r.cleanup()
        for node, msg in sorted(results.items()):
            print(f"{node}: {msg}")
        # a daemon that would not start is a leftover the user must look at
        return 1 if any("failed" in m for m in results.values()) else 0
    if args.resume is not None:
        suite, raw = resume_suite(args.resume)
        # same hosts as the interrupted run unless told otherwise
        from .runner.runfolder import RunFolder

        m = RunFolder.open(args.resume).read_manifest()
        if opts.provider is None and m.get("provider"):
            opts.provider = m["provider"]
        if opts.inventory is None and opts.lab_name is None:
            if m.get("lab"):
                opts.lab_name = m["lab"]
            elif m.get("inventory"):
                opts.inventory = Path(m["inventory"])
    elif args.suite:
        suite, raw = load_suite_raw(args.suite)
        protocol = None
        if args.protocol is not None:
            protocol = [p.strip() for p in args.protocol.split(",") if p.strip()]
        if (args.trials is not None or args.seed is not None or protocol is not None
                or args.clock_mode is not None):
            suite, raw = _override(suite, raw, trials=args.trials, seed=args.seed,
                                   protocol=protocol, clock_mode=args.clock_mode)
    else:
        raise ConfigError("give a SUITE, --resume RUN_DIR or --cleanup")
    old = signal.signal(signal.SIGTERM, _sigterm)
    runner = Runner(suite, opts, raw)
    try:
        return runner.run()
    finally:
        signal.signal(signal.SIGTERM, old)
        if runner.provider_name == "lab" and not getattr(args, "no_still_up", False):
            from .leftovers import still_up_line

            print(still_up_line(runner._lab_name()), flush=True)
