"""Deployment on the local lab, end to end (root; a few minutes).

``tempo lab up --nodes 3`` -> ``ansible-playbook playbooks/deploy.yml`` with long
election timeouts, so the daemons run but no round has corrected any clock yet: each
node's clock, read from the host with ``ntplib`` (the daemon's NTP responder), must
then be its own drift profile (hw - true = offset_s + rate * (t - epoch)).  A second
deploy with normal timers restarts them; exactly one master is elected and every node
reports synchronized through ``tempoctl status --json`` run over SSH on the node.  A
third deploy changes nothing (PLAY RECAP changed=0), collect.yml brings back every
node's log, teardown.yml empties the nodes and ``tempo lab down`` leaves nothing.

The wheel is built from a snapshot of the sources taken at the start, so engineers
editing the tree meanwhile cannot make the idempotence check flaky.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import ntplib
import pytest

from tempolab.lab import Lab

from tempolab.testing import labkit
from test_lab_system import leftovers

pytestmark = pytest.mark.lab

NAME, SUBNET = "tlabd", "10.79.2.0/24"
REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
NODES = ("n1", "n2", "n3")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("deploy")
    src = tmp / "src"
    src.mkdir()
    for rel in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / rel, src / rel)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    shutil.copytree(REPO / "daemon", src / "daemon", ignore=ignore)
    shutil.copytree(REPO / "experiments" / "tempolab", src / "experiments" / "tempolab", ignore=ignore)
    Lab(NAME, SUBNET).down()
    lab = Lab(NAME, SUBNET)
    lab.up(3)
    base_vars = {
        "tempod_source_dir": str(src),
        "tempod_wheel_cache_dir": str(tmp / "wheels"),
        "tempod_auth_key_file": str(tmp / "secrets" / "tempo.key"),
        "tempod_drift_seed": 5,
        "tempod_drift_offset_range_s": [-5.0, 5.0],
        "tempod_drift_rate_range_ppm": [-200.0, 200.0],
        "tempod_round_interval_s": 2.0,
    }
    yield {"lab": lab, "tmp": tmp, "vars": base_vars}
    Lab(NAME).down()
    assert leftovers(NAME) == []


def playbook(env, name: str, *args: str, **extra) -> tuple[str, dict[str, dict[str, int]]]:
    varfile = env["tmp"] / f"{name}-{time.monotonic_ns()}.json"
    varfile.write_text(json.dumps(env["vars"] | extra))
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(env["lab"].inventory_path), str(REPO / "playbooks" / f"{name}.yml"),
         "-e", f"@{varfile}", *args],
        cwd=REPO, capture_output=True, text=True,
        env=dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0"),
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    return proc.stdout, recap(proc.stdout)


def recap(out: str) -> dict[str, dict[str, int]]:
    text = out[out.rindex("PLAY RECAP"):]
    rows = {}
    for m in re.finditer(r"^(\S+)\s+:\s+(.*)$", text, re.M):
        rows[m.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
    return rows


def ssh(env, node: str, command: str) -> str:
    return labkit.ssh(env["lab"], node, command)


def daemon_pid(env, node: str) -> int | None:
    return {s.name: s for s in env["lab"].status()}[node].daemon_pid


def profile_of(env, node: str) -> dict:
    return tomllib.loads((Path(f"/var/lib/tempo-lab/{NAME}/nodes/{node}/etc/drift.toml")).read_text())


def test_first_deploy_runs_each_node_on_its_own_drift_profile(env):
    # election timeouts far beyond the test: daemons start, nobody is master, no
    # correction is applied, so the corrected clock is still the hardware clock
    _, rows = playbook(env, "deploy", tempod_election_timeout_min_s=300.0, tempod_election_timeout_max_s=301.0)
    assert set(rows) == set(NODES) and all(r["failed"] == 0 for r in rows.values())
    client = ntplib.NTPClient()
    seen = {}
    for node in NODES:
        prof = profile_of(env, node)
        best = min((client.request(env["lab"].state.node(node).address, version=4, timeout=2) for _ in range(3)),
                   key=lambda r: r.delay)
        t = time.time()
        expected = prof["offset_s"] + prof["rate_ppm"] * 1e-6 * (t - prof["epoch_unix_s"])
        # error budget: half the round trip (tens of us here) + rate * launch latency (< 1 ms)
        assert abs(best.offset - expected) < 0.005, (node, best.offset, expected, prof)
        seen[node] = best.offset
    assert len({round(v, 2) for v in seen.values()}) == 3, seen  # three different clocks


def test_second_deploy_elects_one_master_and_synchronizes(env):
    _, rows = playbook(env, "deploy")  # default election timeouts: config changes -> restart
    assert all(r["changed"] > 0 for r in rows.values())
    deadline = time.monotonic() + 60
    while True:
        status = {n: json.loads(ssh(env, n, "/opt/tempo/venv/bin/tempoctl status --json")) for n in NODES}
        leaders = [n for n, s in status.items() if s["state"] == "LEADER"]
        if len(leaders) == 1 and all(s["synchronized"] and s["master"] == leaders[0] for s in status.values()):
            break
        assert time.monotonic() < deadline, f"no single synchronized master after 60 s: {status}"
        time.sleep(1)
    for n, s in status.items():
        assert s["name"] == n


def test_third_deploy_changes_nothing(env):
    _, rows = playbook(env, "deploy")
    assert {n: r["changed"] for n, r in rows.items()} == {n: 0 for n in NODES}


def test_limited_deploy_keeps_every_peer_and_repairs_local_edits(env):
    # --limit: the other hosts are not in the run, yet n2's config must still list them
    out, rows = playbook(env, "deploy", "--limit", "n2", "--check", "--diff")
    assert set(rows) == {"n2"} and rows["n2"]["changed"] == 0, out[-4000:]
    etc = Path(f"/var/lib/tempo-lab/{NAME}/nodes/n2/etc")
    ssh(env, "n2", "echo '# local edit' >> /etc/tempo/tempod.toml && chmod 0644 /etc/tempo/tempo.key")
    pid_before = daemon_pid(env, "n2")
    out, rows = playbook(env, "deploy", "--limit", "n2", "--diff")
    assert rows["n2"]["changed"] > 0
    assert "-# local edit" in out  # the diff names what was undone
    assert "# local edit" not in (etc / "tempod.toml").read_text()
    assert (etc / "tempo.key").stat().st_mode & 0o777 == 0o600
    assert (etc / "tempo.key").read_text().strip() not in out  # the key never reaches the output
    assert daemon_pid(env, "n2") not in (None, pid_before)  # restarted with the repaired files
    _, rows = playbook(env, "deploy")
    assert {n: r["changed"] for n, r in rows.items()} == {n: 0 for n in NODES}


def test_collect_brings_back_every_log(env):
    dest = env["tmp"] / "collected"
    playbook(env, "collect", collect_dir=str(dest))
    for node in NODES:
        events = (dest / node / "events.jsonl").read_text().splitlines()
        assert events and json.loads(events[0])["node"] == node


def test_stop_start_and_teardown(env):
    playbook(env, "stop")
    assert env["lab"].status()[0].daemon_pid is None
    playbook(env, "start")
    assert all(s.daemon_pid for s in env["lab"].status())
    playbook(env, "teardown")
    for node in NODES:
        assert ssh(env, node, "ls -A /opt/tempo /etc/tempo /var/log/tempo /run/tempo | grep -v : | grep . || true") == ""
    assert all(s.daemon_pid is None for s in env["lab"].status())
