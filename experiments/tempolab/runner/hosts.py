"""Inventory -> ``Host`` records the runner connects to.

Owns reading an Ansible inventory through ``ansible-inventory --list`` (so every format
Ansible accepts works: YAML, INI, dynamic plugins) and picking the group ``tempo_nodes``.
A host var ``tempo_netns`` says the host is reachable only inside that network namespace
(the VM lab's); the connections are opened there (``providers.netns``), not here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, EnvironmentProblem

GROUP = "tempo_nodes"


@dataclass(frozen=True)
class Host:
    name: str            # inventory name = TSP node name unless tempod_node_name says otherwise
    address: str         # where the daemon listens (tempod_address, else ansible_host)
    ssh_host: str
    user: str = "root"
    port: int = 22
    key_file: str | None = None
    netns: str | None = None   # reachable only from inside this network namespace (VMs)


def _tool(name: str) -> str:
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    found = shutil.which(name)
    if not found:
        raise EnvironmentProblem(f"{name} not found (is the venv installed?)")
    return found


def _plain(value: Any) -> Any:
    """A host var as the runner needs it.

    ``ansible-inventory --list`` (ansible-core 2.19, output profile ``inventory_legacy``)
    writes a string that an inventory plugin computed, not one read from a file, as
    ``{"__ansible_unsafe": "..."}``: every ``compose`` var of ``amazon.aws.aws_ec2``
    (``ansible_host``, ``tempod_address``) comes out that way, and ``str()`` of the dict
    would become the host's address.
    """
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def hosts_from_inventory_json(data: dict[str, Any], source: str) -> list[Host]:
    """Pure part: ``ansible-inventory --list`` JSON -> hosts of group tempo_nodes."""
    group = data.get(GROUP)
    if not isinstance(group, dict) or not group.get("hosts"):
        raise ConfigError(f"no hosts in group {GROUP}", source=source)
    hostvars = _plain(data.get("_meta", {}).get("hostvars", {}))
    out = []
    for inv_name in group["hosts"]:
        hv = hostvars.get(inv_name, {})
        ssh_host = str(hv.get("ansible_host", inv_name))
        key = hv.get("ansible_ssh_private_key_file") or hv.get("ansible_private_key_file")
        out.append(Host(
            name=str(hv.get("tempod_node_name", inv_name)),
            address=str(hv.get("tempod_address", ssh_host)),
            ssh_host=ssh_host,
            user=str(hv.get("ansible_user", "root")),
            port=int(hv.get("ansible_port", 22)),
            key_file=str(key) if key else None,
            netns=str(hv["tempo_netns"]) if hv.get("tempo_netns") else None,
        ))
    return out


def load_hosts(inventory: Path) -> list[Host]:
    inventory = Path(inventory)
    if not inventory.exists():
        raise ConfigError("inventory not found (for the lab: tempo lab up first)",
                          source=str(inventory))
    env = dict(os.environ, ANSIBLE_INVENTORY_UNPARSED_WARNING="False")
    proc = subprocess.run([_tool("ansible-inventory"), "-i", str(inventory), "--list"],
                          capture_output=True, text=True, env=env, timeout=120)
    if proc.returncode != 0:
        raise ConfigError(f"ansible-inventory failed: {proc.stderr.strip()[-400:]}",
                          source=str(inventory))
    return hosts_from_inventory_json(json.loads(proc.stdout), str(inventory))
