"""``tempo lab up|status|down``: the local lab from the command line.

Thin: parses arguments, calls :class:`tempolab.lab.Lab`, prints.  Errors from the
library (not root, missing tools, subnet clash) become one line and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict

from .lab import plan

EXAMPLES = """examples:
  tempo lab up --nodes 3                  # bridge tslab0, nodes n1..n3 at 10.77.0.11..13
  tempo lab up --nodes 8 --name lab2 --subnet 10.78.0.0/24
  tempo lab status --json
  tempo lab down
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "lab",
        help="create, inspect or remove the local lab (network namespaces with sshd)",
        description=__doc__,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    lsub = p.add_subparsers(dest="lab_command", metavar="ACTION")
    lsub.required = True

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--name", default=plan.DEFAULT_NAME,
                       help=f"lab name: prefixes namespaces and links (default {plan.DEFAULT_NAME})")

    up = lsub.add_parser("up", help="create the lab or bring it to --nodes nodes", epilog=EXAMPLES,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    common(up)
    up.add_argument("--nodes", "-n", type=int, required=True, help="number of nodes")
    up.add_argument("--subnet", default=None, help="IPv4 subnet (default 10.77.0.0/24, or the running lab's)")
    up.add_argument("--quiet", "-q", action="store_true", help="print only the summary")
    up.set_defaults(func=cmd_up)

    st = lsub.add_parser("status", help="nodes, addresses, sshd and daemon PIDs")
    common(st)
    st.add_argument("--json", action="store_true", help="machine-readable output")
    st.set_defaults(func=cmd_status)

    dn = lsub.add_parser("down", help="remove the lab: namespaces, bridge, processes, state")
    common(dn)
    dn.set_defaults(func=cmd_down)


def cmd_up(args: argparse.Namespace) -> int:
    from .lab import Lab

    t0 = time.monotonic()
    lab = Lab(args.name, args.subnet, progress=None if args.quiet else lambda m: print(f"  {m}", flush=True))
    st = lab.up(args.nodes)
    dt = time.monotonic() - t0
    print(f"lab {st.name}: {len(st.nodes)} nodes on {st.bridge} ({st.subnet}) up in {dt:.1f} s")
    print(f"  inventory: {lab.inventory_path}")
    print(f"  ssh key:   {lab.ssh_key_path}")
    print(f"  try:       ssh -i {lab.ssh_key_path} -o StrictHostKeyChecking=no root@{st.nodes[0].address} hostname")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from .lab import Lab

    lab = Lab.load(args.name)
    nodes = lab.status()
    if args.json:
        json.dump(
            {"name": lab.name, "subnet": lab.subnet, "inventory": str(lab.inventory_path),
             "ssh_key": str(lab.ssh_key_path), "nodes": [asdict(n) for n in nodes]},
            sys.stdout, indent=2,
        )
        print()
    else:
        from rich.console import Console
        from rich.table import Table

        t = Table(title=f"lab {lab.name} ({lab.subnet})")
        for col in ("node", "address", "netns", "sshd", "tempod"):
            t.add_column(col)
        for n in nodes:
            sshd = f"[green]{n.sshd_pid}[/]" if n.sshd_alive else "[red]down[/]"
            t.add_row(n.name, n.address, n.netns if n.netns_present else f"[red]{n.netns} missing[/]", sshd,
                      str(n.daemon_pid) if n.daemon_pid else "-")
        Console().print(t)
    return 0 if all(n.sshd_alive for n in nodes) else 1


def cmd_down(args: argparse.Namespace) -> int:
    from .lab import Lab

    t0 = time.monotonic()
    removed = Lab(args.name).down()
    print(f"lab {args.name}: removed {len(removed)} items in {time.monotonic() - t0:.1f} s"
          + ("" if removed else " (nothing was there)"))
    return 0
