"""The Vagrant provider: libvirt VMs of ``tempolab.vm.VmLab`` behind the interface.

Owns mapping the VM lab to a ``Deployment``.  Guests are reached only inside the VM
namespace (``Deployment.netns``): Ansible through the inventory's ProxyCommand, the
runner's sockets through :mod:`.netns`.  They have their own kernels, so netem and the
kernel clock work there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import EnvironmentProblem
from .base import Deployment, Network


class VagrantProvider:
    name = "vagrant"
    shares_host_kernel = False

    def __init__(self, vm_name: str = "tvm", progress: Callable[[str], None] | None = None):
        from ..vm.lab import VmLab

        self.vm = VmLab(vm_name, progress=progress)

    def _deployment(self) -> Deployment:
        from ..vm.lab import DEFAULT_SUBNET_PREFIX

        inv = self.vm.inventory_path
        if not inv.exists():
            raise EnvironmentProblem(f"no VM lab {self.vm.name!r} is up (tempo vm up --nodes 3"
                                     + ("" if self.vm.name == "tvm" else f" --name {self.vm.name}")
                                     + ")")
        return Deployment("vagrant", inv,
                          [Network(self.vm.network, f"{DEFAULT_SUBNET_PREFIX}.0/24", self.vm.netns)],
                          netns=self.vm.netns)

    def _count(self) -> int:
        st = self.vm.state()
        return len(st.get("nodes", [])) if st and st.get("phase") == "up" else 0

    def would_change(self, nodes: int) -> bool:
        return self._count() != nodes

    def init(self, nodes: int | None = None,
             qemuenv: dict[str, dict[str, str]] | None = None) -> Deployment:
        """``qemuenv``: per-guest qemu environment (kernel clock mode); guests whose
        environment differs from their running one are booted again."""
        if nodes is not None and (self.would_change(nodes) or
                                  (qemuenv is not None and self._env_differs(nodes, qemuenv))):
            self.vm.up(nodes, qemuenv=qemuenv)
        return self._deployment()

    def _env_differs(self, nodes: int, qemuenv: dict[str, dict[str, str]]) -> bool:
        have = self.vm.qemuenv()
        return any(have.get(f"n{k}", {}) != qemuenv.get(f"n{k}", {}) for k in range(1, nodes + 1))

    def existing(self) -> Deployment:
        return self._deployment()

    def destroy(self) -> list[str]:
        return self.vm.down()

    def status(self) -> dict[str, Any]:
        return {g.name: {"domain": g.domain, "address": g.address, "state": g.state, "ssh": g.ssh}
                for g in self.vm.status()}
