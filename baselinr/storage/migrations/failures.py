"""The errors a run raises: each a ``BaselinrError`` with its exit code, one line and a hint.

Built by the runner (and adoption) from the driver's exception: a migration
that failed (exit 4), a server that went away during one (exit 3), the lock
guard giving up (exit 4), the single-runner lock timing out (exit 3), or the
version table that cannot be written (exit 4). Every message is redacted.
"""

from __future__ import annotations

from baselinr.config import ConnectionSettings
from baselinr.errors import BaselinrError, DatabaseUnavailable, LockTimeout, MigrationFailed
from baselinr.storage.connection import first_line, redact
from baselinr.storage.dialects import dialect_for
from baselinr.storage.migrations.results import HistoryRow, LockRetry, PlannedStep
from baselinr.storage.version_table import FAILED, VERSION_TABLE_NAME


class LockGaveUp(Exception):
    """Internal to the runner: the guard ran out of tries (``retry`` is the last timeout)."""

    def __init__(self, retry: LockRetry) -> None:
        super().__init__(f"v{retry.version}: gave up waiting for a lock")
        self.retry = retry


def detail(exc: BaseException, settings: ConnectionSettings) -> str:
    """The driver's first line for ``exc``, secrets removed."""
    return redact(first_line(getattr(exc, "orig", None) or exc), settings)


def bookkeeping_failed(exc: BaseException, settings: ConnectionSettings, version: int = 0) -> BaselinrError:
    """Creating or writing the version table failed (e.g. no CREATE or INSERT
    privilege): a migration failure (exit 4) naming the database's reason.
    A connection the server dropped stays a connection error (exit 3)."""
    if isinstance(exc, BaselinrError):
        return exc
    problem = dialect_for(settings.type).storage_problem(settings, exc)
    if problem is not None:
        return DatabaseUnavailable(problem[0], hint=problem[1])
    said = detail(exc, settings)
    if getattr(exc, "connection_invalidated", False):
        return DatabaseUnavailable(f"Lost the connection to {settings.describe()}: {said}")
    return MigrationFailed(
        f"Cannot write {VERSION_TABLE_NAME}: {said}",
        version=version,
        hint="For a permission error: the configured user needs the privileges to create and alter tables "
        "and to write that table.",
    )


def lock_timeout(seconds: float) -> LockTimeout:
    return LockTimeout(
        f"Timed out after {seconds:g}s waiting for the migration lock: another runner is writing.",
        hint="Wait for it to finish, or raise --lock-timeout.",
    )


def lock_failed(step: PlannedStep, retry: LockRetry, *, rolled_back: bool) -> MigrationFailed:
    """The guard gave up: the migration failed (exit 4), naming who held the lock."""
    where = f" at statement {retry.statement} of {len(step.statements)}" if retry.statement else ""
    if step.direction == "down":
        where = " (rollback)" + where
    message = (
        f"Migration v{step.version}{where} gave up after {retry.attempt} tries{_within(retry)}, each waiting "
        f"{retry.lock_timeout:g}s for a lock held by {retry.held_by}."
    )
    if rolled_back:
        hint = "Its transaction was rolled back; the database is unchanged by this version."
        again = "run it again"
    else:
        resume = HistoryRow(step.version, FAILED, direction=step.direction).resume_command
        if retry.statement:
            hint = f"Statements before {retry.statement} are done and recorded."
            again = f"run '{resume}' to continue at statement {retry.statement}"
        else:
            hint = "Its statements and the batches its backfill committed are done and recorded."
            again = f"run '{resume}' to continue after the last committed batch"
    hint += f" Let that session finish (or end it), then {again}; or raise --ddl-lock-timeout or --ddl-lock-tries."
    return MigrationFailed(message, version=step.version, hint=hint)


def step_failed(
    step: PlannedStep,
    statement: int,
    exc: BaseException,
    settings: ConnectionSettings,
    dialect_name: str,
    *,
    rolled_back: bool,
) -> BaselinrError:
    """Statement ``statement`` (0: the Python step or the bookkeeping) of ``step`` raised ``exc``."""
    problem = dialect_for(settings.type).storage_problem(settings, exc)
    if problem is not None:
        # Not the migration's fault: the database cannot be written where it lives.
        return DatabaseUnavailable(problem[0], hint=problem[1])
    said = detail(exc, settings)
    where = f" at statement {statement} of {len(step.statements)}" if statement else ""
    if step.direction == "down":
        where = " (rollback)" + where
    if getattr(exc, "connection_invalidated", False):
        # The server went away (or dropped us): not the migration's fault.
        after = (
            "the server rolled its transaction back; run 'baselinr migrate apply' again once it is back."
            if rolled_back
            else "it is recorded as interrupted; run 'baselinr migrate apply --resume' once the server is back."
        )
        return DatabaseUnavailable(
            f"Lost the connection to {settings.describe()} during migration v{step.version}{where}: {said}",
            hint=after[0].upper() + after[1:],
        )
    if rolled_back:
        hint = "Its transaction was rolled back; the database is unchanged by this version. Fix the migration and apply again."
    else:
        hint = (
            f"The database may be partly migrated ({dialect_name} DDL is not transactional); "
            "the failure is recorded. Fix it, then run 'baselinr migrate apply --resume' "
            "or undo the change by hand and run 'baselinr migrate repair'."
        )
    return MigrationFailed(f"Migration v{step.version}{where} failed: {said}", version=step.version, hint=hint)


def _within(retry: LockRetry) -> str:
    """ " in N s" when the tries were bounded by the guard's time budget rather than a count."""
    return f" in {retry.budget_seconds:g} s" if retry.budget_seconds is not None else ""
