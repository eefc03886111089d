"""The run's facts: a typed history (``history``) and the checks over it (``checker``).

One definition of each fact for every consumer: the simulator's figures
(``tempod.sim.engine``), the runner's per-trial facts and live summary
(``tempolab.runner.facts`` / ``progress``) and the analysis (``tempolab.analysis.tables``
/ ``summary``).  Standard library only, so the daemon package and its simulator need
no pandas; the analysis turns its pandas rows into these records.
"""

from .checker import Failover, Result, RoundCheck, RoundMember  # noqa: F401
from .history import (FAULT_KINDS, MASTER_FAULTS, MASTER_STATES, Fault, History, RoundDone,  # noqa: F401
                      Sample, StateChange, fault_kind)
