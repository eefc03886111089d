#!/usr/bin/env python3
"""Longer fuzz of the config and suite decoders than the test suite runs; prints counts.

Runs the properties of tests/test_hardening_fuzz.py (same strategies and checks, from
tempolab.testing.fuzz) with
``--examples`` inputs each and prints, per decoder and input layer, how many inputs
were accepted, how many rejected with the decoder's own error, the rate, and the first
input that raised anything else (exit 1 then).

    .venv/bin/python benchmarks/bench_fuzz_decoders.py --examples 20000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import yaml
from hypothesis import HealthCheck, Phase, given, settings, strategies as st

from tempod import config as tconfig
from tempolab.errors import ConfigError as SuiteError
from tempolab.runner import suite as tsuite
from tempolab.testing import fuzz as fz


def run(name: str, strategy, decode, own_error, n: int, counts: Counter, failures: dict) -> float:
    @settings(max_examples=n, deadline=None, database=None, derandomize=False,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(strategy)
    def prop(x):
        try:
            decode(x)
            counts[(name, "accepted")] += 1
        except own_error:
            counts[(name, "rejected")] += 1
        except Exception as exc:  # noqa: BLE001 - this is what we are hunting
            counts[(name, "OTHER")] += 1
            failures.setdefault(name, (type(exc).__name__, str(exc)[:120], repr(x)[:200]))

    t0 = time.perf_counter()
    prop()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=5000, help="inputs per property")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="fuzz-dec-"))
    cfg_path, suite_path = tmp / "tempod.toml", tmp / "fuzz.yaml"

    def cfg_bytes(b: bytes):
        cfg_path.write_bytes(b)
        fz.check_config_result(tconfig.load(cfg_path))

    def suite_bytes(b: bytes):
        suite_path.write_bytes(b)
        fz.check_suite_result(tsuite.load_suite_raw(str(suite_path))[0])

    cases = [
        ("config: bytes", st.binary(max_size=400), cfg_bytes, tconfig.ConfigError),
        ("config: documents", st.one_of(fz.config_docs(), fz.values),
         lambda d: fz.check_config_result(tconfig.from_dict(d, check_files=False)), tconfig.ConfigError),
        ("config: one-key mutants", fz.mutated_config(),
         lambda d: fz.check_config_result(tconfig.from_dict(d, check_files=False)), tconfig.ConfigError),
        ("suite: bytes", st.binary(max_size=400), suite_bytes, SuiteError),
        ("suite: YAML text", st.one_of(fz.yaml_ish, fz.suite_docs().map(yaml.safe_dump)),
         lambda t: suite_bytes(t.encode()), SuiteError),
        ("suite: documents", st.one_of(fz.suite_docs(), fz.values),
         lambda d: fz.check_suite_result(tsuite.parse_suite(d, "fuzz.yaml")), SuiteError),
        ("suite: one-field mutants", fz.mutated_suite(),
         lambda d: fz.check_suite_result(tsuite.parse_suite(d, "fuzz.yaml")), SuiteError),
    ]
    counts: Counter = Counter()
    failures: dict = {}
    print(f"{'decoder: layer':26} {'inputs':>8} {'accepted':>9} {'rejected':>9} {'other':>6} {'inputs/s':>9}")
    for name, strategy, decode, err in cases:
        secs = run(name, strategy, decode, err, args.examples, counts, failures)
        total = sum(counts[(name, k)] for k in ("accepted", "rejected", "OTHER"))
        print(f"{name:26} {total:8d} {counts[(name, 'accepted')]:9d} {counts[(name, 'rejected')]:9d} "
              f"{counts[(name, 'OTHER')]:6d} {total / secs:9.0f}")
    for name, (kind, msg, inp) in failures.items():
        print(f"FAIL {name}: {kind}: {msg}\n  input: {inp}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
