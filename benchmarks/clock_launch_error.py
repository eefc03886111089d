"""Measure tempod-launch's launch error under real libfaketime, and clock read costs.

Prints, for N launches of /usr/bin/python3 under a +2.5 s / +10% profile, the error
child_clock - profile.hw_at(t) (t = midpoint of the best of 20 pipe round trips), and
the implied exec latency (error / -rate). Then the cost of one clock read.

    .venv/bin/python benchmarks/clock_launch_error.py [N] [EXEC_LATENCY_S]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path

from tempod.clocks import ProcessClock, SimClock
from tempod.discipline import SoftwareClock
from tempod.profile import DriftProfile, RateChange, dump_profile

CHILD = "import sys, time\nfor _ in sys.stdin:\n    print(repr(time.time()), flush=True)\n"
RATE_PPM = 100_000.0


def one_launch(profile_path: Path, prof: DriftProfile, latency_s: float) -> tuple[float, float]:
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "FAKETIME")}
    p = subprocess.Popen(
        [sys.executable, "-m", "tempod.launch", "--profile", str(profile_path), "--exec-latency", repr(latency_s), "--", "/usr/bin/python3", "-c", CHILD],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
    )
    assert p.stdin and p.stdout
    best = None
    for _ in range(21):
        a = time.time()
        p.stdin.write("q\n")
        p.stdin.flush()
        v = float(p.stdout.readline())
        b = time.time()
        if best is None or b - a < best[0]:
            best = (b - a, (a + b) / 2, v)
    p.stdin.close()
    p.wait()
    assert best is not None
    rtt, t, v = best
    return v - prof.hw_at(t), rtt


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    latency_s = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    with tempfile.TemporaryDirectory() as d:
        prof = DriftProfile(epoch_unix_s=time.time() - 60.0, offset_s=2.5, rate_ppm=RATE_PPM)
        path = Path(d) / "drift.toml"
        path.write_text(dump_profile(prof))
        errs, rtts = [], []
        for _ in range(n):
            e, r = one_launch(path, prof, latency_s)
            errs.append(e)
            rtts.append(r)
    us = [e * 1e6 for e in errs]
    print(f"launches: {n}, profile +2.5 s, rate {RATE_PPM:.0f} ppm, --exec-latency {latency_s}")
    print(f"launch error (us): median {statistics.median(us):.1f}  min {min(us):.1f}  max {max(us):.1f}")
    print(f"implied uncompensated exec latency (ms): median {statistics.median(us) / -RATE_PPM * 1e3 + latency_s * 1e3:.2f}")
    print(f"best pipe round trip (us): median {statistics.median(rtts) * 1e6:.1f} (measurement resolution ~ half of it)")

    prof2 = DriftProfile(time.time() - 10, 1.0, 100.0, (RateChange(1e6, -50.0),))
    pc = ProcessClock(prof2, mode="faketime", launch_true_s=time.time())
    sc = SoftwareClock()
    sc.adjust(0.01, 1.795e9)
    sim = SimClock(0.0, 50.0, 5.0, seed=1)
    k = 200_000
    print(f"time.time(): {timeit.timeit(time.time, number=k) / k * 1e9:.0f} ns/read")
    print(f"ProcessClock.read_s (rate change pending): {timeit.timeit(pc.read_s, number=k) / k * 1e9:.0f} ns/read")
    print(f"SoftwareClock.corrected (slewing): {timeit.timeit(lambda: sc.corrected(1.795e9 + 5.0), number=k) / k * 1e9:.0f} ns/call")
    print(f"SimClock.read with wander: {timeit.timeit(lambda: sim.read(5000.0), number=k) / k * 1e9:.0f} ns/call")


if __name__ == "__main__":
    main()
