"""The analysis stage: run folder in, tables / figures / summary / report out.

It reads only the run folder described in docs/architecture.md ("Run folder"), so a
folder copied to another machine regenerates everything with ``tempo report``.  It
must not know how the runner, the lab or the daemon work beyond those file contracts.

Layers, each in its own module:

- :mod:`.load`      run folder -> :class:`RunData` (raw records + data problems); file
  names, record types and the JSON-lines reader are :mod:`tempolab.runschema`'s,
  shared with the runner (synthetic folders for tests: :mod:`tempolab.testing`)
- drift profiles (hardware time <-> reference time) are :mod:`tempod.profile`'s, the
  same model the daemon, the launcher and the simulator use
- :mod:`.tables`    RunData -> tidy pandas tables (pure functions)
- :mod:`.summary`   tables -> headline numbers (pure functions)
- :mod:`.figures`   tables -> matplotlib Figures (no file I/O)
- :mod:`.report`    orchestration, writing files, Jepsen-style "unknown" sections
- :mod:`.compare`   several runs side by side
"""

from __future__ import annotations

from .load import NotARunFolder, RunData, load_run
from .report import ReportResult, build_report
from .compare import CompareResult, build_compare


__all__ = [
    "NotARunFolder",
    "RunData",
    "load_run",
    "ReportResult",
    "build_report",
    "CompareResult",
    "build_compare",
]
