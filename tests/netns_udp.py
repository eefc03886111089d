"""Raw UDP tools run *inside* a lab node's network namespace (``ip netns exec NS python
netns_udp.py ...``): the hostile sender and the sniffer of the hardening tests.

``send``: read JSON lines ``{"dst": "10.82.0.11", "port": 525, "hex": "..."}`` on stdin
and send each payload as one datagram from an ephemeral port; prints how many were sent.

``sniff --seconds S --port P``: capture every IPv4/UDP datagram with source *and*
destination port P on the namespace's interfaces (AF_PACKET, both directions, loopback
excluded) for S seconds; print one JSON line per datagram with src, dst, sport,
dport and the UDP payload in hex.

Stdlib only; knows nothing about TSP (the test decodes what it captured).
"""

from __future__ import annotations

import argparse
import json
import select
import socket
import sys
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def send(lines: list[str]) -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    n = 0
    for line in lines:
        if not line.strip():
            continue
        item = json.loads(line)
        sock.sendto(bytes.fromhex(item["hex"]), (item["dst"], int(item["port"])))
        n += 1
        time.sleep(0.002)  # keep the datagrams in order and the receivers' queues short
    return n


def parse_ipv4_udp(frame: bytes) -> dict | None:
    """The datagram of an L3 frame (AF_PACKET SOCK_DGRAM gives no link header)."""
    if len(frame) < 28 or frame[0] >> 4 != 4 or frame[9] != 17:
        return None
    ihl = (frame[0] & 0x0F) * 4
    sport, dport, ulen = int.from_bytes(frame[ihl:ihl + 2], "big"), int.from_bytes(frame[ihl + 2:ihl + 4], "big"), \
        int.from_bytes(frame[ihl + 4:ihl + 6], "big")
    return {"src": socket.inet_ntoa(frame[12:16]), "dst": socket.inet_ntoa(frame[16:20]),
            "sport": sport, "dport": dport, "hex": frame[ihl + 8:ihl + ulen].hex()}


def sniff(seconds: float, port: int) -> list[dict]:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
    out = []
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        ready, _, _ = select.select([sock], [], [], left)
        if not ready:
            continue
        frame, addr = sock.recvfrom(65535)
        if addr[0] == "lo":
            continue
        d = parse_ipv4_udp(frame)
        if d and d["sport"] == port and d["dport"] == port:
            d["outgoing"] = addr[2] == PACKET_OUTGOING
            out.append(d)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("send")
    s = sub.add_parser("sniff")
    s.add_argument("--seconds", type=float, required=True)
    s.add_argument("--port", type=int, required=True)
    args = ap.parse_args(argv)
    if args.cmd == "send":
        print(send(sys.stdin.read().splitlines()))
    else:
        for d in sniff(args.seconds, args.port):
            print(json.dumps(d))
    return 0


if __name__ == "__main__":
    sys.exit(main())
