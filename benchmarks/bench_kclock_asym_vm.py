"""tempod with the kernel clock backend on two real guests, and netem asymmetric delay.

Usage (as root; the guests' network lives in their namespace only):
  python benchmarks/bench_kclock_asym_vm.py --ssh "ip netns exec tkc ssh -p 2221 -i KEY root@127.0.0.1" \
      --ssh "... -p 2222 ..." --addr 10.85.0.1 --addr 10.85.0.2 --dev eth1 --out result.json

The guests must have been booted with ``tempo.kernel_clock=allow`` (the guard) and a
link between them on ``--dev``. Copies daemon/tempod to /root/tkc, gives the link the
addresses, starts ``tempod`` (backend kernel, n2 not master-eligible so n1 is master,
rounds every 2 s) on both, checks that each guest's NTP responder serves its kernel
clock (an NTP query from inside the guest against ``time.time()``), then observes both
clocks from the controller (GuestClockProbe, 4 Hz each) through windows of netem delay
each way, rendered by runner/faults.py exactly as a suite would (``asym_delay``), and
reports tempolab.analysis.asymmetry.measure() against the theory.
Everything it started in the guests (tempod, qdiscs) is removed at the end and on errors.
"""

from __future__ import annotations

import argparse
import json
import random
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "experiments"), str(REPO / "daemon")]

import pandas as pd  # noqa: E402

from tempolab.analysis import asymmetry  # noqa: E402
from tempolab.runner import faults  # noqa: E402
from tempolab.runner.faults import NodeRef  # noqa: E402
from tempolab.runner.suite import FaultSpec  # noqa: E402
from tempolab.vm.kclock_probe import GuestClockProbe  # noqa: E402

CONFIG = """[node]
name = "{name}"
address = "{addr}"
master_eligible = {eligible}
[peers]
hosts = [{{ name = "{peer}", address = "{peer_addr}" }}]
[auth]
key_file = "/root/tkc/tempo.key"
[timers]
round_interval_s = 2.0
probes_per_round = 6
election_timeout_min_s = 2.0
election_timeout_max_s = 4.0
probe_timeout_s = 0.3
[clock]
backend = "kernel"
[log]
event_log = "/root/tkc/{name}.events.jsonl"
cpu_report_interval_s = 5.0
"""

