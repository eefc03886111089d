"""Trial facts from synthetic observer timelines (health, failover, pause, partition, skew)."""

from __future__ import annotations

from tempolab.runner import facts

NODES = ["n1", "n2", "n3"]


def timeline(spec: list[tuple[float, dict[str, str | None]]], dt: float = 0.1,
             until: float = 30.0) -> list[dict]:
    """spec: [(from_t, {node: "L" | "F:<master>" | state | None})], sampled every dt."""
    out, sweep, t = [], 0, 0.0
    while t < until:
        cur = [s for s in spec if s[0] <= t][-1][1]
        sweep += 1
        for i, (n, st) in enumerate(cur.items()):
            rec = {"t_ref": t + i * 1e-4, "sweep": sweep, "node": n, "offset_s": 0.001 * i,
                   "bound_s": 2e-5, "rtt_s": 4e-5}
            if st is None:
                rec.update(state="unreachable", master=None, offset_s=None)
            elif st == "L":
                rec.update(state="LEADER", master=n)
            elif st.startswith("F:"):
                rec.update(state="FOLLOWER", master=st[2:])
            else:
                rec.update(state=st, master=None)
            out.append(rec)
        t = round(t + dt, 6)
    return out


def test_health():
    ok = {"n1": {"state": "LEADER", "master": "n1"}, "n2": {"state": "FOLLOWER", "master": "n1"},
          "n3": {"state": "FOLLOWER", "master": "n1"}}
    assert facts.health(ok, NODES) == (True, "n1", "one master, all following")
    two = dict(ok, n3={"state": "LEADER", "master": "n3"})
    assert facts.health(two, NODES)[:2] == (False, None)
    assert "no answer from n2" in facts.health(dict(ok, n2={"state": "unreachable"}), NODES)[2]
    stray = dict(ok, n3={"state": "FOLLOWER", "master": "n2"})
    assert "not following n1: n3=FOLLOWER" in facts.health(stray, NODES)[2]


def test_failover_from_observer_and_log():
    tl = timeline([
        (0, {"n1": "L", "n2": "F:n1", "n3": "F:n1"}),
        (10, {"n1": None, "n2": "F:n1", "n3": "F:n1"}),           # killed at 10
        (13, {"n1": None, "n2": "CANDIDATE", "n3": "F:n1"}),       # n2 notices
        (13.5, {"n1": None, "n2": "L", "n3": "ACCEPT"}),
        (14, {"n1": None, "n2": "L", "n3": "F:n2"}),
    ])
    f = facts.failover(tl, 10.0, "n1", NODES)
    assert f["outcome"] == "ok" and f["new_master"] == "n2"
    assert 13.0 <= f["detect_t"] < 13.1 and f["detect_source"] == "observer"
    assert 13.5 <= f["new_master_t"] < 13.6
    assert 14.0 <= f["first_round_t"] < 14.1 and f["first_round_source"] == "observer"
    assert abs(f["new_master_s"] - (f["new_master_t"] - 10.0)) < 1e-9
    events = {"n3": [{"ev": "state", "from": "FOLLOWER", "to": "NOLEADER", "t_ref": 12.5}],
              "n2": [{"ev": "round", "master": "n2", "t_ref": 9.0},     # before the kill: ignored
                     {"ev": "round", "master": "n2", "t_ref": 13.8}]}
    f = facts.failover(tl, 10.0, "n1", NODES, events)
    assert f["detect_t"] == 12.5 and f["detect_source"] == "log"
    assert f["first_round_t"] == 13.8 and f["first_round_source"] == "log"


def test_failover_never_settles_is_failed_with_reason():
    tl = timeline([(0, {"n1": "L", "n2": "F:n1", "n3": "F:n1"}),
                   (10, {"n1": None, "n2": "CANDIDATE", "n3": "CANDIDATE"})])
    f = facts.failover(tl, 10.0, "n1", NODES)
    assert f["outcome"] == "failed" and "never settled" in f["reason"]


def test_pause_old_master_steps_down():
    tl = timeline([
        (0, {"n1": "L", "n2": "F:n1", "n3": "F:n1"}),
        (5, {"n1": None, "n2": "F:n1", "n3": "F:n1"}),            # SIGSTOP at 5
        (9, {"n1": None, "n2": "L", "n3": "F:n2"}),
        (17, {"n1": "L", "n2": "L", "n3": "F:n2"}),               # SIGCONT at 17: stale leader
        (17.5, {"n1": "F:n2", "n2": "L", "n3": "F:n2"}),          # steps down
    ])
    p = facts.pause(tl, 5.0, 17.0, "n1", NODES, settle_s=4.0)
    assert p["outcome"] == "ok", p
    assert p["new_master"] == "n2" and p["old_master_seen_leader_after_cont"]
    assert 17.5 <= p["old_master_stepped_down_t"] < 17.6
    assert p["two_masters_after_settle"] is False and p["final_master"] == "n2"


def test_pause_two_masters_after_settle_fails():
    tl = timeline([
        (0, {"n1": "L", "n2": "F:n1", "n3": "F:n1"}),
        (5, {"n1": None, "n2": "F:n1", "n3": "F:n1"}),
        (9, {"n1": None, "n2": "L", "n3": "F:n2"}),
        (17, {"n1": "L", "n2": "L", "n3": "F:n2"}),               # never resolves
    ])
    p = facts.pause(tl, 5.0, 17.0, "n1", NODES, settle_s=4.0)
    assert p["outcome"] == "failed" and p["two_masters_after_settle"] is True
    assert p["two_masters_samples"][0]["masters"] == ["n1", "n2"]


