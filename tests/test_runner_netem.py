"""netem faults (delay, jitter, asymmetric delay, netem loss): exact command strings,
idempotent reverts, only peer traffic shaped, suite schema, and the refusals.

This host's kernel has no sch_netem, so the commands are run for real only inside VM
guests (benchmarks/bench_kclock_vm.py and the asymmetry suite, docs/clock.md)."""

from __future__ import annotations

import random

import pytest

from tempolab.errors import ConfigError
from tempolab.runner import faults
from tempolab.runner.faults import NodeRef, resolve
from tempolab.runner.suite import FaultSpec, load_suite, parse_suite

NODES = [NodeRef(f"n{i}", f"10.79.0.{10 + i}") for i in range(1, 4)]
DEV = "dev=$(ip -o route get {} | sed -n 's/.* dev \\([^ ]*\\).*/\\1/p'); "
PRIO = ('tc qdisc del dev "$dev" root 2>/dev/null; tc qdisc add dev "$dev" root handle 1: prio bands 4 '
        'priomap 1 2 2 2 1 2 0 0 1 1 1 1 1 1 1 1')


def filt(ip: str) -> str:
    return f' && tc filter add dev "$dev" parent 1: protocol ip prio 1 u32 match ip dst {ip}/32 flowid 1:4'


def rng() -> random.Random:
    return random.Random(5)


def test_netem_spec() -> None:
    assert faults.netem_spec(delay_ms=20) == "delay 20ms"
    assert faults.netem_spec(delay_ms=20, jitter_ms=5) == "delay 20ms 5ms distribution normal"
    assert faults.netem_spec(loss_percent=12.5) == "loss 12.5%"
    with pytest.raises(ValueError):
        faults.netem_spec()


def test_delay_shapes_only_traffic_to_the_peers() -> None:
    f = resolve(FaultSpec("delay", at_s=0, duration_s=5, targets=("n1",), delay_ms=20), NODES, "n1", rng())
    assert f.apply_cmds == {"n1": (
        DEV.format("10.79.0.12")
        + '[ -n "$dev" ] || { echo "tempo: no route to 10.79.0.12" >&2; exit 1; }; '
        + PRIO + ' && tc qdisc add dev "$dev" parent 1:4 handle 40: netem delay 20ms'
        + filt("10.79.0.12") + filt("10.79.0.13"))}
    assert f.revert_cmds == {"n1": DEV.format("10.79.0.12") + '[ -z "$dev" ] || tc qdisc del dev "$dev" root 2>/dev/null; true'}
    assert "10.79.0.11" not in f.apply_cmds["n1"].split("route get")[1]  # never its own address
    assert f.extra["delay_ms"] == 20


def test_apply_rebuilds_the_tree_so_a_second_apply_is_harmless() -> None:
    cmd = faults.netem_apply_cmd(["10.0.0.2"], "delay 1ms")
    # the old root goes first (errors ignored), then the whole tree is added again
    assert cmd.index('tc qdisc del dev "$dev" root 2>/dev/null;') < cmd.index("tc qdisc add")
    with pytest.raises(ValueError):
        faults.netem_apply_cmd([], "delay 1ms")


def test_netem_loss() -> None:
    f = resolve(FaultSpec("netem_loss", at_s=1, duration_s=5, targets="all", percent=30), NODES, "n1", rng())
    assert set(f.apply_cmds) == {"n1", "n2", "n3"}
    assert all("netem loss 30%" in c for c in f.apply_cmds.values())
    assert filt("10.79.0.11") in f.apply_cmds["n2"] and filt("10.79.0.12") not in f.apply_cmds["n2"]
    assert f.detail == "netem loss 30% on egress to peers"


def test_asymmetric_delay_each_way() -> None:
    f = resolve(FaultSpec("asym_delay", at_s=2, duration_s=20, targets="master", delay_ms=8,
                          reverse_delay_ms=2), NODES, "n2", rng())
    assert f.targets == ["n2"]
    # the master's packets to both followers wait 8 ms ...
    assert "netem delay 8ms" in f.apply_cmds["n2"]
    assert filt("10.79.0.11") in f.apply_cmds["n2"] and filt("10.79.0.13") in f.apply_cmds["n2"]
    # ... and each follower's packets to the master only wait 2 ms
    for n, other in (("n1", "10.79.0.13"), ("n3", "10.79.0.11")):
        assert "netem delay 2ms" in f.apply_cmds[n]
        assert filt("10.79.0.12") in f.apply_cmds[n] and filt(other) not in f.apply_cmds[n]
    assert set(f.revert_cmds) == {"n1", "n2", "n3"}
    assert f.extra["asymmetry_ms"] == 6
    assert "n2 -> others 8 ms" in f.detail


def test_asymmetric_delay_zero_one_way_installs_nothing_there_but_reverts_everywhere() -> None:
    f = resolve(FaultSpec("asym_delay", at_s=2, duration_s=20, targets=("n1",), delay_ms=0,
                          reverse_delay_ms=4), NODES, "n1", rng())
    assert set(f.apply_cmds) == {"n2", "n3"} and set(f.revert_cmds) == {"n1", "n2", "n3"}
    with pytest.raises(ConfigError, match="outside its targets"):
        resolve(FaultSpec("asym_delay", at_s=2, duration_s=20, targets="all", delay_ms=1,
                          reverse_delay_ms=4), NODES, "n1", rng())


