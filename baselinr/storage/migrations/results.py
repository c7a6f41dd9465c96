"""Result objects returned by ``MigrationManager``; the CLI renders them.

Plain frozen dataclasses, so a library caller, the text renderer and the JSON
renderer (``to_dict``) all see the same facts. This module holds the history,
``status``, plans and what ``apply`` / ``rollback`` did; what running a plan
reports step by step (``StepResult``, ``BackfillProgress``) lives in
``run_results``, and the results of ``validate``, ``repair`` and ``baseline``
in ``upkeep_results``. Both are importable from here too. The split is for
start-up time: every frozen dataclass costs the interpreter generated code at
import, and ``status`` or an ``apply`` with nothing to do should not pay for
the results of work they do not do.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from baselinr.storage.migrations.run_results import BackfillProgress as BackfillProgress
    from baselinr.storage.migrations.run_results import StepResult as StepResult
    from baselinr.storage.migrations.upkeep_results import AdoptedVersion as AdoptedVersion
    from baselinr.storage.migrations.upkeep_results import BaselineResult as BaselineResult
    from baselinr.storage.migrations.upkeep_results import RepairResult as RepairResult
    from baselinr.storage.migrations.upkeep_results import ValidationResult as ValidationResult
else:

    def __getattr__(name: str) -> Any:
        """The names of ``run_results`` and ``upkeep_results``, imported on first use
        (``from baselinr.storage.migrations.results import StepResult`` keeps working)."""
        if name in ("BackfillProgress", "StepResult"):
            from baselinr.storage.migrations import run_results

            return getattr(run_results, name)
        if name in ("AdoptedVersion", "BaselineResult", "RepairResult", "ValidationResult"):
            from baselinr.storage.migrations import upkeep_results

            return getattr(upkeep_results, name)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _Result:
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload,no-any-return]


@dataclass(frozen=True)
class HistoryRow(_Result):
    """One row of ``baselinr_schema_version``."""

    version: int
    status: str
    description: str | None = None
    applied_at: str | None = None
    checksum: str | None = None
    migration_script: str | None = None
    applied_by: str | None = None
    execution_time_ms: int | None = None
    statements_done: int | None = None
    statements_total: int | None = None
    error_message: str | None = None
    # Of the run that left a running or failed row: "down" for an interrupted rollback.
    direction: str = "up"

    @property
    def resume_command(self) -> str:
        """The command that continues the run that left this row unfinished."""
        if self.direction == "down":
            return f"baselinr migrate rollback --target {self.version - 1} --resume"
        return "baselinr migrate apply --resume"


@dataclass(frozen=True)
class StatusResult(_Result):
    """Where the database stands against the code."""

    database_version: int | None
    code_version: int
    state: str  # up_to_date | behind | ahead | not_initialized | failed | unadopted
    pending: list[int] = field(default_factory=list)
    problems: list[HistoryRow] = field(default_factory=list)
    database: str = ""
    # Set when Baselinr's profiler left tables or stamped versions the engine did not run
    # (state "unadopted"): what repair would create, what it would record as already
    # there, and the differences that make repair refuse until they are fixed by hand.
    missing: list[str] = field(default_factory=list)
    found: list[str] = field(default_factory=list)
    blocking: list[str] = field(default_factory=list)
    stamped: bool = False  # the profiler's rows are in the version table (else: only its tables)
    # Migrations whose (last) run waited out lock timeouts of the DDL lock guard, and who blocked them.
    retried: list[RetriedMigration] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.state == "up_to_date"


@dataclass(frozen=True)
class PlannedStep(_Result):
    """One migration a plan would run, with what it would execute."""

    version: int
    description: str
    direction: str  # up | down
    statements: list[str]
    python: str | None
    transactional: bool
    resume_from: int = 0


@dataclass(frozen=True)
class Plan(_Result):
    current_version: int | None
    target_version: int
    direction: str  # up | down | none
    steps: list[PlannedStep]
    dialect: str


@dataclass(frozen=True)
class Blocker(_Result):
    """A session that held a lock a migration's DDL waited for (from the server's own views)."""

    session: int  # PostgreSQL backend pid, MySQL/MariaDB connection id
    user: str | None = None
    application: str | None = None  # PostgreSQL application_name; MySQL/MariaDB client host
    query_start: str | None = None
    transaction_start: str | None = None
    state: str | None = None
    query: str | None = None  # the start of its current (or last) statement

    def describe(self, dialect: str) -> str:
        what = "PostgreSQL backend" if dialect == "postgres" else "connection"
        parts = [f"user {self.user or '?'}", f"application {self.application or '?'}"]
        if self.query_start:
            parts.append(f"query started {self.query_start}")
        if self.transaction_start:
            parts.append(f"transaction started {self.transaction_start}")
        return f"{what} {self.session} ({', '.join(parts)})"


@dataclass(frozen=True)
class LockRetry(_Result):
    """One lock timeout of a migration's DDL, and the retry that follows it."""

    version: int
    direction: str
    statement: int  # 1-based; 0 when the wait was outside the migration's statements (its Python step)
    attempt: int  # the try that timed out
    tries: int | None  # the bound on tries; None: bounded by budget_seconds
    delay_seconds: float  # backoff before the next try
    lock_timeout: float
    blockers: list[Blocker] = field(default_factory=list)
    dialect: str = ""
    budget_seconds: float | None = None  # how long the migration is tried, where tries is None

    @property
    def held_by(self) -> str:
        if not self.blockers:
            return "another session"
        return "; ".join(b.describe(self.dialect) for b in self.blockers)


@dataclass(frozen=True)
class RetriedMigration(_Result):
    """A migration in the history whose run waited out lock timeouts (from the journal)."""

    version: int
    status: str  # of its version row: applied | running | failed
    retries: list[LockRetry] = field(default_factory=list)

    @property
    def held_by(self) -> str:
        """Who held the lock at the last timeout that named someone."""
        for r in reversed(self.retries):
            if r.blockers:
                return r.held_by
        return "another session"


@dataclass(frozen=True)
class ApplyResult(_Result):
    """What ``apply`` / ``rollback`` did (or, in a dry run, would do)."""

    from_version: int | None
    to_version: int | None
    target_version: int
    dry_run: bool
    plan: Plan
    steps: list[StepResult] = field(default_factory=list)
    # Versions missing when this runner read the history, found applied under the lock: another
    # runner applied them while this one waited (nothing failed; this one had nothing to do for them).
    applied_meanwhile: list[int] = field(default_factory=list)
