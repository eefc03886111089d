"""results/example holds its raw records (gzip-compressed JSON lines): `tempo report` on
a copy of it reproduces its committed summary.json (every number; only the generation
time differs)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "results" / "example"


def test_the_example_has_its_raw_records():
    for name in ("observer.jsonl", "cpu.jsonl", "trials.jsonl", "faults.jsonl"):
        assert (EXAMPLE / name).exists() or (EXAMPLE / f"{name}.gz").exists(), name
    nodes = sorted(p.name for p in (EXAMPLE / "nodes").iterdir())
    assert nodes and all((EXAMPLE / "nodes" / n / "events.jsonl.gz").exists()
                         or (EXAMPLE / "nodes" / n / "events.jsonl").exists() for n in nodes)
    size = sum(p.stat().st_size for p in EXAMPLE.rglob("*") if p.is_file())
    assert size < 6_000_000, f"results/example is {size / 1e6:.1f} MB"


def test_tempo_report_on_a_copy_reproduces_summary_json(tmp_path):
    from tempolab.analysis import build_report

    copy = tmp_path / "example"
    shutil.copytree(EXAMPLE, copy)
    for p in ("summary.json", "summary.md", "report.html"):
        (copy / p).unlink()
    shutil.rmtree(copy / "figures", ignore_errors=True)
    # every number of summary.json; the figures (drawn by `tempo report`, ~1 min here) are
    # checked by name and status only, by the figure tests on synthetic runs
    got = build_report(copy, write=True, figures=False).summary
    want = json.loads((EXAMPLE / "summary.json").read_text())
    for s in (want, got):
        s.pop("generated")
    assert set(got.pop("figures")) == set(want.pop("figures"))
    assert json.loads(json.dumps(got)) == want
    assert (copy / "summary.json").exists() and (copy / "tables" / "round_summary.csv").exists()
