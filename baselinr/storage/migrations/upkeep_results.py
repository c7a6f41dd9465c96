"""Results of ``validate``, ``repair`` and ``baseline``, returned by ``MigrationManager``.

Frozen dataclasses like the rest of ``results`` (which re-exports them), kept
apart so that ``status`` and an ``apply`` with nothing to do do not generate
their classes at import. Built by ``validation`` and ``adoption`` (and
``adopt`` for the versions repair adopts); rendered by ``baselinr.cli.render``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from baselinr.storage.migrations.results import HistoryRow, _Result

__all__ = ["AdoptedVersion", "BaselineResult", "RealignedChecksum", "RepairResult", "ValidationResult"]


@dataclass(frozen=True)
class ValidationResult(_Result):
    version: int | None
    code_version: int
    valid: bool
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class AdoptedVersion(_Result):
    """One version that ``repair`` adopts: what it creates (if anything) and records."""

    version: int
    description: str
    created: list[str] = field(default_factory=list)
    statements: list[str] = field(default_factory=list)
    found: list[str] = field(default_factory=list)  # tables that were there already, recorded as they are


@dataclass(frozen=True)
class RealignedChecksum(_Result):
    """An applied version whose recorded checksum ``repair`` replaces with its file's."""

    version: int
    script: str
    recorded: str
    file: str


@dataclass(frozen=True)
class RepairResult(_Result):
    dry_run: bool
    removed: list[HistoryRow] = field(default_factory=list)
    adopted: list[AdoptedVersion] = field(default_factory=list)
    stamped_by_profiler: list[HistoryRow] = field(default_factory=list)
    realigned: list[RealignedChecksum] = field(default_factory=list)


@dataclass(frozen=True)
class BaselineResult(_Result):
    """What ``baseline`` recorded (or, in a dry run, would record)."""

    version: int
    dry_run: bool
    recorded: list[int] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)
    forced: bool = False
    replaced: list[HistoryRow] = field(default_factory=list)