def test_partition_each_side_then_one():
    nodes = {"n1": "L", "n2": "F:n1", "n3": "F:n1", "n4": "F:n1"}
    tl = timeline([
        (0, nodes),
        (5, {"n1": "L", "n2": "F:n1", "n3": "CANDIDATE", "n4": "F:n1"}),
        (8, {"n1": "L", "n2": "F:n1", "n3": "L", "n4": "F:n3"}),
        (20, {"n1": "L", "n2": "F:n1", "n3": "CONFLICT", "n4": "F:n3"}),   # heal at 20
        (21, {"n1": "L", "n2": "F:n1", "n3": "F:n1", "n4": "F:n1"}),
    ])
    p = facts.partition(tl, 5.0, 20.0, (["n1", "n2"], ["n3", "n4"]), settle_s=3.0)
    assert p["outcome"] == "ok", p
    assert (p["master_a"], p["master_b"]) == ("n1", "n3")
    assert p["resolved_master"] == "n1" and 1.0 <= p["resolve_s"] < 1.1


def test_skew_counts_synchronized_nodes_per_sweep():
    tl = timeline([(0, {"n1": "L", "n2": "F:n1", "n3": "CANDIDATE"})], until=1.0)
    st = facts.skew_stats(tl)
    # offsets 0, 1 ms, 2 ms by position; n3 (CANDIDATE) is left out
    assert abs(st["max_skew_s"] - 0.001) < 1e-12 and st["n_sweeps"] == 10
    assert facts.skew_stats(tl, exclude=["n2"])["max_skew_s"] is None


def test_map_events_through_a_profile():
    from tempod.profile import DriftProfile

    prof = DriftProfile(epoch_unix_s=1000.0, offset_s=2.0, rate_ppm=100000.0)  # +10 %
    ev = facts.map_events([{"ev": "round", "hw": prof.hw_at(1500.0)}, {"ev": "x"}], prof.true_at)
    assert len(ev) == 1 and abs(ev[0]["t_ref"] - 1500.0) < 1e-9


def test_steady():
    tl = timeline([(0, {"n1": "L", "n2": "F:n1", "n3": "F:n1"})], until=5)
    s = facts.steady(tl, 0.0, NODES, settle_s=1.0)
    assert s["outcome"] == "ok" and s["master"] == "n1" and s["masters_seen"] == ["n1"]


def test_failover_new_master_by_the_shared_definition_from_logs():
    # The log's state change is the definition (tempod.facts.checker); the observer saw it a
    # sweep later and stays as obs_new_master_t.  A CONFLICT -> LEADER is not a new master.
    tl = timeline([
        (0, {"n1": "L", "n2": "F:n1", "n3": "F:n1"}),
        (10, {"n1": None, "n2": "F:n1", "n3": "F:n1"}),
        (11.5, {"n1": None, "n2": "L", "n3": "F:n2"}),
    ])
    events = {"n3": [{"ev": "state", "from": "CONFLICT", "to": "LEADER", "t_ref": 10.2}],
              "n2": [{"ev": "state", "from": "CANDIDATE", "to": "LEADER", "t_ref": 11.42},
                     {"ev": "round", "master": "n2", "t_ref": 11.9}]}
    f = facts.failover(tl, 10.0, "n1", NODES, events)
    assert f["new_master"] == "n2" and f["new_master_t"] == 11.42 and f["new_master_source"] == "log"
    assert 11.5 <= f["obs_new_master_t"] < 11.6 and f["settled_master"] == "n2"
    assert f["first_round_t"] == 11.9 and abs(f["first_round_s"] - 1.9) < 1e-9


def test_kernel_backend_events_are_placed_through_the_observer_not_the_profile():
    """Kernel clock mode: a log's hw is the guest clock the daemon disciplines; once its
    corrections moved it (+0.25 s here), only the observer's offsets place it."""
    from tempolab.runner import facts as rf

    kernel = [{"ev": "start", "backend": "kernel", "hw": 100.25}, {"ev": "state", "hw": 110.25}]
    assert rf.disciplined_kernel_clock(kernel)
    assert not rf.disciplined_kernel_clock([{"ev": "start", "backend": "faketime", "hw": 1.0}])
    samples = [{"node": "n1", "t_ref": t, "offset_s": 0.25} for t in (95.0, 105.0, 115.0)]
    samples.append({"node": "n2", "t_ref": 105.0, "offset_s": 9.0})
    true_at = rf.observer_true_at(samples, "n1")
    assert abs(true_at(110.25) - 110.0) < 1e-9
    # a changing offset is interpolated at the event's reference time: exact answer 105.0;
    # two fixed-point steps leave slope^2 x 0.5 s (0.005 s at an offset slope of 0.1 s/s,
    # a million times any real clock's; at 500 ppm the residue is 1e-7 x that)
    moving = [{"node": "n1", "t_ref": 100.0, "offset_s": 0.0}, {"node": "n1", "t_ref": 110.0, "offset_s": 1.0}]
    assert abs(rf.observer_true_at(moving, "n1")(105.5) - 105.0) < 0.006
    assert rf.observer_true_at(samples, "n9") is None
    mapped = rf.map_events(kernel, true_at)
    assert [round(e["t_ref"], 6) for e in mapped] == [100.0, 110.0]
