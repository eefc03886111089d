"""Real VMs on this machine: box, boot, deploy, sync quality and CPU inside guests.

Prints measured numbers (no targets asserted):
  * box build time (``--rebuild`` builds it now; otherwise the cached build's own time)
  * ``tempo vm up`` wall time from nothing (box cached), and per guest the time from its
    kernel's start to sshd ready (``systemctl show ssh`` ActiveEnterTimestampMonotonic,
    the guest's own monotonic clock since boot)
  * first deploy and re-deploy of N guests (``playbooks/deploy.yml``, wall time; the
    re-deploy's PLAY RECAP changed count)
  * the smoke suite on the guests, in faketime mode and in kernel mode (guests booted again
    with their qemu under libfaketime; each guest's requested and delivered rate), and once
    more in kernel mode with drifts up to ``--kernel-max-ppm``: skew p50/p99/max between
    guests over every observer sweep after warm-up (post-sync and between rounds), against
    the guest-to-guest one-way delay (half the NTP round trip from one guest to the
    others' responders, user space at both ends: an upper bound; the box has no ping)
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

from tempolab.runner.suite import SUITES_DIR, load_suite  # noqa: E402
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


# 20 NTP client requests from one guest to a peer's responder, timed with the guest's
# perf_counter: the box has no ping, and this includes both ends' user space (an upper bound)
_NTP_RTT_PY = """
import socket, struct, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1.0)
for _ in range(20):
    t0 = time.perf_counter(); s.sendto(b"\\x23" + bytes(47), (sys.argv[1], 123))
    try:
        s.recvfrom(512); print("rtt", time.perf_counter() - t0)
    except OSError:
        pass
    time.sleep(0.1)
"""


def guest_one_way_s(vm: VmLab, n: int) -> list[float]:
    """Half the NTP round trip from n1 to every other guest's responder (20 each)."""
    out = []
    for k in range(2, n + 1):
        r = vm.ssh(1, f"python3 -c '{_NTP_RTT_PY}' {vm.address(k)}", timeout_s=60)
        out += [float(x) / 2 for x in re.findall(r"rtt ([\d.e-]+)", r.stdout)]
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


def smoke(vm: VmLab, a, mode: str, max_ppm: float | None, extra: list[str]) -> None:
    """One smoke run on the guests in ``mode``; prints skew against the one-way delay and CPU."""
    import yaml

    suite = yaml.safe_load((SUITES_DIR / "smoke.yaml").read_text())
    suite["healthy_timeout_s"] = 180
    # the VM suites' heartbeat timers (TCG guests stall for up to about a second under load)
    vm_daemon = load_suite("vm-leader-kill").daemon
    suite["daemon"].update({k: vm_daemon[k] for k in
                            ("heartbeat_interval_s", "master_timeout_min_s", "master_timeout_max_s")})
    if max_ppm is not None:
        suite["drift"]["max_ppm"] = max_ppm
    with tempfile.TemporaryDirectory() as out:
        sf = Path(out) / "smoke.yaml"
        sf.write_text(yaml.safe_dump(suite))
        dt, p = tempo("run", str(sf), "--provider", "vagrant", "--vm", a.name, "--quiet",
                      "--clock-mode", mode, "--out", out, *extra)
        (run_dir,) = [d for d in Path(out).iterdir() if d.is_dir()]
        sk = skews(run_dir)
        ow = guest_one_way_s(vm, a.nodes)
        label = f"{mode} mode, drift up to {suite['drift']['max_ppm']} ppm" + (", no deploy" if extra else "")
        print(f"smoke on VMs ({label}): {dt:.0f} s; load {load()}")
        if mode == "kernel":
            for n in sorted(p.name for p in (run_dir / "nodes").iterdir()):
                kc = json.loads((run_dir / "nodes" / n / "kernel_clock.json").read_text())
                print(f"  {n}: requested {kc['requested_rate_ppm']:+.1f} ppm, delivered "
                      f"{kc['delivered_rate_ppm']:+.1f} ppm (dmesg {kc['dmesg_rate_ppm']}, measured "
                      f"{kc['measured_rate_ppm']:+.1f} +- {kc['measured_rate_se_ppm']:.1f})")
        if sk and ow:
            print(f"  skew over every sweep after warm-up (post-sync and between rounds): p50 "
                  f"{pct(sk, .5) * 1e3:.3f} ms, p99 {pct(sk, .99) * 1e3:.3f} ms, max {max(sk) * 1e3:.3f} ms "
                  f"({len(sk)} sweeps); guest-to-guest one-way delay p50 "
                  f"{pct(ow, .5) * 1e3:.3f} ms, p99 {pct(ow, .99) * 1e3:.3f} ms; "
                  f"skew p99 / one-way p50 = {pct(sk, .99) / pct(ow, .5):.1f} (target < 3 in kernel mode)")
        summ = run_dir / "summary.json"
        if not summ.exists():
            tempo("report", str(run_dir))
        for node, c in sorted(cpu_by_role(run_dir).items()):
            print(f"  CPU of tempod inside guest {node}: {c:.2f} % of one vCPU")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--rebuild", action="store_true", help="build the box now (minutes)")
    ap.add_argument("--name", default="tvm")
    ap.add_argument("--modes", default="faketime,kernel",
                    help="clock modes to run smoke in (faketime is always run)")
    ap.add_argument("--kernel-max-ppm", type=float, default=500.0,
                    help="drift bound of the second kernel-mode run (between-round skew)")
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
        smoke(vm, a, "faketime", None, ["--no-deploy"])
        if "kernel" in a.modes:
            # the runner boots the guests again with their qemu rates, deploys the kernel
            # backend, measures and steps the guest clocks, then starts the daemons
            smoke(vm, a, "kernel", None, [])
            smoke(vm, a, "kernel", a.kernel_max_ppm, [])
    finally:
        vm.down()
    print(f"load average at end: {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
