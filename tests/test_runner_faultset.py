"""FaultSet: every installed fault is reverted on exit, on exceptions, on Ctrl-C and
when a host is unreachable (recorded as a leftover), with start/end records."""

from __future__ import annotations

import random

import pytest

from tempolab.errors import HostUnreachable
from tempolab.runner.driver import FaultSet
from tempolab.runner.faults import NodeRef, resolve
from tempolab.runner.sshpool import Result
from tempolab.runner.suite import FaultSpec

NODES = [NodeRef("n1", "10.78.0.11"), NodeRef("n2", "10.78.0.12"), NodeRef("n3", "10.78.0.13")]


class FakePool:
    def __init__(self, down: set[str] = frozenset()):
        self.calls: list[tuple[str, str]] = []
        self.down = set(down)

    def run_many(self, cmds, timeout_s=30.0, check=False):
        bad = [n for n in cmds if n in self.down]
        for n, c in cmds.items():
            if n not in self.down:
                self.calls.append((n, c))
        if bad:
            raise HostUnreachable(bad, "fake")
        return {n: Result(n, 0, "", "") for n in cmds}


def partition():
    return resolve(FaultSpec("partition", at_s=1, duration_s=5, side_a=1), NODES, "n1", random.Random(1))


def kill():
    return resolve(FaultSpec("kill", at_s=1, duration_s=5), NODES, "n1", random.Random(1))


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()])
def test_exit_reverts_everything_active(exc):
    pool, recs = FakePool(), []
    p, k = partition(), kill()
    with pytest.raises(type(exc)):
        with FaultSet(pool, recs.append, trial=4, clock=lambda: 100.0) as fs:
            fs.apply(p)
            fs.apply(k)
            raise exc
    reverts = [c for _n, c in pool.calls if "nft delete chain" in c or "start" in c]
    assert len([c for c in reverts if "nft delete chain" in c]) == 3
    assert any("tempod-service" in c for c in reverts)
    phases = [(r["kind"], r["phase"]) for r in recs]
    # reverted in reverse order of installation
    assert phases == [("partition", "start"), ("kill", "start"), ("kill", "end"), ("partition", "end")]
    assert all(r["trial"] == 4 and "fault_id" in r for r in recs)
    assert recs[0]["sides"] == {"a": ["n1"], "b": ["n2", "n3"]}


def test_explicit_revert_is_not_repeated_on_exit():
    pool, recs = FakePool(), []
    with FaultSet(pool, recs.append, trial=1) as fs:
        fs.apply(kill())
        fs.revert(0)
        assert fs.revert(0) is None
    assert [r["phase"] for r in recs] == ["start", "end"]


def test_unreachable_host_during_revert_is_a_recorded_leftover():
    pool, recs = FakePool(), []
    with FaultSet(pool, recs.append, trial=1) as fs:
        fs.apply(partition())
        pool.down.add("n2")
    assert fs.leftovers and fs.leftovers[0]["hosts"] == ["n2"]
    assert "unreachable: n2" in recs[-1]["error"]


def test_failed_apply_is_recorded_and_still_reverted():
    pool, recs = FakePool(down={"n1"}), []
    with FaultSet(pool, recs.append, trial=1) as fs:
        r = fs.apply(kill())
        assert "unreachable: n1" in r["error"]
        pool.down.clear()
    assert recs[-1]["phase"] == "end" and "error" not in recs[-1]


def test_stamped_commands_keep_exit_code_heredocs_and_report_node_time():
    import subprocess
    import time

    from tempolab.runner.driver import effect_time, stamped

    cmds = stamped({"a": "cat <<'EOF'\nhello\nEOF", "b": "false"})
    t0 = time.time()
    res = {}
    for n, c in cmds.items():
        p = subprocess.run(["sh", "-c", c], capture_output=True, text=True)
        res[n] = Result(n, p.returncode, p.stdout, p.stderr)
    t1 = time.time()
    assert res["a"].rc == 0 and res["a"].stdout.startswith("hello\n")
    assert res["b"].rc == 1
    t_ref, t_node = effect_time(res, t0, t1)
    assert set(t_node) == {"a", "b"} and t0 <= t_ref <= t1 and t_ref == max(t_node.values())
    # a node clock outside the call window is not trusted: the midpoint is used
    skewed = {"a": Result("a", 0, "__tempo_t=100.0\n", "")}
    assert effect_time(skewed, 1000.0, 1002.0)[0] == 1001.0
