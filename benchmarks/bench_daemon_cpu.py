"""CPU use of tempod (percent of one core) for master and followers, 3 nodes on loopback.

Starts 3 real daemons (auth on, NTP responder on) on 127.77.x.11-13 with 2 s rounds
(``--round``), waits until one master leads synchronized followers, then measures each
process's utime+stime from /proc/<pid>/stat over ``--duration`` seconds of steady
state.  Prints one line per node and a JSON summary.  No root needed.

    .venv/bin/python benchmarks/bench_daemon_cpu.py [--duration 60] [--round 2.0]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    # /proc/<pid>/stat fields 14, 15 (utime, stime) in clock ticks; comm may hold spaces.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=60.0, help="measured seconds (default 60)")
    ap.add_argument("--round", type=float, default=2.0, help="round_interval_s (default 2)")
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench-tempod-"))
    net = f"127.77.{random.randint(1, 250)}"
    names = ["n1", "n2", "n3"]
    addr = {n: f"{net}.{10 + i}" for i, n in enumerate(names, 1)}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((addr["n1"], 0))
        port = s.getsockname()[1]
    key = root / "tempo.key"
    key.write_text(os.urandom(32).hex())
    key.chmod(0o600)
    procs: dict[str, subprocess.Popen] = {}
    try:
        for n in names:
            hosts = ", ".join(f'{{ name = "{p}", address = "{addr[p]}" }}' for p in names if p != n)
            cfg = root / f"{n}.toml"
            cfg.write_text(
                f'[node]\nname = "{n}"\naddress = "{addr[n]}"\ntsp_port = {port}\nntp_port = {port + 1}\n'
                f'[peers]\nhosts = [ {hosts} ]\n[auth]\nkey_file = "{key}"\n'
                f'[timers]\nround_interval_s = {args.round}\nelection_timeout_min_s = 3.0\nelection_timeout_max_s = 6.0\n'
                f'[log]\nevent_log = "{root / (n + ".jsonl")}"\ncpu_report_interval_s = 10.0\n')
            procs[n] = subprocess.Popen([sys.executable, "-m", "tempod.main", "--config", str(cfg)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def status(n: str) -> dict | None:
            r = subprocess.run([sys.executable, "-m", "tempod.ctl", "--config", str(root / f"{n}.toml"),
                                "status", "--json"], capture_output=True, text=True)
            return json.loads(r.stdout) if r.returncode == 0 else None

        deadline = time.monotonic() + 60
        roles: dict[str, str] = {}
        while time.monotonic() < deadline:
            st = {n: status(n) for n in names}
            if all(s and s["synchronized"] for s in st.values()):
                roles = {n: s["state"] for n, s in st.items() if s}
                if list(roles.values()).count("LEADER") == 1:
                    break
            time.sleep(0.5)
        else:
            print("cluster did not settle within 60 s", file=sys.stderr)
            return 1

        c0 = {n: cpu_s(p.pid) for n, p in procs.items()}
        t0 = time.monotonic()
        time.sleep(args.duration)
        c1 = {n: cpu_s(p.pid) for n, p in procs.items()}
        wall = time.monotonic() - t0
        result = {"round_interval_s": args.round, "measured_s": round(wall, 1), "nodes": {}}
        for n in names:
            pct = 100.0 * (c1[n] - c0[n]) / wall
            result["nodes"][n] = {"role": roles[n], "cpu_percent_of_one_core": round(pct, 3),
                                  "cpu_s": round(c1[n] - c0[n], 3)}
            print(f"{n} {roles[n]:<8} {pct:7.3f} % of one core ({c1[n] - c0[n]:.2f} s CPU in {wall:.0f} s)")
        print(json.dumps(result))
        return 0
    finally:
        for p in procs.values():
            p.send_signal(signal.SIGTERM)
        for p in procs.values():
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    sys.exit(main())
