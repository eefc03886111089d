"""Fuzz throughput of the untrusted-input path: auth.Verifier.verify + wire.decode.

Feeds ``--count`` inputs (default 1,000,000): two thirds are mutations (bit flips, byte
sets, insertions, deletions, truncations, appended junk) of valid *authenticated*
packets of every message type, one third uniformly random bytes.  Each input goes
through ``verify`` (required, bound to a local name) and, when that passes, through
``decode``; half the inputs are also decoded without authentication so that the
codec sees mutated messages, not just MAC failures.  Any exception other than the
declared ``RemoteProtocolError`` family is an unexpected one: it is printed and the
script exits 1.

    .venv/bin/python benchmarks/bench_fuzz_wire.py [--count 1000000] [--seed 1]
"""

from __future__ import annotations

import argparse
import collections
import random
import sys
import time
import traceback

from tempod import auth, wire
from tempod.wire import Message, MsgType

RING = auth.KeyRing({1: bytes(range(32))})


def seeds() -> list[bytes]:
    """One valid message of each type, with every optional field used somewhere."""
    out = []
    for t in MsgType:
        out.append(wire.encode(Message(
            t, 4242, "node-1", time_ns=-1_234_567_891 if t is not MsgType.LOOP else None,
            hops=3 if t is MsgType.LOOP else 0, t1_ns=1, t2_ns=2, t3_ns=3, target="n2",
            data={"state": "LEADER", "peers": [{"name": "n2", "offset_s": 1e-5}]})))
        req = wire.REQUIRED.get(t, frozenset())
        out.append(wire.encode(Message(
            t, 7, "n", **{a: 5 for a in req if a != "data"}, **({"data": {}} if "data" in req else {}))))
    return out


def mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        i = rng.randrange(len(buf)) if buf else 0
        if op == 0 and buf:
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:
            buf[i] = rng.randrange(256)
        elif op == 2:
            buf[i:i] = rng.randbytes(rng.randint(1, 8))
        elif op == 3 and buf:
            del buf[i:i + rng.randint(1, 8)]
        elif op == 4:
            del buf[i:]
        else:
            buf += rng.randbytes(rng.randint(1, 40))
    return bytes(buf)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    plain = seeds()
    signer = auth.Signer(RING, 1, 0x1234)
    signed = [signer.sign(p, recipient="me") for p in plain]
    verifier = auth.Verifier(RING, local_name="me")
    outcomes: collections.Counter[str] = collections.Counter()
    unexpected = 0
    t0 = time.perf_counter()
    for i in range(args.count):
        kind = i % 3
        if kind == 2:
            data = rng.randbytes(rng.randrange(200))
        elif kind == 1:
            data = mutate(rng, rng.choice(signed))
        else:
            data = mutate(rng, rng.choice(plain))
        try:
            try:
                payload = verifier.verify(data, ("10.0.0.9", 525))
                wire.decode(payload)
                outcomes["verified+decoded"] += 1
            except wire.RemoteProtocolError as exc:
                outcomes[type(exc).__name__] += 1
            if kind == 0:
                try:
                    wire.decode(data)
                    outcomes["decoded (no auth)"] += 1
                except wire.RemoteProtocolError:
                    outcomes["decode rejected (no auth)"] += 1
        except Exception:  # noqa: BLE001 -- exactly what this script hunts for
            unexpected += 1
            if unexpected <= 5:
                print(f"UNEXPECTED on input {data.hex()}:", file=sys.stderr)
                traceback.print_exc()
    elapsed = time.perf_counter() - t0
    print(f"inputs: {args.count}  time: {elapsed:.1f} s  rate: {args.count / elapsed:,.0f} inputs/s")
    for name, n in outcomes.most_common():
        print(f"  {name:28s} {n}")
    print(f"unexpected exceptions: {unexpected}")
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
