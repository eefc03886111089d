"""What a command leaves running, said in one line (issue 14: `tempo run load` left 32
namespaces and their daemons up without a word).

Owns the sentence only: it asks the lab's own status (namespaces, sshd, daemons) and
names the command that removes them.
"""

from __future__ import annotations


def still_up_line(lab_name: str) -> str:
    """``still up: lab NAME, N nodes (M daemons running); remove with: ...`` or a line
    saying nothing is left."""
    from .lab.core import Lab
    from .lab.plan import DEFAULT_NAME

    try:
        lab = Lab(lab_name)
        status = lab.status() if lab.state is not None else []
    except Exception as exc:  # noqa: BLE001 - the sentence must never fail the command
        return f"still up: unknown (could not read lab {lab_name!r}: {exc})"
    up = [s for s in status if s.netns_present]
    if not up:
        return f"still up: nothing (lab {lab_name!r} is down)"
    daemons = sum(1 for s in up if s.daemon_pid)
    name_opt = "" if lab_name == DEFAULT_NAME else f" --name {lab_name}"
    return (f"still up: lab {lab_name}, {len(up)} nodes (namespaces with sshd, {daemons} tempod daemons running); "
            f"remove with: sudo .venv/bin/tempo lab down{name_opt}")
