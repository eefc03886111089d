"""Per-operation cost of the wire path: encode, decode, sign, verify, NTP reply/parse.

Prints microseconds per operation (best of ``--repeat`` timeit runs) for typical
messages.  Numbers, not assertions: compare them across changes.

    .venv/bin/python benchmarks/bench_codec.py [--number 20000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import itertools
import timeit

from tempod import auth, ntp, wire
from tempod.wire import Message, MsgType

RING = auth.KeyRing({1: bytes(range(32))})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--number", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    probe = Message(MsgType.PROBE_REPLY, 9, "n2", t1_ns=1_795_000_000_123_456_789,
                    t2_ns=1_795_000_000_123_556_789, t3_ns=1_795_000_000_123_566_789)
    adj = Message(MsgType.ADJTIME, 10, "n1", time_ns=-1_500_000)
    status = Message(MsgType.STATUS, 11, "n1", data={
        "name": "n1", "state": "LEADER", "peers": [{"name": f"n{i}", "offset_s": 1e-5, "bound_s": 2e-5,
                                                    "missed": 0, "in_group": True} for i in range(10)]})
    signer = auth.Signer(RING, 1, 1)
    verifier = auth.Verifier(RING, local_name="n1")
    packets = itertools.cycle([signer.sign(wire.encode(probe), recipient="n1") for _ in range(args.number * args.repeat + 10)])
    req = ntp.client_request(1.8e9)
    rep = ntp.server_reply(req, 1.8e9, 1.8e9, stratum=1, leap=0, refid=b"LEAD", root_dispersion_s=0.0)

    cases = {
        "encode PROBE_REPLY": lambda: wire.encode(probe),
        "decode PROBE_REPLY": (lambda b=wire.encode(probe): wire.decode(b)),
        "encode ADJTIME": lambda: wire.encode(adj),
        "decode ADJTIME": (lambda b=wire.encode(adj): wire.decode(b)),
        "encode STATUS (10 peers)": lambda: wire.encode(status),
        "decode STATUS (10 peers)": (lambda b=wire.encode(status): wire.decode(b)),
        "sign (bound)": (lambda b=wire.encode(probe): signer.sign(b, recipient="n1")),
        "verify (bound, fresh)": lambda: verifier.verify(next(packets)),
        "ntp server_reply": lambda: ntp.server_reply(req, 1.8e9, 1.8e9, stratum=1, leap=0, refid=b"LEAD",
                                                     root_dispersion_s=0.0),
        "ntp parse_reply": lambda: ntp.parse_reply(rep, 1.8e9, 1.8e9),
    }
    print(f"{'operation':28s} {'us/op':>8s}")
    for name, fn in cases.items():
        best = min(timeit.repeat(fn, number=args.number, repeat=args.repeat)) / args.number
        print(f"{name:28s} {best * 1e6:8.2f}")


if __name__ == "__main__":
    main()
