"""KernelDiscipline on a real guest kernel, driven from the controller.

Usage (as root, guests reachable only inside their namespace):
  python benchmarks/bench_kclock_vm.py --ssh "ip netns exec tkc ssh -p 2221 -i KEY root@127.0.0.1" \
      [--ssh "..."] [--rounds 40] [--interval 2] --out result.json

For each guest, in parallel: copies daemon/tempod into /root/tkc, then
1. measures the delivered rate for ``--measure`` s (reads over one SSH channel against
   the controller's clock) and reads the guest's dmesg TSC calibration;
2. steps the guest (relative) to +0.25 s and checks where it landed;
3. runs an agent in the guest that owns a real KernelDiscipline (tempod.kernelclock,
   the guard must pass: the guest was booted with tempo.kernel_clock=allow) and, every
   ``--interval`` s, sends it ``adjust(-offset)`` with the offset measured by the
   controller (a one-master Berkeley loop whose master is the true clock). Disturbances,
   both through the agent's open channel: at round 10 the clock is stepped +0.5 s from
   outside the discipline (it must *hold* it back, never step back), at round 20 the
   discipline is told ``set_time(+0.3 s ahead)`` (a forward *step*, then a hold; a set
   teaches the frequency loop nothing); a sampler process in the guest reads
   CLOCK_REALTIME every ~1 ms the whole time and counts backward steps;
4. lets the clock run free for ``--measure`` s and fits the residual rate.
Prints one line per guest and writes everything to --out.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "experiments"), str(REPO / "daemon")]

from tempolab.vm import kclock  # noqa: E402
from tempolab.vm.kclock_probe import GuestClockProbe  # noqa: E402

AGENT = r"""
import json, select, sys, time
sys.path.insert(0, "/root/tkc")
from tempod.kernelclock import KernelClock, KernelDiscipline
kc = KernelClock(allow_write=True)
d = KernelDiscipline(kc)
out = lambda o: print(json.dumps(o), flush=True)
out({"ready": True, "tick": kc.timex().tick_us, "freq": kc.timex().freq_ppm})
while True:
    wait = d.next_poll_s(kc.read_s())
    r, _, _ = select.select([sys.stdin], [], [], wait)
    if not r:
        d.poll(kc.read_s())
        continue
    line = sys.stdin.readline()
    if not line:
        break
    c = line.split()
    if c[0] == "t":
        print(repr(time.time()), flush=True)
    elif c[0] in ("adj", "set", "kick"):
        if c[0] == "adj":
            kind = d.adjust(float(c[1]), kc.read_s(), float(c[2]))
        elif c[0] == "set":
            kind = d.set_time(kc.read_s() + float(c[1]), kc.read_s(), float(c[2]))
        else:  # a step from outside the discipline
            kind = "kick"
            time.clock_settime(time.CLOCK_REALTIME, time.clock_gettime(time.CLOCK_REALTIME) + float(c[1]))
        tx = kc.timex()
        out({"kind": kind, "tick": tx.tick_us, "freq": tx.freq_ppm, "total": d.freq_ppm,
             "rest": d.state(kc.read_s())["slew_remaining_s"]})
"""

SAMPLER = r"""
import json, sys, time
end = time.monotonic() + float(sys.argv[1])
prev = time.time(); n = back = 0; worst = 0.0; jumps = 0
while time.monotonic() < end:
    t = time.time(); n += 1
    if t < prev:
        back += 1; worst = min(worst, t - prev)
    if t - prev > 0.1:
        jumps += 1
    prev = t
    time.sleep(0.001)
