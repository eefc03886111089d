"""``tempo deploy``: run one of the project's playbooks with ``ansible-playbook``.

Thin wrapper: picks the inventory (the provider's: the local lab's by default, the VM
lab's with ``--provider vagrant``, or ``--inventory``), the playbook
(``playbooks/<name>.yml``), the repo's ``ansible.cfg``, passes extra ``-e`` vars and
any further arguments through, and prints the elapsed time and the PLAY RECAP.  It
knows nothing about what the playbooks do.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
from pathlib import Path

from .errors import EnvironmentProblem
from .lab.plan import DEFAULT_NAME
from .paths import project_paths
from .runner.deploy import ansible_playbook_path

PLAYBOOKS = ("deploy", "start", "stop", "collect", "teardown")

EXAMPLES = """examples:
  tempo deploy                                   # libfaketime + tempod on the lab `tslab`
  tempo deploy --playbook collect -e collect_dir=results/collected/now
  tempo deploy --name tlab2 -e tempod_round_interval_s=5
  tempo deploy --provider vagrant                # the VMs of `tempo vm up`
  tempo deploy --inventory inventory/aws/aws_ec2.yml -- --limit n1 --check
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "deploy",
        help="run a deployment playbook (deploy, start, stop, collect, teardown) with ansible-playbook",
        description=__doc__,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--playbook", "-p", choices=PLAYBOOKS, default="deploy", help="which playbook (default deploy)")
    p.add_argument("--provider", choices=("lab", "vagrant", "inventory"),
                   help="whose inventory (default: inventory if --inventory is given, else lab)")
    p.add_argument("--vm", dest="vm_name", default="tvm", help="VM lab of provider vagrant (default tvm)")
    p.add_argument("--inventory", "-i", help="inventory file or folder (default: the lab's, see --name)")
    p.add_argument("--name", default=DEFAULT_NAME,
                   help=f"lab whose generated inventory to use (default {DEFAULT_NAME})")
    p.add_argument("-e", "--extra-vars", action="append", default=[], metavar="VARS",
                   help="extra variables, as for ansible-playbook (repeatable)")
    p.add_argument("ansible_args", nargs=argparse.REMAINDER, help="after --: passed to ansible-playbook unchanged")
    p.set_defaults(func=run)


def build_argv(args: argparse.Namespace) -> list[str]:
    provider = getattr(args, "provider", None) or ("inventory" if args.inventory else "lab")
    if provider == "inventory":
        if not args.inventory:
            raise EnvironmentProblem("--provider inventory needs --inventory")
        inventory = Path(args.inventory)
        if not inventory.exists():
            raise EnvironmentProblem(f"inventory {inventory} does not exist")
    elif provider == "vagrant":
        from .providers import make_provider

        inventory = make_provider("vagrant", vm_name=getattr(args, "vm_name", None)).existing().inventory
    else:
        from .lab import plan

        inventory = project_paths().lab_inventory(plan.validate_name(args.name))
        if not inventory.exists():
            raise EnvironmentProblem(
                f"no inventory for lab {args.name!r} ({inventory}); start it with `tempo lab up --nodes 3"
                + ("" if args.name == DEFAULT_NAME else f" --name {args.name}") + "` or give --inventory"
            )
    argv = [ansible_playbook_path(), "-i", str(inventory), str(project_paths().playbook(args.playbook))]
    for ev in args.extra_vars:
        argv += ["-e", ev]
    rest = list(args.ansible_args)
    if rest and rest[0] == "--":
        rest = rest[1:]
    return argv + rest


def run(args: argparse.Namespace) -> int:
    argv = build_argv(args)
    paths = project_paths()
    print("==>", " ".join(argv[1:]), flush=True)
    t0 = time.monotonic()
    rc = subprocess.run(argv, cwd=paths.root, env=paths.ansible_env()).returncode
    print(f"tempo deploy: {args.playbook} {'succeeded' if rc == 0 else f'failed (exit {rc})'} "
          f"in {time.monotonic() - t0:.1f} s", flush=True)
    return rc
