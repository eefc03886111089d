"""Time `tempo report` stages on a synthetic 32-node run (prints numbers, asserts nothing).

usage: .venv/bin/python benchmarks/bench_analysis.py [NODES] [TRIALS]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from tempolab.analysis import build_report
from tempolab.analysis.load import load_run
from tempolab.testing.synthetic import SyntheticSpec, make_run
from tempolab.analysis.tables import build_tables


def main() -> None:
    nodes = int(sys.argv[1]) if len(sys.argv) > 1 else 32
    trials = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "run"
        t0 = time.perf_counter()
        truth = make_run(path, SyntheticSpec(nodes=nodes, trials=trials, trial_s=120.0, kill_at_s=50.5))
        t1 = time.perf_counter()
        run = load_run(path)
        t2 = time.perf_counter()
        build_tables(run)
        t3 = time.perf_counter()
        c0 = time.process_time()
        build_report(path)
        t4 = time.perf_counter()
        cpu = time.process_time() - c0
        print(f"nodes={nodes} trials={trials} samples={truth.samples} rounds={truth.rounds}")
        print(f"generate_s={t1 - t0:.2f} load_s={t2 - t1:.2f} tables_s={t3 - t2:.2f} "
              f"full_report_s={t4 - t3:.2f} full_report_cpu_s={cpu:.2f}")


if __name__ == "__main__":
    main()
