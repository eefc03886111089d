"""The ``tempo`` command: a thin argparse front over the library.

Each subcommand lives in its own module ``tempolab.cmd_<name>`` exposing
``register(subparsers)`` (adds its parser and sets ``func``) so that importing the
CLI stays cheap and one broken stage cannot hide the others.  Library errors derived
from :class:`tempolab.errors.TempoError` become a one-line message and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import TempoError

# name -> module; order is the order shown in --help
SUBCOMMANDS = {
    "lab": "tempolab.cmd_lab",
    "vm": "tempolab.cmd_vm",
    "deploy": "tempolab.cmd_deploy",
    "run": "tempolab.cmd_run",
    "report": "tempolab.cmd_report",
    "compare": "tempolab.cmd_compare",
    "sim": "tempolab.cmd_sim",
    "demo": "tempolab.cmd_demo",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tempo",
        description="Tempo lab: clock-synchronization experiments on real hosts.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, module in SUBCOMMANDS.items():
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            continue  # stage not built yet
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        rc = args.func(args)
    except TempoError as exc:
        print(f"tempo {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tempo {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