NTP_CHECK = r"""
import socket, struct, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
best = None
for _ in range(10):
    t1 = time.time(); s.sendto(b"\x23" + 47 * b"\0", ("{addr}", 123)); d = s.recv(512); t4 = time.time()
    f = lambda o: struct.unpack("!I", d[o:o+4])[0] - 2208988800 + struct.unpack("!I", d[o+4:o+8])[0] / 2**32
    t2, t3 = f(32), f(40)
    off, rtt = ((t2 - t1) + (t3 - t4)) / 2, (t4 - t1) - (t3 - t2)
    if best is None or rtt < best[1]:
        best = (off, rtt)
print(best[0], best[1], d[1])
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ssh", action="append", required=True)
    ap.add_argument("--addr", action="append", required=True)
    ap.add_argument("--dev", default="eth1")
    ap.add_argument("--window", type=float, default=40.0)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    # SIGTERM (a timeout) must still run the cleanup below
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ssh = [shlex.split(s) for s in args.ssh]
    names = ["n1", "n2"]
    nodes = [NodeRef(n, a) for n, a in zip(names, args.addr)]

    def sh(i: int, cmd: str, **kw) -> subprocess.CompletedProcess:
        return subprocess.run([*ssh[i], cmd], capture_output=True, text=True, timeout=120, **kw)

    key = "%064x" % random.getrandbits(256)
    tar = subprocess.run(["tar", "-C", str(REPO / "daemon"), "-czf", "-", "--exclude=__pycache__", "tempod"],
                         capture_output=True, check=True).stdout
    result: dict = {"load_before": Path("/proc/loadavg").read_text().split()[:3]}
    try:
        for i, n in enumerate(nodes):
            peer = nodes[1 - i]
            subprocess.run([*ssh[i], "mkdir -p /root/tkc && tar -C /root/tkc -xzf -"], input=tar, check=True, timeout=120)
            cfg = CONFIG.format(name=n.name, addr=n.address, peer=peer.name, peer_addr=peer.address,
                                eligible="true" if i == 0 else "false")
            r = sh(i, f"ip addr replace {n.address}/24 dev {args.dev} && ip link set {args.dev} up && "
                      f"(umask 077; echo {key} > /root/tkc/tempo.key) && cat > /root/tkc/{n.name}.toml <<'EOF'\n{cfg}EOF\n"
                      "adjtimex --tick 10000 --frequency 0; rm -f /root/tkc/*.events.jsonl; "
                      f"cd /root/tkc; PYTHONPATH=/root/tkc exec setsid python3 -m tempod.main --config "
                      f"/root/tkc/{n.name}.toml > /root/tkc/{n.name}.out 2>&1 < /dev/null & echo $! > /root/tkc/{n.name}.pid; sleep 1; "
                      f"cat /root/tkc/{n.name}.out")
            if r.returncode:
                raise RuntimeError(f"{n.name}: {r.stderr}")
        print("tempod started on both; waiting 25 s for the first rounds", flush=True)
        time.sleep(25)
        for i, n in enumerate(nodes):
            out = sh(i, f"python3 -c {shlex.quote(NTP_CHECK.replace('{addr}', n.address))}").stdout.split()
            result[f"ntp_vs_kernel_{n.name}"] = {"offset_s": float(out[0]), "rtt_s": float(out[1]), "stratum": int(out[2])}
            result[f"timex_{n.name}"] = sh(i, "adjtimex -p | grep -E 'frequency|tick|status'").stdout
        print("NTP responder vs kernel clock:", {k: v for k, v in result.items() if k.startswith("ntp")}, flush=True)

        samples: list[dict] = []
        stop = threading.Event()

        def observe(i: int) -> None:
            with GuestClockProbe(ssh[i]) as probe:
                while not stop.is_set():
                    r = probe.offset(3)
                    samples.append({"t_ref": (r.sent_s + r.received_s) / 2, "node": names[i],
                                    "offset_s": r.offset_s, "rtt_s": r.rtt_s})
                    time.sleep(0.25)

        obs = [threading.Thread(target=observe, args=(i,), daemon=True) for i in range(2)]
        for t in obs:
            t.start()
        plan = [(None, None), (8.0, 0.0), (0.0, 8.0), (6.0, 2.0)]
        windows = []
        rng = random.Random(1)
        for d_out, d_back in plan:
            t0 = time.time()
            if d_out is None:
                time.sleep(args.window)
                windows.append(asymmetry.Window(t0, time.time(), "n1", 0.0, 0.0))
                continue
            f = faults.resolve(FaultSpec("asym_delay", at_s=0, duration_s=args.window, targets=("n1",),
                                         delay_ms=d_out, reverse_delay_ms=d_back), nodes, "n1", rng)
            for i, n in enumerate(names):
                if n in f.apply_cmds:
                    r = sh(i, f.apply_cmds[n])
                    if r.returncode:
                        raise RuntimeError(f"apply on {n}: {r.stderr.strip()}")
            shown = {n: sh(i, f"tc qdisc show dev {args.dev}; tc filter show dev {args.dev}").stdout
                     for i, n in enumerate(names)}
            result.setdefault("qdiscs", []).append(shown)
            t_on = time.time()
            time.sleep(args.window)
            for i, n in enumerate(names):
                r = sh(i, f.revert_cmds[n])
                if r.returncode:
                    raise RuntimeError(f"revert on {n}: {r.stderr.strip()}")
            windows.append(asymmetry.Window(t_on, time.time(), "n1", d_out, d_back))
            print(f"window d_out={d_out} d_back={d_back} done", flush=True)
            args.out.with_suffix(".partial.json").write_text(json.dumps(
                {"windows": [w.__dict__ for w in windows], "samples": samples}, default=str))
        stop.set()
        for t in obs:
            t.join(timeout=10)
        df = pd.DataFrame(samples)
        res = asymmetry.measure(df, windows, settle_s=15.0)
        result["asymmetry"] = res.to_dict(orient="records")
        result["samples"] = samples
        result["rtt_median_s"] = float(df["rtt_s"].median())
        fig = asymmetry.figure(res)
        fig.savefig(args.out.with_suffix(".png"), dpi=110)
        with pd.option_context("display.width", 200, "display.max_columns", 20):
            print(res[["asymmetry_ms", "expected_bias_s", "measured_bias_s", "error_s", "samples", "within"]])
    finally:
        for i, n in enumerate(nodes):
            peer = nodes[1 - i]
            sh(i, faults.netem_revert_cmd(peer.address) + f"; kill $(cat /root/tkc/{n.name}.pid) 2>/dev/null; true")
            result[f"events_tail_{n.name}"] = sh(i, f"tail -n 5 /root/tkc/{n.name}.events.jsonl").stdout
        result["load_after"] = Path("/proc/loadavg").read_text().split()[:3]
        args.out.write_text(json.dumps(result, indent=1, default=str))
    print("load", result["load_before"], "->", result["load_after"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
