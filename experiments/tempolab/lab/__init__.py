"""The local lab: real hosts on one Linux machine.

A bridge, one network namespace per node with a veth into it, and in each a real
``sshd`` running as PID 1 of fresh mount, UTS and PID namespaces with per-node folders
bound over the daemon's paths.  Ansible and the runner reach nodes over SSH exactly as
they reach VMs.  See docs/lab.md.
"""

from .core import Lab, NodeStatus
from .state import LabState, NodeState

__all__ = ["Lab", "LabState", "NodeState", "NodeStatus"]
