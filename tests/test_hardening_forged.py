"""Forged and replayed TSP packets into a running lab (lab ``hard``, 10.82.0.0/24).

A 3-node lab deployed with the real playbook elects one master. An attacker inside a
follower's network namespace, holding no deployed key, sends QUIT to the master and
ELECTION, ADJTIME (+50 s) and SETTIME (+1000 s) to every follower, each signed with a
fresh wrong secret, with a key id nobody has, and with no trailer at all. Then a sniffer
in the master's namespace captures a few rounds of authentic traffic, and the attacker
replays every captured datagram to its original destination.

Asserted after each attack: the master is the same, no node logged a state change or an
election step, every node's corrected clock (read with NTP from the host) moved by no
more than normal drift, and each daemon's ``bad_auth`` / ``replayed`` counter rose by
exactly the number of datagrams it was sent.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from tempod import auth, wire
from tempod.wire import Message, MsgType

from tempolab.testing.labkit import deployed_lab, events, node_dir, ntp_offset, statuses, wait_one_master

pytestmark = pytest.mark.lab

LAB, SUBNET = "hard", "10.82.0.0/24"
HERE = Path(__file__).resolve().parent
NS = 1_000_000_000
# Normal movement of a corrected clock over the attack (< 30 s): the master's drift
# (<= 200 ppm -> 6 ms) plus the followers' corrections towards it (< the 0.5 s initial
# offset range only right after start; here synchronized, so milliseconds). The forged
# corrections are 50 s and 1000 s, four orders of magnitude beyond.
CLOCK_TOLERANCE_S = 0.05
STATE_EVENTS = {"state", "election", "conflict", "resolve", "quit"}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with deployed_lab(LAB, SUBNET, tmp_path_factory.mktemp("hard")) as lab:
        yield lab


def in_netns(lab, node: str, args: list[str], stdin: str = "", timeout_s: float = 60) -> str:
    netns = lab.state.node(node).netns
    proc = subprocess.run(["ip", "netns", "exec", netns, sys.executable, str(HERE / "netns_udp.py"), *args],
                          input=stdin, capture_output=True, text=True, timeout=timeout_s)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def tsp_port(lab, node: str) -> int:
    cfg = tomllib.loads((node_dir(lab, node) / "etc" / "tempod.toml").read_text())
    return int(cfg["node"].get("tsp_port", 525))


def counters(lab) -> dict[str, dict[str, int]]:
    return {n: s["counters"] for n, s in statuses(lab).items()}


def snapshot(lab) -> dict:
    """What must not change: master, states, event-log lengths, clocks."""
    master, st = wait_one_master(lab, timeout_s=60)
    return {"master": master, "states": {n: (s["state"], s["master"]) for n, s in st.items()},
            "n_events": {n.name: len(events(lab, n.name)) for n in lab.nodes},
            "offsets": {n.name: ntp_offset(n.address) for n in lab.nodes}}


def assert_nothing_changed(lab, before: dict) -> None:
    time.sleep(3)  # longer than a round: an accepted ADJTIME/QUIT would have acted by now
    after_st = statuses(lab)
    assert {n: (s["state"], s["master"]) for n, s in after_st.items()} == before["states"]
    for n in lab.nodes:
        new = events(lab, n.name)[before["n_events"][n.name]:]
        changed = [e for e in new if e["ev"] in STATE_EVENTS]
        assert not changed, (n.name, changed)
        # corrections still come from the true master, and they are small
        for e in new:
            if e["ev"] == "adjust":
                assert e["from"] == before["master"] and abs(e["delta_s"]) < CLOCK_TOLERANCE_S, e
        moved = ntp_offset(n.address) - before["offsets"][n.name]
        assert abs(moved) < CLOCK_TOLERANCE_S, (n.name, moved)


def forged(payload: bytes, variant: str) -> bytes:
    """``payload`` with a trailer an attacker without the key can produce."""
    if variant == "none":
        return payload
    ring = auth.KeyRing({1: os.urandom(32), 9: os.urandom(32)})
    key_id = 1 if variant == "wrong_secret" else 9   # 9: a key id the group does not have
    return auth.Signer(ring, key_id, epoch=random.getrandbits(32)).sign(payload)


VARIANTS = ("wrong_secret", "unknown_key", "none")


def test_forged_packets_change_nothing_and_are_counted(lab):
    before = snapshot(lab)
    master = before["master"]
    followers = sorted(n for n in before["states"] if n != master)
    attacker = followers[-1]
    addr = {n.name: n.address for n in lab.nodes}
    port = tsp_port(lab, master)
    c0 = counters(lab)
    now_ns = time.time_ns()
    plan: list[tuple[str, Message]] = [
        (master, Message(MsgType.QUIT, 101, followers[0], target=master, data={"live": 1000})),
        (master, Message(MsgType.QUIT, 102, master, target=master, data={"live": 1000})),
    ]
    for f in followers:
        other = next(x for x in followers if x != f)
        plan += [
            (f, Message(MsgType.ELECTION, 201, other)),
            (f, Message(MsgType.ADJTIME, 202, master, time_ns=50 * NS, data={"bound_s": 1e-4})),
            (f, Message(MsgType.SETTIME, 203, master, time_ns=now_ns + 1000 * NS, data={"bound_s": 1e-4})),
        ]
    lines, expected = [], {n: 0 for n in addr}
    for to, msg in plan:
        for v in VARIANTS:
            lines.append(json.dumps({"dst": addr[to], "port": port, "hex": forged(wire.encode(msg), v).hex()}))
            expected[to] += 1
    print(f"sending {len(lines)} forged datagrams from {attacker}'s namespace, per receiver {expected}")
    assert in_netns(lab, attacker, ["send"], "\n".join(lines)).strip() == str(len(lines))
    assert_nothing_changed(lab, before)
    c1 = counters(lab)
    for n in addr:
        assert c1[n]["bad_auth"] - c0[n]["bad_auth"] == expected[n], (n, c0[n], c1[n])
        assert c1[n]["replayed"] == c0[n]["replayed"]


def test_replayed_authentic_packets_are_rejected_and_change_nothing(lab):
    before = snapshot(lab)
    master = before["master"]
    attacker = sorted(n for n in before["states"] if n != master)[-1]
    port = tsp_port(lab, master)
    # three rounds of the master's exchanges with every follower, seen from its namespace
    captured = [json.loads(l) for l in in_netns(lab, master, ["sniff", "--seconds", "5", "--port", str(port)])
                .splitlines()]
    types = {wire.decode(bytes.fromhex(c["hex"])[:-auth.TRAILER_LEN]).type for c in captured}
    assert {MsgType.PROBE, MsgType.PROBE_REPLY, MsgType.ADJTIME} <= types, types
    name_of = {n.address: n.name for n in lab.nodes}
    expected = {n.name: 0 for n in lab.nodes}
    for c in captured:
        expected[name_of[c["dst"]]] += 1
    print(f"replaying {len(captured)} captured datagrams ({sorted(t.name for t in types)}), per receiver {expected}")
    c0 = counters(lab)
    lines = [json.dumps({"dst": c["dst"], "port": c["dport"], "hex": c["hex"]}) for c in captured]
    assert in_netns(lab, attacker, ["send"], "\n".join(lines)).strip() == str(len(lines))
    assert_nothing_changed(lab, before)
    c1 = counters(lab)
    for n in expected:
        assert c1[n]["replayed"] - c0[n]["replayed"] == expected[n], (n, expected, c0[n], c1[n])
        assert c1[n]["bad_auth"] == c0[n]["bad_auth"]
