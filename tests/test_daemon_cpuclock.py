"""The daemon's CPU self-report: CLOCK_PROCESS_CPUTIME_ID through the raw system call.

libfaketime fakes that clock id too (at rate x2 it reports twice the CPU time), so the
runtime reads it past libfaketime; this checks it against the kernel's schedstat of the
same process, under a real libfaketime preload with a fast rate.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tempod.launch import DEFAULT_LIBFAKETIME
from tempod.runtime import process_cpu_ns_reader

CHILD = r"""
import json, time
from tempod.runtime import process_cpu_ns_reader
read = process_cpu_ns_reader()
sum(i * i for i in range(1_500_000))
raw = read()
libc = time.clock_gettime_ns(time.CLOCK_PROCESS_CPUTIME_ID)
sched = int(open('/proc/self/schedstat').read().split()[0])
print(json.dumps({"raw": raw, "libc": libc, "sched": sched}))
"""


def test_reader_is_monotonic_ns_in_this_process():
    read = process_cpu_ns_reader()
    a = read()
    sum(i * i for i in range(200_000))
    b = read()
    assert isinstance(a, int) and b > a


@pytest.mark.skipif(not os.path.exists(DEFAULT_LIBFAKETIME), reason="libfaketime not installed")
def test_raw_cpu_clock_is_not_scaled_by_libfaketime():
    env = dict(os.environ, LD_PRELOAD=DEFAULT_LIBFAKETIME, FAKETIME="@2030-01-01 00:00:00 x2",
               PYTHONPATH=str(Path(__file__).resolve().parents[1] / "daemon"))
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True,
                         timeout=60).stdout
    r = json.loads(out.strip().splitlines()[-1])
    # the kernel's count (schedstat, updated at the last switch) and the raw clock agree;
    # libc's clock_gettime under libfaketime reports about twice as much
    assert abs(r["raw"] - r["sched"]) < 0.1 * r["raw"] + 5_000_000
    assert r["libc"] > 1.6 * r["raw"]
