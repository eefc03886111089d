"""Lab and deployment timings: `sudo .venv/bin/python benchmarks/bench_lab.py`.

Prints the wall time of
  * `Lab.up(n)` for 3 and 32 nodes (and `down`),
  * a first deploy (cold: wheel built into an empty cache, venvs created, daemons
    started and verified) and a re-deploy of unchanged sources (must report
    changed=0) for 3 and 16 nodes,
together with the machine's load average, since every number scales with it: the
nodes share this machine's 2 cores with the controller.

Uses its own lab (`blab`, 10.79.10.0/24) and a snapshot of the sources so that edits
in the tree during the run do not trigger rebuilds.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "experiments"))

from tempolab.lab import Lab  # noqa: E402

NAME, SUBNET = "blab", "10.79.10.0/24"
BIN = Path(sys.executable).parent


def snapshot_sources(dst: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    dst.mkdir(parents=True)
    for rel in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / rel, dst / rel)
    shutil.copytree(REPO / "daemon", dst / "daemon", ignore=ignore)
    shutil.copytree(REPO / "experiments" / "tempolab", dst / "experiments" / "tempolab", ignore=ignore)
    return dst


def deploy(lab: Lab, extra: dict) -> tuple[float, dict[str, int]]:
    varfile = Path(tempfile.mkstemp(suffix=".json")[1])
    varfile.write_text(json.dumps(extra))
    t0 = time.monotonic()
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(lab.inventory_path), str(REPO / "playbooks/deploy.yml"),
         "-e", f"@{varfile}"],
        cwd=REPO, capture_output=True, text=True,
        env=dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1"),
    )
    dt = time.monotonic() - t0
    varfile.unlink()
    if proc.returncode != 0:
        sys.exit(f"deploy failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
    recap = proc.stdout[proc.stdout.rindex("PLAY RECAP"):]
    changed = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\S+)\s+:.*changed=(\d+)", recap, re.M)}
    return dt, changed


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lab-sizes", default="3,32", help="node counts for lab up (default 3,32)")
    ap.add_argument("--deploy-sizes", default="3,16", help="node counts for deploy (default 3,16)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_lab: needs root (the lab)")
    print(f"# bench_lab  cpus={os.cpu_count()}  load(1,5,15 min)={load()}")
    Lab(NAME, SUBNET).down()
    try:
        for n in [int(x) for x in args.lab_sizes.split(",") if x]:
            t0 = time.monotonic()
            Lab(NAME, SUBNET).up(n)
            up = time.monotonic() - t0
            t0 = time.monotonic()
            Lab(NAME, SUBNET).up(n)
            again = time.monotonic() - t0
            t0 = time.monotonic()
            Lab(NAME).down()
            down = time.monotonic() - t0
            print(f"lab up     n={n:<3d} {up:6.2f} s   (up again, nothing to do: {again:.2f} s; down: {down:.2f} s)")
        for n in [int(x) for x in args.deploy_sizes.split(",") if x]:
            with tempfile.TemporaryDirectory(prefix="bench-lab-") as tmp:
                extra = {
                    "tempod_source_dir": str(snapshot_sources(Path(tmp) / "src")),
                    "tempod_wheel_cache_dir": str(Path(tmp) / "wheels"),
                    "tempod_auth_key_file": str(Path(tmp) / "tempo.key"),
                }
                lab = Lab(NAME, SUBNET)
                lab.up(n)
                first, ch1 = deploy(lab, extra)
                print(f"deploy     n={n:<3d} {first:6.1f} s   first (cold wheel build, venvs, start, verify)"
                      f"  changed/host={max(ch1.values())}  load={load()}")
                again, ch2 = deploy(lab, extra)
                print(f"re-deploy  n={n:<3d} {again:6.1f} s   unchanged sources"
                      f"  changed total={sum(ch2.values())}  load={load()}")
                Lab(NAME).down()
    finally:
        Lab(NAME).down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
