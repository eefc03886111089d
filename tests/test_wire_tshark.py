"""Wireshark's TSP dissector reads our header fields (tshark on a written pcap, no capture)."""

from __future__ import annotations

import shutil
import struct
import subprocess

import pytest

from tempod.wire import Message, MsgType, encode

PORT = 40525
LINKTYPE_RAW = 101  # packets start at the IPv4 header


def ipv4_udp(payload: bytes) -> bytes:
    udp = struct.pack(">HHHH", 50000, PORT, 8 + len(payload), 0) + payload
    hdr = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                      bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]))
    csum = sum(struct.unpack(">10H", hdr))
    csum = (csum & 0xFFFF) + (csum >> 16)
    csum = ~((csum & 0xFFFF) + (csum >> 16)) & 0xFFFF
    return hdr[:10] + struct.pack(">H", csum) + hdr[12:] + udp


def write_pcap(path, payloads: list[bytes]) -> None:
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, LINKTYPE_RAW))
        for i, p in enumerate(payloads):
            pkt = ipv4_udp(p)
            f.write(struct.pack("<IIII", 1_795_000_000 + i, 0, len(pkt), len(pkt)) + pkt)


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
def test_tshark_dissects_header(tmp_path):
    msgs = [
        Message(MsgType.ADJTIME, 7, "n1", time_ns=-1_500_000_123, target="n2"),
        Message(MsgType.SETTIME, 65535, "node-3", time_ns=1_795_000_000_123_456_789),
        Message(MsgType.LOOP, 300, "node-two", hops=5),
        Message(MsgType.ELECTION, 2, "cand", data={"live": 3}),
        Message(MsgType.HEARTBEAT, 41, "master-1"),   # Tempo's type 29: the header still decodes
    ]
    pcap = tmp_path / "tsp.pcap"
    write_pcap(pcap, [encode(m) for m in msgs])
    out = subprocess.run(
        ["tshark", "-r", str(pcap), "-d", f"udp.port=={PORT},tsp", "-T", "fields", "-E", "separator=|",
         "-e", "tsp.type", "-e", "tsp.version", "-e", "tsp.sequence", "-e", "tsp.sec", "-e", "tsp.usec",
         "-e", "tsp.hopcnt", "-e", "tsp.name"],
        capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    rows = [line.split("|") for line in out.stdout.strip().splitlines()]
    assert rows == [
        ["1", "1", "7", str(2**32 - 2), "499999", "", "n1"],   # sec -2 shown unsigned
        ["5", "1", "65535", "1795000000", "123456", "", "node-3"],
        ["24", "1", "300", "", "", "5", "node-two"],
        ["8", "1", "2", "", "", "", "cand"],
        ["29", "1", "41", "", "", "", "master-1"],
    ]