print(json.dumps({"samples": n, "backward": back, "worst_backward_s": worst, "forward_jumps_gt_100ms": jumps}))
"""


class Agent:
    def __init__(self, ssh: list[str]) -> None:
        self.p = subprocess.Popen([*ssh, "python3 -u -c " + shlex.quote(AGENT)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
        hello = self.p.stdout.readline()
        if not hello:
            raise RuntimeError("agent failed: " + self.p.stderr.read()[-500:])
        self.hello = json.loads(hello)

    def read(self) -> kclock.ClockRead:
        t0 = time.time()
        self.p.stdin.write("t\n")
        self.p.stdin.flush()
        g = float(self.p.stdout.readline())
        return kclock.ClockRead(t0, g, time.time())

    def best(self, n: int = 8) -> kclock.ClockRead:
        return min((self.read() for _ in range(n)), key=lambda r: r.rtt_s)

    def adjust(self, delta: float, bound: float, verb: str = "adj") -> dict:
        self.p.stdin.write(f"{verb} {delta!r} {bound!r}\n")
        self.p.stdin.flush()
        return json.loads(self.p.stdout.readline())

    def close(self) -> None:
        self.p.stdin.close()
        self.p.wait(timeout=10)


def run_guest(ssh: list[str], args, host_mhz: float, result: dict) -> None:
    sh = lambda cmd: subprocess.run([*ssh, cmd], capture_output=True, text=True, timeout=120)  # noqa: E731
    tar = subprocess.run(["tar", "-C", str(REPO / "daemon"), "-czf", "-", "--exclude=__pycache__", "tempod"],
                         capture_output=True, check=True).stdout
    subprocess.run([*ssh, "mkdir -p /root/tkc && tar -C /root/tkc -xzf -"], input=tar, check=True, timeout=120)
    sh("adjtimex --tick 10000 --frequency 0")  # a previous run's discipline must not bias the rate read
    dmesg = sh("dmesg").stdout
    result["dmesg_tsc_mhz"] = kclock.tsc_mhz(dmesg)
    result["dmesg_rate_ppm"] = kclock.tsc_rate_ppm(dmesg, host_mhz)
    result["timex_before"] = sh("adjtimex -p").stdout
    with GuestClockProbe(ssh) as probe:
        fit = kclock.fit_rate(probe.reads(args.measure, 0.1))
        result["measured"] = fit.__dict__
        result["initial_offset_s"] = probe.set_offset(lambda t: 0.25).offset_s
    sampler = subprocess.Popen([*ssh, f"python3 -c {shlex.quote(SAMPLER)} {args.rounds * (args.interval + 1.5) + 40}"],
                               stdout=subprocess.PIPE, text=True)
    agent = Agent(ssh)
    rounds = []
    t_start = time.time()
    for k in range(args.rounds):
        if k == 10:
            agent.adjust(0.5, 0.0, "kick")      # outside disturbance: clock 0.5 s ahead
        r = agent.best()
        if k == 20:
            rep = agent.adjust(0.3, r.rtt_s / 2, "set")   # a wrong SETTIME 0.3 s ahead
        else:
            rep = agent.adjust(-r.offset_s, r.rtt_s / 2)
        rounds.append({"k": k, "t": time.time() - t_start, "offset_s": r.offset_s, "rtt_s": r.rtt_s, **rep})
        time.sleep(args.interval)
    agent.close()
    with GuestClockProbe(ssh) as probe:
        free = kclock.fit_rate(probe.reads(args.measure, 0.1))
    result["free_after"] = free.__dict__
    result["rounds"] = rounds
    result["sampler"] = json.loads(sampler.communicate(timeout=120)[0] or "{}")
    result["timex_after"] = sh("adjtimex -p").stdout
    tail = [abs(r["offset_s"]) for r in rounds[-8:]]
    result["tail_rtt_median_s"] = statistics.median(r["rtt_s"] for r in rounds[-8:])
    result["tail_abs_offset_s"] = {"median": statistics.median(tail), "max": max(tail)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ssh", action="append", required=True, help="command prefix that runs a command on a guest")
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--interval", type=float, default=2.0)
    ap.add_argument("--measure", type=float, default=20.0)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    host_mhz = kclock.host_tsc_mhz(subprocess.run(["dmesg"], capture_output=True, text=True).stdout,
                                   Path("/proc/cpuinfo").read_text())
    results = [{"ssh": s, "load_before": Path("/proc/loadavg").read_text().split()[:3]} for s in args.ssh]
    errors: list[str] = []

    def one(i: int) -> None:
        try:
            run_guest(shlex.split(args.ssh[i]), args, host_mhz, results[i])
        except Exception as exc:  # report per guest, keep the other's numbers
            errors.append(f"guest {i}: {exc!r}")
            results[i]["error"] = repr(exc)

    ts = [threading.Thread(target=one, args=(i,)) for i in range(len(args.ssh))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for r in results:
        r["load_after"] = Path("/proc/loadavg").read_text().split()[:3]
    args.out.write_text(json.dumps({"host_tsc_mhz": host_mhz, "guests": results}, indent=1))
    for r in results:
        if "error" in r:
            print(r["ssh"], "ERROR", r["error"])
            continue
        kinds = [x["kind"] for x in r["rounds"]]
        print(f"{r['ssh'][-30:]}: dmesg {r['dmesg_rate_ppm']:+.1f} ppm, measured {r['measured']['rate_ppm']:+.1f} ppm "
              f"(res {r['measured']['residual_s']*1e6:.0f} us); initial offset {r['initial_offset_s']*1e3:+.2f} ms; "
              f"free-running after {r['free_after']['rate_ppm']:+.2f} ppm; tail |offset| median "
              f"{r['tail_abs_offset_s']['median']*1e6:.0f} us max {r['tail_abs_offset_s']['max']*1e6:.0f} us; "
              f"kinds {dict((k, kinds.count(k)) for k in set(kinds))}; sampler {r['sampler']}; "
              f"load {r['load_before']}->{r['load_after']}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
