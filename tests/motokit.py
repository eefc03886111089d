"""A local EC2 API for the AWS tests: ``moto_server`` on 127.0.0.1 and the environment
that keeps every AWS client on it.

Owns starting the emulator on a free loopback port (``-p 0``; the port is read from its
log, so no port is picked and then raced for), stopping it again whatever happened in
between (its own process group, SIGTERM then SIGKILL), and ``aws_env``: dummy
credentials, no ``~/.aws`` files, no instance-metadata lookups, and HTTP(S) proxies set
to a loopback port that refuses connections, with only 127.0.0.1 exempt.  The proxy is
the guard: a client that was not pointed at the emulator (a playbook variable that did
not reach a module, say) fails at once on loopback instead of sending a request to AWS.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent
_LISTENING = re.compile(rb"Running on http://127\.0\.0\.1:(\d+)")


@dataclass(frozen=True)
class Moto:
    url: str            # http://127.0.0.1:PORT, the endpoint to give every client
    pid: int
    log: Path
    env: dict[str, str]  # aws_env(...) for this emulator's clients


@contextmanager
def refusing_port() -> Iterator[int]:
    """A loopback TCP port bound but never listening: connecting to it is refused, and
    nothing else can take it while the context is open."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]
    finally:
        s.close()


def aws_env(state_dir: Path, dead_proxy_port: int) -> dict[str, str]:
    """This process's environment without any AWS_* or proxy setting of the user's, plus
    what keeps boto3 local (see the module docstring)."""
    drop = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k.lower() not in drop}
    proxy = f"http://127.0.0.1:{dead_proxy_port}"
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_EC2_METADATA_DISABLED="true",
        # files that do not exist: nothing of ~/.aws (profiles, regions, endpoints) is read
        AWS_CONFIG_FILE=str(state_dir / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(state_dir / "no-aws-credentials"),
        HTTP_PROXY=proxy, HTTPS_PROXY=proxy, http_proxy=proxy, https_proxy=proxy,
        NO_PROXY="127.0.0.1", no_proxy="127.0.0.1",
    )
    return env


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    # start_new_session made the server the leader of its own group: this reaches it and
    # anything it forked, and nothing else
    for sig, wait_s in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(wait_s)
            break
        except subprocess.TimeoutExpired:
            continue


@contextmanager
def moto_server(state_dir: Path, dead_proxy_port: int, start_timeout_s: float = 60) -> Iterator[Moto]:
    exe = BIN / "moto_server"
    if not exe.exists():
        raise RuntimeError(f"{exe} missing: moto[server] is in the test extra (pip install -e '.[test]')")
    log = state_dir / "moto_server.log"
    env = aws_env(state_dir, dead_proxy_port)
    # its log goes to a file, not a pipe nobody reads: moto logs every request, and a
    # full pipe would block the server mid-test
    with log.open("wb") as out:
        proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", "0"], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + start_timeout_s
        while True:
            m = _LISTENING.search(log.read_bytes())
            if m:
                break
            if proc.poll() is not None:
                raise RuntimeError(f"moto_server exited with {proc.returncode}: {log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"moto_server did not listen within {start_timeout_s:.0f} s: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield Moto(url=f"http://127.0.0.1:{int(m.group(1))}", pid=proc.pid, log=log, env=env)
    finally:
        _stop(proc)
