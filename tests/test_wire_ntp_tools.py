"""Stock NTP clients read a reply built by tempod.ntp.server_reply (loopback only).

ntplib runs on an ephemeral port; sntp (Debian's, from ntpsec/ntp) only queries port
123, so that test binds 127.91.0.1:123 and skips when it cannot (not root, or taken).
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import threading
import time

import ntplib
import pytest

from tempod import ntp

OFFSET_S = 2.5  # the fake server is this far ahead of the real clock


def serve(sock: socket.socket, state: str, master: str | None, stop: threading.Event) -> None:
    sock.settimeout(0.2)
    while not stop.is_set():
        try:
            data, src = sock.recvfrom(1024)
        except socket.timeout:
            continue
        recv = time.time() + OFFSET_S
        stratum, leap, refid = ntp.encode_state(state, master)
        try:
            reply = ntp.server_reply(data, recv, time.time() + OFFSET_S, stratum=stratum, leap=leap,
                                     refid=refid, root_dispersion_s=0.001)
        except ntp.NtpError:
            continue
        sock.sendto(reply, src)


def start(addr: tuple[str, int], state: str, master: str | None):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind(addr)
    except OSError as exc:
        sock.close()
        pytest.skip(f"cannot bind {addr}: {exc}")
    stop = threading.Event()
    th = threading.Thread(target=serve, args=(sock, state, master, stop), daemon=True)
    th.start()
    return sock, stop, th


def test_ntplib_reads_offset_and_state():
    sock, stop, th = start(("127.0.0.1", 0), "FOLLOWER", "10.77.0.11")
    try:
        resp = ntplib.NTPClient().request("127.0.0.1", port=sock.getsockname()[1], version=4, timeout=5)
    finally:
        stop.set()
        th.join()
        sock.close()
    assert resp.offset == pytest.approx(OFFSET_S, abs=0.01)
    assert ntp.decode_state(resp.stratum, resp.ref_id.to_bytes(4, "big")) == ("FOLLOWER", "10.77.0.11")


@pytest.mark.skipif(shutil.which("sntp") is None, reason="sntp not installed")
def test_sntp_reads_offset():
    sock, stop, th = start(("127.91.0.1", 123), "LEADER", None)
    try:
        out = subprocess.run(["sntp", "-t", "3", "127.91.0.1"], capture_output=True, text=True, timeout=30)
    finally:
        stop.set()
        th.join()
        sock.close()
    m = re.search(r"([+-]\d+\.\d+) \+/- \S+ 127\.91\.0\.1 s1", out.stdout)
    assert m, out.stdout + out.stderr
    assert float(m.group(1)) == pytest.approx(OFFSET_S, abs=0.01)
