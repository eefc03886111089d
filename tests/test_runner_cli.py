"""``tempo run`` command line: help, clear errors, exit codes."""

from __future__ import annotations

import pytest

from tempolab.cli import main


def test_help_shows_examples(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "tempo run smoke" in out and "--resume RUN_DIR" in out and "--cleanup" in out


def test_errors_are_one_line_exit_2(capsys, tmp_path):
    assert main(["run"]) == 2
    assert "give a SUITE, --resume RUN_DIR or --cleanup" in capsys.readouterr().err
    assert main(["run", "no-such-suite"]) == 2
    assert "no such suite 'no-such-suite'" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("faults:\n  - kind: kill\n    at_s: soon\n")
    assert main(["run", str(bad)]) == 2
    assert "bad.yaml: faults[0].at_s: expected a number, got 'soon'" in capsys.readouterr().err
    assert main(["run", "--resume", str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err
    assert main(["run", "smoke", "--inventory", str(tmp_path / "none.yml")]) == 2
    assert "inventory not found" in capsys.readouterr().err


def test_netem_suite_is_refused_before_anything_starts(capsys, tmp_path, monkeypatch):
    from tempolab.runner import deploy, driver

    monkeypatch.setattr(deploy, "netem_available_here",
                        lambda: (False, "Error: Specified qdisc kind is unknown."))
    touched = []
    monkeypatch.setattr(driver.Runner, "_ensure_hosts", lambda self, p: touched.append(p))
    suite = tmp_path / "jitter.yaml"
    suite.write_text("faults:\n  - {kind: jitter, at_s: 1, duration_s: 5, delay_ms: 20, jitter_ms: 5}\n")
    assert main(["run", str(suite), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "needs netem (delay/jitter) but this kernel has none" in err
    assert "qdisc kind is unknown" in err
    assert touched == [] and not (tmp_path / "out").exists()
