"""SSH to the nodes: one persistent paramiko connection per node.

Owns connecting (key from the inventory), running one shell command with a timeout,
reconnecting once after a dropped connection, SFTP downloads, and turning failures into
``HostUnreachable(hosts)``. It knows nothing about what the commands do.
"""

from __future__ import annotations

import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import paramiko

from ..errors import HostUnreachable
from ..providers.netns import connect_in
from .hosts import Host


@dataclass(frozen=True)
class Result:
    host: str
    rc: int
    stdout: str
    stderr: str

    def check(self, what: str = "command") -> "Result":
        if self.rc != 0:
            raise CommandFailed(self)
        return self


class CommandFailed(Exception):
    def __init__(self, result: Result):
        self.result = result
        super().__init__(f"{result.host}: exit {result.rc}: {result.stderr.strip()[-300:]}")


class SshPool:
    def __init__(self, hosts: list[Host], connect_timeout_s: float = 5.0):
        self.hosts = {h.name: h for h in hosts}
        self.connect_timeout_s = connect_timeout_s
        self._clients: dict[str, paramiko.SSHClient] = {}
        self._locks = {h.name: threading.Lock() for h in hosts}

    def _connect(self, name: str) -> paramiko.SSHClient:
        h = self.hosts[name]
        client = paramiko.SSHClient()
        # lab and test hosts are re-created with fresh host keys; the inventory's own
        # ssh options make the same choice for Ansible
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        try:
            # a VM's address exists only in its namespace: the TCP socket is made there
            sock = (connect_in(h.netns, h.ssh_host, h.port, self.connect_timeout_s)
                    if h.netns else None)
            client.connect(h.ssh_host, port=h.port, username=h.user, key_filename=h.key_file,
                           sock=sock, timeout=self.connect_timeout_s, banner_timeout=self.connect_timeout_s,
                           auth_timeout=self.connect_timeout_s, allow_agent=False,
                           look_for_keys=h.key_file is None)
        except (OSError, paramiko.SSHException) as exc:
            client.close()
            raise HostUnreachable([name], f"{h.ssh_host}:{h.port}: {exc}") from exc
        t = client.get_transport()
        if t is not None:
            t.set_keepalive(5)
        return client

    def client(self, name: str) -> paramiko.SSHClient:
        if name not in self.hosts:
            raise KeyError(f"unknown host {name!r}")
        with self._locks[name]:
            c = self._clients.get(name)
            t = c.get_transport() if c else None
            if c is None or t is None or not t.is_active():
                if c is not None:
                    c.close()
                c = self._clients[name] = self._connect(name)
            return c

    def run(self, name: str, cmd: str, timeout_s: float = 30.0) -> Result:
        """Run ``cmd`` with sh on ``name``; one reconnect on a dead connection."""
        for attempt in (0, 1):
            c = self.client(name)
            try:
                _in, out, err = c.exec_command(cmd, timeout=timeout_s)
                stdout = out.read().decode("utf-8", "replace")
                stderr = err.read().decode("utf-8", "replace")
                rc = out.channel.recv_exit_status()
                return Result(name, rc, stdout, stderr)
            except (socket.timeout, TimeoutError) as exc:
                raise HostUnreachable([name], f"command timed out after {timeout_s:g} s") from exc
            except (paramiko.SSHException, EOFError, OSError) as exc:
                with self._locks[name]:
                    self._clients.pop(name, None)
                c.close()
                if attempt == 1:
                    raise HostUnreachable([name], str(exc)) from exc
        raise AssertionError("unreachable")

    def run_many(self, cmds: dict[str, str], timeout_s: float = 30.0,
                 check: bool = False) -> dict[str, Result]:
        """Run commands on several hosts in parallel; unreachable hosts raise together."""
        results: dict[str, Result] = {}
        failed: list[str] = []
        details: list[str] = []
        if not cmds:
            return results
        with ThreadPoolExecutor(max_workers=min(32, len(cmds))) as ex:
            futs = {n: ex.submit(self.run, n, c, timeout_s) for n, c in cmds.items()}
            for n, f in futs.items():
                try:
                    results[n] = f.result()
                except HostUnreachable as exc:
                    failed.append(n)
                    details.append(str(exc))
        if failed:
            raise HostUnreachable(failed, "; ".join(details))
        if check:
            for r in results.values():
                r.check()
        return results

    def get(self, name: str, remote: str, local: Path) -> bool:
        """Download ``remote`` to ``local``; False when the remote file does not exist."""
        c = self.client(name)
        try:
            with c.open_sftp() as sftp:
                local.parent.mkdir(parents=True, exist_ok=True)
                sftp.get(remote, str(local))
            return True
        except FileNotFoundError:
            return False
        except (paramiko.SSHException, OSError) as exc:
            raise HostUnreachable([name], f"sftp {remote}: {exc}") from exc

    def close(self) -> None:
        for c in self._clients.values():
            c.close()
        self._clients.clear()

    def __enter__(self) -> "SshPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