def test_guarded_netem_fault_arms_a_deadman_on_every_node_it_touches() -> None:
    f = resolve(FaultSpec("asym_delay", at_s=2, duration_s=20, targets=("n1",), delay_ms=0,
                          reverse_delay_ms=4), NODES, "n1", rng())
    apply_, revert = faults.guarded(f, "t0-f0", 25.0)
    assert set(apply_) == {"n1", "n2", "n3"}  # n1 gets only the watchdog (its revert)
    assert "setsid sh /run/tempo/deadman/t0-f0.sh" in apply_["n1"] and "netem" not in apply_["n1"].split("setsid")[1]
    assert all(revert[n].startswith("__dm=$(cat /run/tempo/deadman/t0-f0.pid") for n in revert)


def test_cleanup_removes_a_netem_root_anywhere() -> None:
    c = faults.cleanup_cmd()
    assert faults.netem_cleanup_cmd() in c
    assert 'grep -q netem' in c and 'tc qdisc del dev "$__d" root' in c


SUITE = {"name": "t", "nodes": 3, "trial_duration_s": 60}


def test_suite_schema_for_the_netem_kinds() -> None:
    s = parse_suite({**SUITE, "faults": [{"kind": "asym_delay", "at_s": 1, "duration_s": 30,
                                          "delay_ms": 6, "reverse_delay_ms": 0}]}, "t.yaml")
    f = s.faults[0]
    assert f.targets == "master" and f.reverse_delay_ms == 0 and s.requires == ("netem",)
    s = parse_suite({**SUITE, "faults": [{"kind": "netem_loss", "at_s": 1, "duration_s": 5, "percent": 10}]}, "t.yaml")
    assert s.faults[0].targets == "all" and s.requires == ("netem",)
    bad = [
        ({"kind": "asym_delay", "at_s": 1, "duration_s": 5, "delay_ms": 1}, "reverse_delay_ms: missing"),
        ({"kind": "delay", "at_s": 1, "duration_s": 5, "delay_ms": 1, "reverse_delay_ms": 2}, "only for kind asym_delay"),
        ({"kind": "netem_loss", "at_s": 1, "duration_s": 5}, "percent: missing"),
        ({"kind": "asym_delay", "at_s": 1, "delay_ms": 1, "reverse_delay_ms": 1}, "needs a duration"),
        ({"kind": "asym_delay", "at_s": 1, "duration_s": 5, "delay_ms": -1, "reverse_delay_ms": 1}, ">= 0"),
    ]
    for fault, msg in bad:
        with pytest.raises(ConfigError, match=msg):
            parse_suite({**SUITE, "faults": [fault]}, "t.yaml")


def test_clock_mode_key() -> None:
    assert parse_suite(dict(SUITE), "t.yaml").clock_mode == "faketime"
    assert parse_suite({**SUITE, "clock_mode": "kernel"}, "t.yaml").clock_mode == "kernel"
    with pytest.raises(ConfigError, match="clock_mode: expected one of faketime, kernel"):
        parse_suite({**SUITE, "clock_mode": "ntp"}, "t.yaml")


def test_the_asymmetry_suite_loads_and_needs_netem_and_vms() -> None:
    s = load_suite("asymmetry")
    assert "netem" in s.requires and s.clock_mode == "kernel"
    asym = [f.delay_ms - f.reverse_delay_ms for f in s.faults if f.kind == "asym_delay"]
    assert len(set(asym)) >= 3 and min(asym) < 0 < max(asym)


def test_the_lab_refuses_kernel_mode_and_netem_suites_before_anything_starts(capsys, tmp_path, monkeypatch):
    """On this host: `tempo run smoke --clock-mode kernel` and the asymmetry suite on the
    lab stop with the reason, creating nothing (no lab, no run folder)."""
    from tempolab.cli import main
    from tempolab.runner import driver

    touched = []
    monkeypatch.setattr(driver.Runner, "_ensure_hosts", lambda self, p: touched.append(p))
    out = tmp_path / "out"
    assert main(["run", "smoke", "--clock-mode", "kernel", "--provider", "lab", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "clock_mode kernel refused on provider lab" in err and "never be adjusted" in err
    assert main(["run", "asymmetry", "--provider", "lab", "--clock-mode", "faketime", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "needs netem" in err and "this kernel has none" in err  # the real check: no sch_netem here
    inv = tmp_path / "hosts.yml"
    inv.write_text("all:\n  hosts:\n    n1: {ansible_host: 10.79.0.11}\n")
    assert main(["run", "smoke", "--clock-mode", "kernel", "--provider", "inventory",
                 "--inventory", str(inv), "--out", str(out)]) == 2
    assert "clock_mode kernel needs VMs" in capsys.readouterr().err
    assert touched == [] and not out.exists()
