"""The Provider interface and what ``init`` returns.

Owns the ``Provider`` protocol, the ``Deployment`` record (hosts by role, networks,
inventory, the namespace through which they are reached, whether they share this
machine's kernel) and ``make_provider(name, ...)``.  No provider logic lives here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..errors import ConfigError
from ..lab.plan import DEFAULT_NAME
from ..runner.hosts import GROUP, Host, load_hosts

NAMES = ("lab", "vagrant", "inventory")


@dataclass(frozen=True)
class Network:
    name: str
    cidr: str
    netns: str | None = None   # the namespace the network lives in (None: the host's own)


@dataclass
class Deployment:
    """What ``Provider.init`` made: everything the runner needs to reach the nodes.

    ``roles`` (Ansible group -> hosts) is read from the inventory on first use: the
    runner asks for a deployment every trial and ``ansible-inventory`` costs a second.
    """

    provider: str
    inventory: Path
    networks: list[Network] = field(default_factory=list)
    shares_host_kernel: bool = False   # lab nodes: no netem, no kernel clock
    netns: str | None = None           # reach hosts only from inside this namespace
    _roles: dict[str, list[Host]] | None = None

    @property
    def roles(self) -> dict[str, list[Host]]:
        if self._roles is None:
            self._roles = {GROUP: load_hosts(self.inventory)}
        return self._roles

    @property
    def hosts(self) -> list[Host]:
        return list(self.roles.get(GROUP, []))


class Provider(Protocol):
    name: str
    shares_host_kernel: bool

    def init(self, nodes: int | None = None) -> Deployment:
        """Make sure ``nodes`` hosts exist (None: as they are) and describe them."""

    def would_change(self, nodes: int) -> bool:
        """Whether ``init(nodes)`` would add or remove hosts (the runner collects first)."""

    def existing(self) -> Deployment:
        """The hosts as they are, never creating or resizing anything."""

    def destroy(self) -> list[str]:
        """Remove everything this provider made; what was removed, for the user."""

    def status(self) -> dict[str, Any]:
        """Per host: what is running and whether it is reachable."""


def make_provider(name: str, *, lab_name: str | None = None, lab_subnet: str | None = None,
                  inventory: Path | str | None = None, vm_name: str | None = None,
                  progress=None) -> Provider:
    if name == "lab":
        from .lab import LabProvider

        return LabProvider(lab_name or DEFAULT_NAME, subnet=lab_subnet, progress=progress)
    if name == "vagrant":
        from .vagrant import VagrantProvider

        return VagrantProvider(vm_name or "tvm", progress=progress)
    if name == "inventory":
        if inventory is None:
            raise ConfigError("provider inventory needs an inventory (--inventory or the "
                              "suite's inventory:)")
        from .inventory import InventoryProvider

        return InventoryProvider(Path(inventory))
    raise ConfigError(f"unknown provider {name!r} (one of {', '.join(NAMES)})")
