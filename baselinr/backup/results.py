"""Result objects of backup, list, verify, restore and prune; the CLI renders them.

Returned by ``baselinr.backup.api``. Plain frozen dataclasses with
``to_dict()``, so library callers, the text renderer and ``--output json``
see the same facts. None of them holds a password: databases are named by
``ConnectionSettings.describe()``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from baselinr.backup.trust import ManifestProblem


class _Result:
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload,no-any-return]


@dataclass(frozen=True)
class TableSummary(_Result):
    name: str
    rows: int
    bytes: int


@dataclass(frozen=True)
class CreateResult(_Result):
    name: str
    path: str
    dialect: str
    database: str
    schema_version: int | None
    tables: list[TableSummary]
    rows: int
    bytes: int
    seconds: float
    pruned: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ListedBackup(_Result):
    name: str
    path: str
    status: str  # complete | partial | invalid
    created_at: str | None = None
    dialect: str | None = None
    database: str | None = None
    schema_version: int | None = None
    tables: int | None = None
    rows: int | None = None
    bytes: int | None = None
    problem: str | None = None


@dataclass(frozen=True)
class ListResult(_Result):
    dest: str
    backups: list[ListedBackup]

    @property
    def complete(self) -> list[ListedBackup]:
        return [b for b in self.backups if b.status == "complete"]


@dataclass(frozen=True)
class TableCheck(_Result):
    name: str
    ok: bool
    rows: int | None
    expected_rows: int
    problem: str | None = None


@dataclass(frozen=True)
class VerifyResult(_Result):
    name: str
    path: str
    ok: bool
    tables: list[TableCheck]
    problems: list[str]
    schema_version: int | None = None
    rows: int = 0
    # The manifest's own check (``trust``): its digest's state and what differs from the schema model.
    manifest_integrity: str = ""
    manifest_sha256: str | None = None
    manifest_problems: list[ManifestProblem] = field(default_factory=list)
    # What no migration made: left out at backup time by name, and kept (restore adds them back).
    excluded: list[str] = field(default_factory=list)
    kept_columns: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RestoreResult(_Result):
    name: str
    database: str
    dialect: str
    schema_version: int | None
    code_version: int
    tables: list[TableSummary]
    rows: int
    seconds: float
    atomic: bool
    replaced: list[str] = field(default_factory=list)
    created_from_backup: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # From another dialect (or encoding): the dialect it came from, and each table's digest of the
    # backup's values under the normal form (``normal``), as ``migrate move`` compares them.
    converted_from: str | None = None
    normal_digests: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PruneResult(_Result):
    dest: str
    keep: int
    removed: list[str]
    kept: list[str]


@dataclass(frozen=True)
class MovedTable(_Result):
    """One table of a move: rows and normal-form digest of the source's snapshot and of the target."""

    name: str
    rows: int
    target_rows: int
    digest: str
    target_digest: str

    @property
    def equal(self) -> bool:
        return self.rows == self.target_rows and self.digest == self.target_digest


@dataclass(frozen=True)
class MoveResult(_Result):
    """``migrate move``: what moved where, and how it was checked (``verified``: every table equal and
    ``migrate validate`` green on the target)."""

    source: str
    target: str
    source_dialect: str
    target_dialect: str
    schema_version: int | None
    tables: list[MovedTable]
    rows: int
    seconds: dict[str, float]
    verified: bool
    validation_errors: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
