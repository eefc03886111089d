"""tempod.failover: the one definition of fault -> new master / first round."""

from __future__ import annotations

import subprocess
import sys

from tempod import failover as fo
from tempod.failover import RoundDone, StateChange


def test_new_master_is_the_first_other_node_becoming_master_after_the_fault():
    ch = [StateChange(5.0, "n2", "CANDIDATE", "LEADER"),          # before the fault
          StateChange(10.5, "n1", "CANDIDATE", "LEADER"),         # the old master itself
          StateChange(10.7, "n3", "CONFLICT", "LEADER"),          # resolving: not new
          StateChange(11.0, "n4", "CANDIDATE", "LEADER"),
          StateChange(11.2, "n5", "CANDIDATE", "LEADER")]
    rounds = [RoundDone(10.9, "n4"), RoundDone(11.6, "n5"), RoundDone(11.5, "n4")]
    f = fo.measure(ch, rounds, 10.0, "n1")
    assert (f.new_master, f.new_master_t, f.first_round_t) == ("n4", 11.0, 11.5)
    assert abs(f.to_new_master_s - 1.0) < 1e-12 and abs(f.to_first_round_s - 1.5) < 1e-12
    assert fo.measure(ch, rounds, 10.0, "n1", until=10.9).new_master is None
    none = fo.measure([], [], 3.0, "n1")
    assert none.new_master is None and none.to_new_master_s is None and none.to_first_round_s is None


def test_from_events_reads_event_log_records():
    ch, rounds = fo.from_events({"n2": [{"ev": "state", "from": "ACCEPT", "to": "LEADER", "t_ref": 2.0},
                                        {"ev": "round", "t_ref": 3.0},
                                        {"ev": "state", "to": "LEADER"},            # no time: skipped
                                        {"ev": "adjust", "t_ref": 4.0}]})
    assert ch == [StateChange(2.0, "n2", "ACCEPT", "LEADER")] and rounds == [RoundDone(3.0, "n2")]


def test_importable_without_pandas():
    code = ("import sys; sys.modules['pandas'] = None; sys.modules['numpy'] = None\n"
            "import tempod.failover, tempod.sim\nprint('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
