"""Errors of the controller stages, split by whose fault they are and carrying data."""

from __future__ import annotations


class TempoError(Exception):
    """Base class: the CLI prints these as one clean line."""


class ConfigError(TempoError):
    """A file the user gave us (suite YAML, inventory, run folder) is invalid.

    ``field`` names the offending key path, e.g. ``faults[2].at_s``.
    """

    def __init__(self, message: str, *, source: str | None = None, field: str | None = None):
        self.source = source
        self.field = field
        where = ": ".join(p for p in (source, field) if p)
        super().__init__(f"{where}: {message}" if where else message)


class EnvironmentProblem(TempoError):
    """This machine lacks something (root, a tool, a free address range)."""


class HostUnreachable(TempoError):
    def __init__(self, hosts: list[str], detail: str = ""):
        self.hosts = list(hosts)
        msg = "unreachable: " + ", ".join(self.hosts)
        super().__init__(msg + (f" ({detail})" if detail else ""))
