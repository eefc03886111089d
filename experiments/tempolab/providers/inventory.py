"""The static-inventory provider: hosts a user already has (AWS, own machines).

Owns turning an existing Ansible inventory into a ``Deployment``.  It creates nothing,
so ``destroy`` removes nothing; ``init`` refuses a node count the inventory does not
have rather than pretending to resize it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..runner.hosts import load_hosts
from .base import Deployment


class InventoryProvider:
    name = "inventory"
    shares_host_kernel = False

    def __init__(self, inventory: Path):
        self.inventory = Path(inventory)
        self._dep: Deployment | None = None

    def existing(self) -> Deployment:
        if self._dep is not None:
            return self._dep
        dep = Deployment("inventory", self.inventory)
        ns = {h.netns for h in dep.hosts}
        if len(ns) > 1:
            raise ConfigError(f"hosts in several network namespaces {sorted(map(str, ns))}: "
                              "one observer socket cannot reach them all", source=str(self.inventory))
        dep.netns = ns.pop() if ns else None
        self._dep = dep
        return dep

    def init(self, nodes: int | None = None) -> Deployment:
        # the inventory is what it is: the suite's node count applies to made hosts only
        return self.existing()

    def would_change(self, nodes: int) -> bool:
        return False

    def destroy(self) -> list[str]:
        return []  # nothing here was made by us

    def status(self) -> dict[str, Any]:
        return {h.name: {"address": h.address, "ssh": f"{h.user}@{h.ssh_host}:{h.port}"}
                for h in load_hosts(self.inventory)}
