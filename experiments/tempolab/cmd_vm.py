"""``tempo vm box|up|status|down``: real VMs (Vagrant + libvirt, QEMU/TCG) from the command line.

Thin: parses arguments, calls :mod:`tempolab.vm`, shows progress with rich (plain
lines with --quiet).  Everything needs root: the VM network namespace, libvirtd.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict

EXAMPLES = """examples:
  tempo vm box                           # build (or reuse) the Debian 12 box, vagrant box add
  tempo vm up --nodes 3                  # netns tvm, libvirtd in it, guests n1..n3 at 10.86.0.11..13
  tempo vm status
  tempo deploy --provider vagrant        # the same playbooks as on the lab
  tempo run smoke --provider vagrant
  tempo vm down                          # domains, volumes, network, daemons, netns
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "vm",
        help="build the VM box; start, inspect or remove VMs (Vagrant + libvirt in a netns)",
        description=__doc__,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    vsub = p.add_subparsers(dest="vm_command", metavar="ACTION")
    vsub.required = True

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--name", default="tvm",
                       help="VM lab name: the netns, bridge <name>br0, domains <name>-nK (default tvm)")
        q.add_argument("--quiet", "-q", action="store_true", help="plain progress lines")

    bx = vsub.add_parser("box", help="build the box from Debian's archive (cached by recipe hash)")
    bx.add_argument("--force", action="store_true", help="rebuild even when cached")
    bx.add_argument("--quiet", "-q", action="store_true", help="plain progress lines")
    bx.set_defaults(func=cmd_box)

    up = vsub.add_parser("up", help="start N guests (box first if needed); safe to repeat")
    common(up)
    up.add_argument("--nodes", "-n", type=int, required=True, help="number of guests (1-5)")
    up.add_argument("--memory", type=int, default=None, metavar="MB",
                    help="memory per guest (default 320)")
    up.set_defaults(func=cmd_up)

    st = vsub.add_parser("status", help="guests, domain state, SSH through the namespace")
    common(st)
    st.add_argument("--json", action="store_true", help="machine-readable output")
    st.set_defaults(func=cmd_status)

    dn = vsub.add_parser("down", help="remove guests, volumes, network, daemons and the netns")
    common(dn)
    dn.set_defaults(func=cmd_down)


@contextmanager
def _progress(quiet: bool, title: str) -> Iterator[Callable[[str], None]]:
    if quiet or not sys.stdout.isatty():
        yield lambda m: print(f"  {m}", flush=True)
        return
    from rich.console import Console

    console = Console()
    t0 = time.monotonic()
    with console.status(title) as status:
        last = {"step": ""}

        def step(msg: str) -> None:
            head = msg.split(": ", 1)[0]
            if head != last["step"]:
                console.log(head)  # one line per step, the detail in the spinner
                last["step"] = head
            status.update(f"{title} [{time.monotonic() - t0:4.0f} s] {msg[:90]}")

        yield step


def cmd_box(args: argparse.Namespace) -> int:
    from .vm import box

    t0 = time.monotonic()
    with _progress(args.quiet, "tempo vm box") as step:
        b = box.build(step=step, force=args.force)
        box.add_to_vagrant(b, step=step)
    print(f"box {b.name}: {b.dir} ({time.monotonic() - t0:.1f} s)")
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from .vm.lab import MEMORY_MB, VmLab

    t0 = time.monotonic()
    with _progress(args.quiet, f"tempo vm up --nodes {args.nodes}") as step:
        vm = VmLab(args.name, memory_mb=args.memory or MEMORY_MB, progress=step)
        inv = vm.up(args.nodes)
    print(f"VM lab {args.name}: {args.nodes} guests up in {time.monotonic() - t0:.1f} s; "
          f"inventory {inv}")
    print(f"  guests live in netns {vm.netns}: ip netns exec {vm.netns} ssh -i "
          f"{vm.inventory(1)['all']['children']['tempo_nodes']['vars']['ansible_ssh_private_key_file']} "
          f"root@{vm.address(1)}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from .vm.lab import VmLab

    vm = VmLab(args.name)
    guests = vm.status()
    st = vm.state()
    if args.json:
        print(json.dumps({"name": vm.name, "phase": st.get("phase") if st else None,
                          "guests": [asdict(g) for g in guests]}, indent=2))
        return 0
    if st is None:
        print(f"VM lab {vm.name}: not up")
        return 0
    print(f"VM lab {vm.name}: phase {st.get('phase')}, netns {vm.netns}, "
          f"inventory {vm.inventory_path if vm.inventory_path.exists() else '-'}")
    for g in guests:
        print(f"  {g.name:4} {g.domain:10} {g.address:12} {g.state:10} ssh {'ok' if g.ssh else 'NO'}")
    return 0 if guests and all(g.ssh for g in guests) and st.get("phase") == "up" else 1


def cmd_down(args: argparse.Namespace) -> int:
    from .vm.lab import VmLab

    for line in VmLab(args.name).down():
        print(f"  {line}")
    print(f"VM lab {args.name}: down")
    return 0
