"""results/example holds its raw records (gzip-compressed JSON lines): `tempo report` on
a copy of it reproduces its committed summary.json (every number; only the generation
time differs).  So does tests/fixtures/20261202-055040-smoke/, a smoke run written and
reported by the code before the run-folder schema (runschema.py, schema version 0):
its summary.json is that code's, so a change that moves a number shows here."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tempolab.runschema import VOLATILE_SUMMARY_FIELDS

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "results" / "example"
OLD_SMOKE = REPO / "tests" / "fixtures" / "20261202-055040-smoke"
# the second example: suite vm-leader-kill on 3 real VMs in kernel clock mode
EXAMPLE_VM = REPO / "results" / "example-vm"


def test_the_example_has_its_raw_records():
    for name in ("observer.jsonl", "cpu.jsonl", "trials.jsonl", "faults.jsonl"):
        assert (EXAMPLE / name).exists() or (EXAMPLE / f"{name}.gz").exists(), name
    nodes = sorted(p.name for p in (EXAMPLE / "nodes").iterdir())
    assert nodes and all((EXAMPLE / "nodes" / n / "events.jsonl.gz").exists()
                         or (EXAMPLE / "nodes" / n / "events.jsonl").exists() for n in nodes)
    size = sum(p.stat().st_size for p in EXAMPLE.rglob("*") if p.is_file())
    assert size < 6_000_000, f"results/example is {size / 1e6:.1f} MB"


@pytest.mark.parametrize("folder", [EXAMPLE, OLD_SMOKE, EXAMPLE_VM], ids=lambda p: p.name)
def test_tempo_report_on_a_copy_reproduces_summary_json(tmp_path, folder):
    from tempolab.analysis import build_report

    copy = tmp_path / folder.name
    shutil.copytree(folder, copy)
    for p in ("summary.json", "summary.md", "report.html"):
        (copy / p).unlink(missing_ok=True)
    shutil.rmtree(copy / "figures", ignore_errors=True)
    # every number of summary.json; the figures (drawn by `tempo report`, ~1 min here) are
    # checked by name and status only, by the figure tests on synthetic runs
    got = build_report(copy, write=True, figures=False).summary
    want = json.loads((folder / "summary.json").read_text())
    for s in (want, got):
        for k in VOLATILE_SUMMARY_FIELDS:
            s.pop(k)
    assert set(got.pop("figures")) == set(want.pop("figures"))
    assert json.loads(json.dumps(got)) == want
    assert (copy / "summary.json").exists() and (copy / "tables" / "round_summary.csv").exists()


def test_the_vm_example_is_ten_leader_kill_trials_on_vms_in_kernel_mode():
    """What results/example-vm stands for, read from its own records (issue 13)."""
    from kclockkit import check_kernel_run

    manifest = json.loads((EXAMPLE_VM / "manifest.json").read_text())
    assert manifest["provider"] == "vagrant" and manifest["suite"]["clock_mode"] == "kernel"
    assert manifest["suite"]["name"] == "vm-leader-kill" and manifest["status"] == "ok"
    trials = [json.loads(x) for x in _lines(EXAMPLE_VM / "trials.jsonl")]
    assert len(trials) >= 10 and all(t["outcome"] == "ok" for t in trials)
    nodes = sorted(p.name for p in (EXAMPLE_VM / "nodes").iterdir())
    assert 3 <= len(nodes) <= 5
    # each guest's delivered rate (dmesg TSC calibration and measured from outside) is its
    # drift.toml, the daemons ran the kernel backend
    check_kernel_run(EXAMPLE_VM, nodes)
    summary = json.loads((EXAMPLE_VM / "summary.json").read_text())
    assert summary["failover"]["count"] == len(trials) == summary["failover"]["new_master_s"]["n"]
    size = sum(p.stat().st_size for p in EXAMPLE_VM.rglob("*") if p.is_file())
    assert size < 3_000_000, f"results/example-vm is {size / 1e6:.1f} MB"


def _lines(path: Path) -> list[str]:
    import gzip

    gz = path.with_name(path.name + ".gz")
    text = gzip.open(gz, "rt").read() if gz.exists() else path.read_text()
    return [x for x in text.splitlines() if x.strip()]


PROTO_EXAMPLE = REPO / "results" / "example-protocols"


def test_compare_by_protocol_on_a_copy_reproduces_the_committed_comparison(tmp_path):
    """results/example-protocols/compare-protocols/ is `tempo compare . --by-protocol`
    over that folder: rebuilt from the raw records, every number is the same (the run
    paths are the only difference: they name where it was built)."""
    from tempolab.analysis.protocompare import build_protocol_compare

    copy = tmp_path / PROTO_EXAMPLE.name
    shutil.copytree(PROTO_EXAMPLE, copy)
    shutil.rmtree(copy / "compare-protocols")
    build_protocol_compare([copy], copy / "compare-protocols")
    got = json.loads((copy / "compare-protocols" / "protocols.json").read_text())
    want = json.loads((PROTO_EXAMPLE / "compare-protocols" / "protocols.json").read_text())
    for d in (got, want):
        d.pop("runs")
        for t in d["trials"]:
            t.pop("run")
    assert got == want
    size = sum(p.stat().st_size for p in PROTO_EXAMPLE.rglob("*") if p.is_file())
    assert size < 3_000_000, f"results/example-protocols is {size / 1e6:.1f} MB"
