"""``MigrationManager``: status, plan, apply, rollback, validate, repair and baseline.

The library API behind every ``baselinr migrate`` command; the CLI only
parses arguments and renders the result objects returned here. The manager
is a facade: it loads the chain and wires the layers below it, which do the
work:

- ``baselinr.storage.database``: engine, dialect, connections, the lock, the bare-driver reads;
- ``planner``: status and plans from the history and the chain (pure);
- ``runner`` (and ``tracked``): running a plan under the lock and the DDL lock guard;
- ``validation``: ``validate``;
- ``adoption``: ``repair`` and ``baseline``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from baselinr.config import ConnectionSettings, Settings, load_config
from baselinr.storage.database import NO_QUICK_PATH, Database
from baselinr.storage.dbapi import DbapiConnection
from baselinr.storage.dialects import Dialect
from baselinr.storage.migrations import adopt, adoption, history, journal, planner
from baselinr.storage.migrations.chain import DEFAULT_PACKAGE, Chain, ChainError, load_chain, registry_looks_whole
from baselinr.storage.migrations.guard import DEFAULT_LOCK_TIMEOUT, DEFAULT_TRIES
from baselinr.storage.migrations.migration import Migration
from baselinr.storage.migrations.results import (
    ApplyResult,
    HistoryRow,
    LockRetry,
    Plan,
    PlannedStep,
    StatusResult,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from baselinr.storage.migrations.run_results import BackfillProgress
    from baselinr.storage.migrations.runner import Runner
    from baselinr.storage.migrations.upkeep_results import BaselineResult, RepairResult, ValidationResult

__all__ = ["ChainError", "Migration", "MigrationManager"]


class MigrationManager:
    """Run Baselinr's schema migrations against one storage database."""

    def __init__(
        self,
        connection: ConnectionSettings,
        *,
        table_names: Mapping[str, str] | None = None,
        migrations_package: str = DEFAULT_PACKAGE,
        lock_timeout: float = 60.0,
        ddl_lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        ddl_lock_tries: int | None = DEFAULT_TRIES,
    ) -> None:
        self.settings = connection
        self.lock_timeout = lock_timeout
        # How long each migration's DDL may wait for a table lock (0: no bound) and how often it is
        # tried (None: for as long as the guard's time budget allows).
        self.ddl_lock_timeout = ddl_lock_timeout
        self.ddl_lock_tries = None if ddl_lock_tries is None else max(1, ddl_lock_tries)
        self.migrations_package = migrations_package
        self.db = Database(connection, table_names=table_names, lock_timeout=lock_timeout)
        self._chain: Chain | None = None

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> MigrationManager:
        names = {"baselinr_runs": settings.storage.runs_table, "baselinr_results": settings.storage.results_table}
        return cls(settings.storage.connection, table_names=names, **kwargs)

    @classmethod
    def from_config(cls, path: str, **kwargs: Any) -> MigrationManager:
        return cls.from_settings(load_config(path), **kwargs)

    # --- wiring -----------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        return self.db.engine

    @property
    def dialect(self) -> Dialect:
        return self.db.dialect

    @property
    def chain(self) -> Chain:
        if self._chain is None:
            self._chain = load_chain(self.migrations_package)
        return self._chain

    @property
    def code_version(self) -> int:
        if self._chain is None and self.migrations_package == DEFAULT_PACKAGE:
            # status needs only the number: skip importing every migration, unless the
            # registry read as text shows a fault (a version registered twice, or not bumped):
            # then the chain is loaded and its check names the fault.
            from baselinr.storage.schema_version import CURRENT_SCHEMA_VERSION

            if registry_looks_whole(DEFAULT_PACKAGE, CURRENT_SCHEMA_VERSION):
                return CURRENT_SCHEMA_VERSION
        return self.chain.code_version

    def names(self, logical: str) -> str:
        return self.db.names(logical)

    def _history(self) -> list[HistoryRow] | None:
        return self.db.read_history()

    def _runner(self) -> Runner:
        # Imported here: status and an apply with nothing to do never run a plan.
        from baselinr.storage.migrations.runner import Runner

        return Runner(self.db, self.chain, ddl_lock_timeout=self.ddl_lock_timeout, ddl_lock_tries=self.ddl_lock_tries)

    def close(self) -> None:
        self.db.close()

    # --- status -----------------------------------------------------------------

    def status(self) -> StatusResult:
        found_rows, recorded = self.db.read_history_and_retries()
        rows = found_rows or []
        code = self.code_version
        s = planner.state_of(rows, code)
        describe = self.settings.describe()
        # The chain is handed over unloaded: an up-to-date database's status needs only the code version.
        if not s.problems and (
            adopt.unverified(rows) or adoption.may_hold_preexisting(self.db, lambda: self.chain, rows, s.state)
        ):
            # Baselinr's profiler stamped versions or made tables the engine did not run:
            # say what repair would create and record, or what stops it.
            found = adoption.adoption(self.db, self.chain, rows)
            if found is not None:
                planned, blocking = found
                return StatusResult(
                    s.current,
                    code,
                    "unadopted",
                    s.pending,
                    s.problems,
                    describe,
                    missing=[c for step in planned for c in step.created],
                    found=[f for step in planned for f in step.found],
                    blocking=[str(d) for d in blocking],
                    stamped=bool(adopt.unverified(rows)),
                )
        return StatusResult(s.current, code, s.state, s.pending, s.problems, describe, retried=journal.retried(rows, recorded))

    # --- planning ---------------------------------------------------------------

    def plan(self, target: int | None = None, *, resume: bool = False, rows: list[HistoryRow] | None = None) -> Plan:
        """What ``apply`` (or ``rollback``) to ``target`` would run."""
        if rows is None:
            rows = self._history() or []
        return planner.plan(self.chain, rows, target, self.dialect, self.names, resume=resume)

    # --- apply / rollback --------------------------------------------------------

    def apply(
        self,
        target: int | None = None,
        *,
        dry_run: bool = False,
        resume: bool = False,
        on_step: Callable[[PlannedStep], None] | None = None,
        on_retry: Callable[[LockRetry], None] | None = None,
        on_progress: Callable[[BackfillProgress], None] | None = None,
    ) -> ApplyResult:
        """Bring the database up to ``target`` (default: the code's version).

        ``on_retry`` hears of each lock timeout of a migration's DDL before its backoff,
        ``on_progress`` of each committed batch of a Python migration's ``backfill``."""
        target = self.chain.code_version if target is None else target
        if dry_run:
            plan = self._runner().up_plan(target, resume, self._history() or [])
            return ApplyResult(plan.current_version, plan.current_version, target, True, plan)
        with ExitStack() as stack:
            # The history read before the lock, on the connection that then holds the lock.
            first = None if self.db.has_engine else self.db.open_bare()
            lock_conn: Any = first if isinstance(first, DbapiConnection) else None  # the protocol of dbapi.py
            rows: Any = None if self.db.has_engine else [] if first is None else NO_QUICK_PATH
            if lock_conn is not None:
                rows = history.read_history(stack.enter_context(lock_conn))
            if isinstance(rows, list):
                # Every version up to the target applied, none above it, nothing unfinished: an
                # apply with nothing to do (the operator's Jobs and Helm hooks run it on every
                # sync) then needs neither the lock nor SQLAlchemy. Anything else, including
                # every error case, takes the locked path, which re-reads the history under it.
                # No lock is needed to say so: a concurrent runner's versions are in the table
                # only once committed, and one still at work leaves a version missing or
                # unfinished, so it is never taken for done.
                done_already = planner.already_at(self.chain, rows, target, self.dialect.name)
                if done_already is not None:
                    return ApplyResult(target, target, target, False, done_already)
            bare = rows is not NO_QUICK_PATH and self._bare_for(rows or [], target, "up")
            seen = history.applied_versions(rows or []) if rows is not NO_QUICK_PATH else None
            return self._runner().run_plan(
                "up", target, resume, on_step, on_retry, on_progress, bare=bare, lock_conn=lock_conn, seen=seen
            )

    def _bare_for(self, rows: list[HistoryRow], target: int, direction: str) -> bool:
        """Whether to run on the bare driver: SQLAlchemy is not loaded for this database
        yet, the driver can serve it, and no migration to run has Python. Decided on the
        history read before the lock; the runner re-checks the plan it makes under it."""
        if self.db.has_engine or not self.db.bare_available:
            return False
        applied = history.applied_versions(rows)
        latest = self.chain.latest  # beyond it the planner refuses, with its own message
        if direction == "up":
            todo = [m for m in self.chain.between(0, min(target, latest)) if m.version not in applied]
            return not any(m.up_python is not None for m in todo)
        top = min(max(applied, default=0), latest)
        return not any(m.down_python is not None for m in self.chain.between(min(target, top), top))

    def rollback(
        self,
        target: int,
        *,
        dry_run: bool = False,
        resume: bool = False,
        on_step: Callable[[PlannedStep], None] | None = None,
        on_retry: Callable[[LockRetry], None] | None = None,
        on_progress: Callable[[BackfillProgress], None] | None = None,
    ) -> ApplyResult:
        """Run down migrations, newest first, until the database is at ``target``;
        ``resume`` continues a rollback that was interrupted."""
        with ExitStack() as stack:
            # As in apply: the connection the history is read on first then holds the lock.
            first = None if self.db.has_engine else self.db.open_bare()
            lock_conn: Any = first if isinstance(first, DbapiConnection) else None  # the protocol of dbapi.py
            if lock_conn is not None:
                rows = history.read_history(stack.enter_context(lock_conn)) or []
            else:
                rows = self._history() or []
            plan = planner.down_plan(self.chain, rows, target, self.dialect, self.names, resume=resume, locked=False)
            if dry_run:
                return ApplyResult(plan.current_version, plan.current_version, target, True, plan)
            bare = self._bare_for(rows, target, "down")
            return self._runner().run_plan("down", target, resume, on_step, on_retry, on_progress, bare=bare, lock_conn=lock_conn)

    # --- validate, repair, baseline ------------------------------------------------

    def validate(self) -> ValidationResult:
        """Check the chain, the recorded history, checksums and the live schema."""
        from baselinr.storage.migrations import validation
        from baselinr.storage.migrations.upkeep_results import ValidationResult

        try:
            chain = self.chain
        except ChainError as exc:
            if self.migrations_package != DEFAULT_PACKAGE:
                raise  # as before: the chain's own error, exit 2
            from baselinr.storage.schema_version import CURRENT_SCHEMA_VERSION

            return ValidationResult(None, CURRENT_SCHEMA_VERSION, False, [str(exc)])
        return validation.validate(self.db, chain)

    def repair(self, *, dry_run: bool = False) -> RepairResult:
        """Forget failed or interrupted rows, once the schema was fixed by hand, and adopt
        what Baselinr's profiler made without the migrations (versions it stamped, tables
        it created): create what their migrations would have created (additive DDL only)
        and record them as applied. A refusal is decided before any change."""
        return adoption.repair(self.db, self.chain, dry_run=dry_run)

    def baseline(self, version: int, *, force: bool = False, dry_run: bool = False) -> BaselineResult:
        """Record versions 1..``version`` as applied on a database whose schema already matches it."""
        return adoption.baseline(self.db, self.chain, version, force=force, dry_run=dry_run)
