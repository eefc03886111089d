"""Where the nodes come from: one Provider interface, three implementations.

After EnOSlib: ``init(nodes)`` makes (or finds) the hosts and returns them by role with
their networks and how to reach them, ``destroy()`` removes everything that provider
made, ``status()`` says what is there.  ``lab`` is the local lab of network namespaces,
``vagrant`` the libvirt VMs of ``tempo vm``, ``inventory`` any static Ansible inventory
(AWS, hosts a user already has).  The runner and the CLI only talk to this interface.
"""

from __future__ import annotations

from .base import NAMES, Deployment, Network, Provider, make_provider

__all__ = ["NAMES", "Deployment", "Network", "Provider", "make_provider"]
