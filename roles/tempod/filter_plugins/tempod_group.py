"""Ansible filter ``tempod_group``: name and address of every host of the group.

Why a filter: a host that is not in this run (``--limit``, or unreachable) has not
published its ``_tempod_self`` fact, yet it is still a peer and must stay in every
other node's config.  Its name and address then come from its inventory variables,
with the role's own defaults (``tempod_node_name`` = inventory name, ``tempod_address``
= ``ansible_host``), which role defaults cannot provide through ``hostvars``.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError


def tempod_group(hosts, hostvars) -> list[dict]:
    group = []
    for host in hosts:
        if host not in hostvars:
            raise AnsibleFilterError(f"tempod_peer_hosts names {host!r}, which is not in the inventory")
        hv = hostvars[host]
        published = hv.get("_tempod_self")
        if published:
            group.append({"host": host, "name": str(published["name"]), "address": str(published["address"])})
        else:
            group.append({"host": host, "name": str(hv.get("tempod_node_name", host)),
                          "address": str(hv.get("tempod_address", hv.get("ansible_host", host)))})
    return group


class FilterModule:
    def filters(self):
        return {"tempod_group": tempod_group}
