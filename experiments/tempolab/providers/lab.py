"""The local-lab provider: ``tempolab.lab.Lab`` (network namespaces) behind the interface.

Owns mapping the lab's state to a ``Deployment``; the lab itself stays in
``tempolab.lab``.  Lab nodes share this machine's kernel (``shares_host_kernel``): the
runner refuses netem suites and the kernel clock there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..lab.plan import DEFAULT_NAME
from .base import Deployment, Network


class LabProvider:
    name = "lab"
    shares_host_kernel = True

    def __init__(self, lab_name: str = DEFAULT_NAME, subnet: str | None = None,
                 progress: Callable[[str], None] | None = None):
        self.lab_name = lab_name
        self.subnet = subnet
        self._progress = progress or (lambda m: None)

    def _lab(self):
        from ..lab import Lab

        return Lab(self.lab_name, subnet=self.subnet, progress=self._progress)

    def _deployment(self, lab) -> Deployment:
        inv = lab.inventory_path
        return Deployment("lab", inv, [Network(f"{lab.name}0", lab.subnet)],
                          shares_host_kernel=True)

    def would_change(self, nodes: int) -> bool:
        lab = self._lab()
        return lab.state is None or len(lab.nodes) != nodes

    def init(self, nodes: int | None = None) -> Deployment:
        lab = self._lab()
        if nodes is not None and (lab.state is None or len(lab.nodes) != nodes):
            lab.up(nodes)
        elif lab.state is None:
            from ..lab import Lab

            lab = Lab.load(self.lab_name)  # raises the lab's own "not up" message
        return self._deployment(lab)

    def existing(self) -> Deployment:
        from ..lab import Lab

        return self._deployment(Lab.load(self.lab_name))

    def destroy(self) -> list[str]:
        return self._lab().down()

    def status(self) -> dict[str, Any]:
        return {s.name: {"address": s.address, "sshd": s.sshd_alive, "daemon_pid": s.daemon_pid}
                for s in self._lab().status()}
