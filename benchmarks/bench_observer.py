"""Observer throughput and its own error bound.

Starts a minimal NTP responder (``tempod.ntp.server_reply``, the daemon's own reply
code) per node -- on 127.0.0.x by default, or inside the nodes of a running lab with
``--lab NAME`` (over SSH, so the path is the real bridge + veth + namespace) -- and runs
the observer against them. Prints achieved sweep rate, answered fraction and the
median / p99 / max of bound_s (half the round trip).

    .venv/bin/python benchmarks/bench_observer.py --nodes 5 --hz 10 --seconds 20
    .venv/bin/python benchmarks/bench_observer.py --lab trun --hz 20 --seconds 20
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from tempolab.runner.faults import NodeRef
from tempolab.runner.observer import Observer, bound_stats

RESPONDER = r"""
import socket, sys, time
from tempod import ntp
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
s.settimeout(1.0)
end = time.time() + float(sys.argv[3])
st, leap, ref = ntp.encode_state("FOLLOWER", "10.0.0.1")
while time.time() < end:
    try:
        d, a = s.recvfrom(512)
    except socket.timeout:
        continue
    t2 = time.time()
    s.sendto(ntp.server_reply(d, t2, time.time(), stratum=st, leap=leap, refid=ref,
                              root_dispersion_s=0.0), a)
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=5)
    ap.add_argument("--hz", type=float, default=10.0)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--port", type=int, default=12323)
    ap.add_argument("--lab", help="run responders inside this lab's nodes")
    args = ap.parse_args()
    procs = []
    pool = None
    if args.lab:
        from tempolab.lab import Lab
        from tempolab.runner.hosts import load_hosts
        from tempolab.runner.sshpool import SshPool

        lab = Lab.load(args.lab)
        hosts = load_hosts(lab.inventory_path)
        pool = SshPool(hosts)
        code = RESPONDER.replace("'", "'\"'\"'")
        for h in hosts:
            pool.run(h.name, f"nohup {sys.executable} -c '{code}' {h.address} {args.port} "
                             f"{args.seconds + 5} >/dev/null 2>&1 &").check()
        refs = [NodeRef(h.name, h.address) for h in hosts]
    else:
        refs = [NodeRef(f"n{i + 1}", f"127.0.0.{i + 2}") for i in range(args.nodes)]
        for r in refs:
            procs.append(subprocess.Popen([sys.executable, "-c", RESPONDER, r.address,
                                           str(args.port), str(args.seconds + 5)]))
    time.sleep(1.0)
    samples: list[dict] = []
    t0 = time.monotonic()
    with Observer(refs, port=args.port, hz=args.hz, timeout_s=0.5, sink=samples.append):
        time.sleep(args.seconds)
    el = time.monotonic() - t0
    for p in procs:
        p.terminate()
    if pool is not None:
        pool.close()
    sweeps = len({s["sweep"] for s in samples})
    answered = [s for s in samples if s["state"] != "unreachable"]
    st = bound_stats(samples)
    where = f"lab {args.lab}" if args.lab else "loopback"
    print(f"observer on {len(refs)} nodes ({where}), target {args.hz:g} Hz, {el:.1f} s")
    print(f"  sweeps/s      {sweeps / el:.2f}")
    print(f"  samples       {len(samples)}, answered {len(answered) / max(1, len(samples)):.2%}")
    if st["n"]:
        print(f"  bound_s       median {st['median_s'] * 1e6:.1f} us, p99 {st['p99_s'] * 1e6:.1f} us, "
              f"max {st['max_s'] * 1e6:.1f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
