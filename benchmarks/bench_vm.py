"""Real VMs on this machine: box, boot, deploy, sync quality and CPU inside guests.

Prints measured numbers (no targets asserted):
  * box build time (``--rebuild`` builds it now; otherwise the cached build's own time)
  * ``tempo vm up`` wall time from nothing (box cached), and per guest the time from its
    kernel's start to sshd ready (``systemctl show ssh`` ActiveEnterTimestampMonotonic,
    the guest's own monotonic clock since boot)
  * first deploy and re-deploy of N guests (``playbooks/deploy.yml``, wall time; the
    re-deploy's PLAY RECAP changed count)
  * the smoke suite on the guests: post-sync skew p50/p99 between guests (observer), against
    the guest-to-guest one-way delay (half the UDP ping RTT measured between guests)
  * CPU of the master and of a follower inside a guest (the run's cpu.jsonl)
Tears the VMs down at the end (also on failure).  Root; several minutes under TCG.

    sudo flock /tmp/tempo-heavy.lock .venv/bin/python benchmarks/bench_vm.py --nodes 3
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "experiments"))

from tempolab.vm import box as boxmod  # noqa: E402
from tempolab.vm.lab import VmLab  # noqa: E402

TEMPO = str(Path(sys.executable).parent / "tempo")


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def tempo(*args: str) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.monotonic()
    p = subprocess.run([TEMPO, *args], cwd=REPO, capture_output=True, text=True,
                       env=dict(os.environ, ANSIBLE_NOCOLOR="1"))
    if p.returncode != 0:
        sys.exit(f"tempo {' '.join(args)} failed:\n{p.stdout[-3000:]}\n{p.stderr[-2000:]}")
    return time.monotonic() - t0, p


def recap_changed(out: str) -> int:
    text = out[out.rindex("PLAY RECAP"):]
    return sum(int(x) for x in re.findall(r"changed=(\d+)", text))


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def guest_one_way_s(vm: VmLab, n: int) -> list[float]:
    """Half the round trip of 20 pings from n1 to every other guest."""
    out = []
    for k in range(2, n + 1):
        r = vm.ssh(1, f"ping -n -c 20 -i 0.2 {vm.address(k)}", timeout_s=60)
        out += [float(x) / 2e3 for x in re.findall(r"time=([\d.]+) ms", r.stdout)]
    return out


def skews(run_dir: Path) -> list[float]:
    """Per observer sweep after warm-up: max - min of the guests' offsets."""
    trials = [json.loads(x) for x in (run_dir / "trials.jsonl").read_text().splitlines()]
    warm = min(t.get("warm_up_end_t") or 0 for t in trials)
    sweeps: dict[int, list[float]] = {}
    for line in (run_dir / "observer.jsonl").read_text().splitlines():
        s = json.loads(line)
        if s.get("offset_s") is None or s["t_ref"] < warm or s.get("superseded"):
            continue
        sweeps.setdefault(s["sweep"], []).append(s["offset_s"])
    return [max(v) - min(v) for v in sweeps.values() if len(v) >= 2]


def cpu_by_role(run_dir: Path) -> dict[str, float]:
    """Per node: CPU % of tempod over the run (utime+stime delta / wall delta, one pid),
    labelled with the role the node held most of the time."""
    path = run_dir / "cpu.jsonl"
    if not path.exists():
        return {}
    per: dict[str, list[dict]] = {}
    for line in path.read_text().splitlines():
        r = json.loads(line)
        if r.get("utime_s") is not None:
            per.setdefault(r["node"], []).append(r)
    out = {}
    for node, recs in per.items():
        pid = recs[-1]["pid"]
        recs = [r for r in recs if r["pid"] == pid]
        if len(recs) < 2:
            continue
        a, b = recs[0], recs[-1]
        used = (b["utime_s"] + b["stime_s"]) - (a["utime_s"] + a["stime_s"])
        roles = [str(r.get("role")) for r in recs]
        role = max(set(roles), key=roles.count)
        out[f"{node} ({role})"] = 100.0 * used / max(1e-9, b["t_ref"] - a["t_ref"])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--rebuild", action="store_true", help="build the box now (minutes)")
    ap.add_argument("--name", default="tvm")
    a = ap.parse_args()
    print(f"load average at start: {load()}")
    t0 = time.monotonic()
    b = boxmod.build(force=a.rebuild)
    built = time.monotonic() - t0
    boxmod.add_to_vagrant(b)
    print(f"box build: {float((b.dir / 'build_s').read_text()):.0f} s"
          + (" (now)" if a.rebuild else " (when it was built; --rebuild to measure now)")
          + f", qcow2 {b.image.stat().st_size / 2**20:.0f} MB; load {load()}")
    del built
    vm = VmLab(a.name)
    vm.down()
    try:
        t0 = time.monotonic()
        vm.up(a.nodes)
        print(f"tempo vm up --nodes {a.nodes} (box cached): {time.monotonic() - t0:.0f} s; load {load()}")
        for k in range(1, a.nodes + 1):
            r = vm.ssh(k, "systemctl show ssh -p ActiveEnterTimestampMonotonic --value")
            print(f"  n{k}: kernel start to sshd ready {int(r.stdout.strip()) / 1e6:.1f} s (guest clock)")
        dt, p = tempo("deploy", "--provider", "vagrant", "--vm", a.name)
        print(f"first deploy of {a.nodes} guests: {dt:.0f} s; load {load()}")
        dt, p = tempo("deploy", "--provider", "vagrant", "--vm", a.name)
        print(f"re-deploy of {a.nodes} guests: {dt:.0f} s, changed={recap_changed(p.stdout)}; load {load()}")
        with tempfile.TemporaryDirectory() as out:
            dt, p = tempo("run", "smoke", "--provider", "vagrant", "--vm", a.name, "--quiet",
                          "--no-deploy", "--out", out)
            (run_dir,) = list(Path(out).iterdir())
            sk = skews(run_dir)
            ow = guest_one_way_s(vm, a.nodes)
            print(f"smoke on VMs (faketime mode, no deploy): {dt:.0f} s; load {load()}")
            if sk and ow:
                print(f"  post-sync skew p50 {pct(sk, .5) * 1e3:.3f} ms, p99 {pct(sk, .99) * 1e3:.3f} ms "
                      f"({len(sk)} sweeps); guest-to-guest one-way delay p50 "
                      f"{pct(ow, .5) * 1e3:.3f} ms, p99 {pct(ow, .99) * 1e3:.3f} ms; "
                      f"skew p99 / one-way p50 = {pct(sk, .99) / pct(ow, .5):.1f}")
            for node, c in sorted(cpu_by_role(run_dir).items()):
                print(f"  CPU of tempod inside guest {node}: {c:.2f} % of one vCPU")
    finally:
        vm.down()
    print(f"load average at end: {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
