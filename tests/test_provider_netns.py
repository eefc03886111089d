"""Sockets made inside a network namespace (how the runner reaches VMs).

A namespace of its own with an address only it has: a socket from ``socket_in`` can
bind it, one from the host's namespace cannot, and TCP through ``connect_in`` reaches a
listener that exists only in there.
"""

from __future__ import annotations

import socket
import subprocess
import threading

import pytest

from tempolab.errors import EnvironmentProblem
from tempolab.providers import netns

pytestmark = pytest.mark.lab
NS = "tvmt"
ADDR = "10.86.250.1"


@pytest.fixture
def ns():
    subprocess.run(["ip", "netns", "del", NS], capture_output=True)
    subprocess.run(["ip", "netns", "add", NS], check=True)
    subprocess.run(["ip", "-n", NS, "link", "set", "lo", "up"], check=True)
    subprocess.run(["ip", "-n", NS, "addr", "add", f"{ADDR}/32", "dev", "lo"], check=True)
    yield NS
    subprocess.run(["ip", "netns", "del", NS], capture_output=True)


def test_udp_socket_lives_in_the_namespace(ns):
    s = netns.socket_in(ns, socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((ADDR, 0))  # only the namespace has this address
    s.close()
    h = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with pytest.raises(OSError):
        h.bind((ADDR, 0))
    h.close()
    # the calling thread itself never changed namespace
    assert netns.socket_in(None).family == socket.AF_INET


def test_tcp_connect_reaches_a_listener_only_the_namespace_has(ns):
    srv = netns.socket_in(ns, socket.AF_INET, socket.SOCK_STREAM)
    srv.bind((ADDR, 0))
    srv.listen(1)
    port = srv.getsockname()[1]

    def serve():
        c, _ = srv.accept()
        c.sendall(b"hello from the namespace")
        c.close()

    t = threading.Thread(target=serve)
    t.start()
    c = netns.connect_in(ns, ADDR, port, timeout_s=5)
    assert c.recv(100) == b"hello from the namespace"
    c.close()
    t.join(5)
    srv.close()


def test_missing_namespace_is_a_clear_error():
    with pytest.raises(EnvironmentProblem, match="network namespace 'tvmnone' not found"):
        netns.socket_in("tvmnone")
