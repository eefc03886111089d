"""runner/services.py: the observer and the CPU sampler start, pause, follow the trial
and the node set, and stop together, configured from the suite."""

from __future__ import annotations

import socket
import time

from tempod import ntp
from tempolab.runner.faults import NodeRef
from tempolab.runner.services import Services
from tempolab.runner.suite import parse_suite


def test_services_follow_the_suite_and_move_together():
    # one fake node answering NTP on loopback as LEADER
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("127.0.0.2", 0))
    srv.settimeout(0.05)
    port = srv.getsockname()[1]
    suite = parse_suite({"nodes": 1, "daemon": {"ntp_port": port}, "observer_hz": 20,
                         "observer_timeout_s": 0.2, "cpu_interval_s": 0.2}, "s.yaml")
    records: dict[str, list[dict]] = {"observer": [], "cpu": []}
    ran: list[tuple[str, str]] = []

    def run_cmd(node, cmd):
        ran.append((node, cmd))
        return ""

    sv = Services.for_suite(suite, [NodeRef("n1", "127.0.0.2")], run_cmd, lambda s: records[s].append)
    assert sv.observer.port == port and sv.cpu.interval_s == 0.2 and sv.cpu.nodes == ["n1"]
    sv.pause(True)
    sv.start()
    try:
        sv.set_trial(3)
        assert sv.observer.trial == 3 and sv.cpu.trial == 3
        time.sleep(0.5)
        assert records["observer"] == [] and ran == []   # paused: nothing sent, nothing run
        sv.pause(False)
        deadline = time.time() + 5
        while time.time() < deadline and not sv.latest():
            try:
                data, src = srv.recvfrom(512)
            except socket.timeout:
                continue
            stratum, leap, refid = ntp.encode_state("LEADER", None)
            now = time.time()
            srv.sendto(ntp.server_reply(data, now, now, stratum=stratum, leap=leap, refid=refid,
                                        root_dispersion_s=0.0), src)
        assert sv.latest()["n1"]["state"] == "LEADER"
        assert sv.samples(since=0)[0]["trial"] == 3
        deadline = time.time() + 10
        while time.time() < deadline and not ran:   # the sampler runs again once resumed
            time.sleep(0.05)
        assert ran and ran[0][0] == "n1"
        sv.set_nodes([NodeRef("n1", "127.0.0.2"), NodeRef("n2", "127.0.0.3")])
        assert sv.cpu.nodes == ["n1", "n2"]
    finally:
        sv.stop()
        srv.close()
    assert records["observer"] and all(r["node"] == "n1" for r in records["observer"])
