"""The tempod role's own module, ``tempod_files`` (roles/tempod/library/), run the way
Ansible runs it: ``ansible localhost -m tempod_files`` with a local connection, on
folders under pytest's tmp_path.  Owner and group are the test's own user and group,
so this needs no root."""

from __future__ import annotations

import grp
import json
import os
import pwd
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
OWNER = pwd.getpwuid(os.getuid()).pw_name
GROUP = grp.getgrgid(os.getgid()).gr_name
SECRET = "5ec2e7" * 11


def run(args: dict, *flags: str) -> tuple[int, dict, str]:
    """(rc, the module's result for localhost, whole output)."""
    proc = subprocess.run(
        [str(BIN / "ansible"), "localhost", "-c", "local", "-M", str(REPO / "roles/tempod/library"),
         "-e", f"ansible_python_interpreter={sys.executable}", "-m", "tempod_files",
         "-a", json.dumps({"owner": OWNER, "group": GROUP} | args), *flags],
        capture_output=True, text=True, cwd=REPO,
        env=dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json", ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
                 ANSIBLE_NOCOLOR="1", ANSIBLE_CONFIG=str(REPO / "ansible.cfg")),
    )
    if "-vvv" in flags:  # debug lines around the JSON: only the text is wanted
        return proc.returncode, {}, proc.stdout + proc.stderr
    try:
        result = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    except (json.JSONDecodeError, KeyError, IndexError):
        pytest.fail(f"no JSON result:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.returncode, result, proc.stdout + proc.stderr


def tree(tmp: Path) -> dict:
    return {
        "directories": [{"path": str(tmp / "etc"), "mode": "0750"}, {"path": str(tmp / "log/deep")}],
        "files": [{"path": str(tmp / "etc/tempod.toml"), "content": "[node]\nname = \"n1\"\n"}],
        "secret_files": [{"path": str(tmp / "etc/tempo.key"), "content": SECRET + "\n"}],
    }


def mode(p: Path) -> int:
    return p.stat().st_mode & 0o7777


def test_creates_then_changes_nothing(tmp_path):
    rc, r, _ = run(tree(tmp_path))
    assert rc == 0 and r["changed"] is True
    assert set(r["changed_paths"]) == {str(tmp_path / p) for p in ("etc", "log/deep", "etc/tempod.toml", "etc/tempo.key")}
    assert mode(tmp_path / "etc") == 0o750 and mode(tmp_path / "log/deep") == 0o755
    assert (tmp_path / "etc/tempod.toml").read_text() == "[node]\nname = \"n1\"\n"
    assert mode(tmp_path / "etc/tempod.toml") == 0o644 and mode(tmp_path / "etc/tempo.key") == 0o600
    rc, r, _ = run(tree(tmp_path))
    assert rc == 0 and r["changed"] is False and r["changed_paths"] == []
    assert sorted(os.listdir(tmp_path / "etc")) == ["tempo.key", "tempod.toml"]  # no temporary files left


def test_repairs_content_and_mode_separately(tmp_path):
    run(tree(tmp_path))
    (tmp_path / "etc/tempod.toml").write_text("edited\n")
    os.chmod(tmp_path / "etc/tempo.key", 0o644)
    rc, r, _ = run(tree(tmp_path))
    assert rc == 0 and sorted(r["changed_paths"]) == sorted([str(tmp_path / "etc/tempod.toml"),
                                                             str(tmp_path / "etc/tempo.key")])
    assert (tmp_path / "etc/tempod.toml").read_text().startswith("[node]")
    assert mode(tmp_path / "etc/tempo.key") == 0o600


def test_check_mode_reports_and_touches_nothing(tmp_path):
    rc, r, _ = run(tree(tmp_path), "--check")
    assert rc == 0 and r["changed"] is True and len(r["changed_paths"]) == 4
    assert list(tmp_path.iterdir()) == []
    run(tree(tmp_path))
    (tmp_path / "etc/tempod.toml").write_text("edited\n")
    rc, r, _ = run(tree(tmp_path), "--check")
    assert r["changed_paths"] == [str(tmp_path / "etc/tempod.toml")]
    assert (tmp_path / "etc/tempod.toml").read_text() == "edited\n"


def test_a_new_secret_is_written_with_its_mode_from_the_start(tmp_path):
    # a key replaced while the old file was world-readable: the new one is 0600 at once
    run(tree(tmp_path))
    os.chmod(tmp_path / "etc/tempo.key", 0o644)
    spec = tree(tmp_path)
    spec["secret_files"][0]["content"] = "new" + SECRET
    rc, r, _ = run(spec)
    assert rc == 0 and str(tmp_path / "etc/tempo.key") in r["changed_paths"]
    assert mode(tmp_path / "etc/tempo.key") == 0o600
    assert (tmp_path / "etc/tempo.key").read_text() == "new" + SECRET


def test_diff_shows_files_but_never_a_secret(tmp_path):
    rc, r, out = run(tree(tmp_path), "--diff", "--check")
    assert rc == 0
    diffs = r["diff"] if isinstance(r["diff"], list) else [r["diff"]]
    assert [d["after_header"] for d in diffs] == [str(tmp_path / "etc/tempod.toml")]
    assert str(tmp_path / "etc/tempo.key") in r["changed_paths"]  # its path is not masked
    assert SECRET not in out
    rc, _, out = run(tree(tmp_path), "--diff", "-vvv")
    assert rc == 0 and (tmp_path / "etc/tempo.key").read_text() == SECRET + "\n"
    assert SECRET not in out  # not in the diff, the invocation or the verbose log


def test_reads_and_tests_existence_before_writing(tmp_path):
    (tmp_path / "old.toml").write_text("epoch_unix_s = 1.5\n")
    rc, r, _ = run({"read": [str(tmp_path / "old.toml"), str(tmp_path / "none.toml")],
                    "exists": [str(tmp_path / "old.toml"), str(tmp_path / "marker")]})
    assert rc == 0 and r["changed"] is False
    assert r["contents"] == {str(tmp_path / "old.toml"): "epoch_unix_s = 1.5\n", str(tmp_path / "none.toml"): None}
    assert r["present"] == {str(tmp_path / "old.toml"): True, str(tmp_path / "marker"): False}


@pytest.mark.parametrize("bad,needle", [
    ({"files": [{"path": "relative.toml", "content": "x"}]}, "paths must be absolute"),
    ({"files": [{"path": "/ABS/f", "content": "x", "mode": "rw-r--r--"}]}, "is not an octal mode"),
    ({"files": [{"path": "/ABS/missing/f", "content": "x"}]}, "does not exist"),
    ({"files": [{"path": "/ABS", "content": "x"}]}, "is not a regular file"),
    ({"directories": [{"path": "/ABS/plain"}]}, "is not a folder"),
    ({"owner": "no-such-user-tempo", "directories": [{"path": "/ABS/new"}]}, "no such user"),
])
def test_bad_input_fails_clearly_and_changes_nothing(tmp_path, bad, needle):
    (tmp_path / "plain").write_text("keep\n")
    bad = json.loads(json.dumps(bad).replace("/ABS", str(tmp_path)))
    before = {p: p.read_bytes() if p.is_file() else None for p in tmp_path.rglob("*")}
    rc, r, _ = run(bad)
    assert rc != 0 and r.get("failed") and needle in r["msg"], r
    assert {p: p.read_bytes() if p.is_file() else None for p in tmp_path.rglob("*")} == before
