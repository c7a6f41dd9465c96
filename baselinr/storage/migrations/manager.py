"""``MigrationManager``: status, plan, apply, rollback, validate and repair.

The library API behind every ``baselinr migrate`` command; the CLI only
parses arguments and renders the result objects returned here. The manager
holds the single-runner lock for the whole of ``apply`` / ``rollback`` /
``repair``, re-reads the history once it has the lock (so a second runner
finds the work done and exits cleanly), and runs each migration in its own
transaction with its version row where the dialect has transactional DDL.
Elsewhere (MySQL, Snowflake) it records progress statement by statement, so
an interrupted or failed migration is reported, resumable and repairable.
Each migration's DDL runs under the lock guard (``guard.py``): a short lock
wait, retried with backoff, then a failure that names the blocking session.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from baselinr.config import ConnectionSettings, Settings, load_config
from baselinr.errors import (
    BaselinrError,
    DatabaseUnavailable,
    LockTimeout,
    MigrationFailed,
    UsageError,
    ValidationFailed,
)
from baselinr.storage.connection import connect_error, create_engine, first_line, open_connection, redact, run_statement
from baselinr.storage.dialects import Dialect, runner_id
from baselinr.storage.migrations import adopt, backfill, faults, history, journal
from baselinr.storage.migrations.chain import DEFAULT_PACKAGE, Chain, ChainError, load_chain
from baselinr.storage.migrations.guard import DEFAULT_LOCK_TIMEOUT, DEFAULT_TRIES, BlockerWatch, GuardSettings, backoff
from baselinr.storage.migrations.migration import CHECKSUM_ALGORITHM, Migration
from baselinr.storage.migrations.results import (
    ApplyResult,
    BackfillProgress,
    BaselineResult,
    HistoryRow,
    LockRetry,
    Plan,
    PlannedStep,
    RepairResult,
    StatusResult,
    StepResult,
    ValidationResult,
)
from baselinr.storage.version_table import FAILED, RUNNING, VERSION_TABLE_NAME

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from baselinr.storage.migrations.drift import Difference

__all__ = ["ChainError", "Migration", "MigrationManager"]

log = logging.getLogger(__name__)


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
        ddl_lock_tries: int = DEFAULT_TRIES,
    ) -> None:
        self.settings = connection
        self.lock_timeout = lock_timeout
        # How long each migration's DDL may wait for a table lock (0: no bound) and how often it is tried.
        self.ddl_lock_timeout = ddl_lock_timeout
        self.ddl_lock_tries = max(1, ddl_lock_tries)
        self.migrations_package = migrations_package
        self._names = dict(table_names or {})
        self._chain: Chain | None = None
        self._engine: Engine | None = None
        self._dialect: Dialect | None = None
        self._journal: list[tuple[int, str | None, str | None]] = []  # lock retries read with the history

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> MigrationManager:
        names = {"baselinr_runs": settings.storage.runs_table, "baselinr_results": settings.storage.results_table}
        return cls(settings.storage.connection, table_names=names, **kwargs)

    @classmethod
    def from_config(cls, path: str, **kwargs: Any) -> MigrationManager:
        return cls.from_settings(load_config(path), **kwargs)

    # --- plumbing -------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine, self._dialect = create_engine(self.settings, lock_timeout=self.lock_timeout)
        return self._engine

    @property
    def dialect(self) -> Dialect:
        if self._dialect is None:
            _ = self.engine
        assert self._dialect is not None
        return self._dialect

    @property
    def chain(self) -> Chain:
        if self._chain is None:
            self._chain = load_chain(self.migrations_package)
        return self._chain

    @property
    def code_version(self) -> int:
        if self._chain is None and self.migrations_package == DEFAULT_PACKAGE:
            # status needs only the number: skip importing every migration.
            from baselinr.storage.schema_version import CURRENT_SCHEMA_VERSION

            return CURRENT_SCHEMA_VERSION
        return self.chain.code_version

    def names(self, logical: str) -> str:
        return self._names.get(logical, logical)

    def _connect(self) -> Any:
        return open_connection(self.engine, self.settings)

    def _history(self, *, retries: bool = False) -> list[HistoryRow] | None:
        if self._engine is None:
            quick = self._quick_history(retries)
            if quick is not _NO_QUICK_PATH:
                return quick  # type: ignore[return-value]
        with self._connect() as conn:
            rows = history.read_history(conn)
            if retries and rows:
                self._journal = journal.read_retries(conn)
            if conn.in_transaction():
                conn.rollback()
            return rows

    def _bare_dialect(self) -> Dialect:
        """The dialect without creating the engine (which imports SQLAlchemy)."""
        if self._dialect is not None:
            return self._dialect
        from baselinr.storage.dialects import dialect_for

        return dialect_for(self.settings.type, self.settings.schema)

    def _quick_history(self, retries: bool = False) -> object:
        """Read the history with the bare driver: ``status`` then never
        imports SQLAlchemy, which is most of its start-up time. Not when the
        config sets engine options: only SQLAlchemy can apply (or refuse) them."""
        if set(self.settings.extra_params) - {"connect_args"}:
            return _NO_QUICK_PATH
        try:
            opened = self._bare_dialect().dbapi_connect(self.settings)
        except ModuleNotFoundError:
            return _NO_QUICK_PATH
        except Exception as exc:  # noqa: BLE001 - the driver's connect error, whatever its class
            raise connect_error(exc, self.settings) from None
        if opened is None:
            return _NO_QUICK_PATH
        conn, error = opened
        try:
            rows = history.read_history_dbapi(conn, error)
            if retries and rows:
                self._journal = journal.read_retries_dbapi(conn, error)
            return rows
        finally:
            conn.close()

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()

    # --- status -----------------------------------------------------------------

    def status(self) -> StatusResult:
        rows = self._history(retries=True)
        code = self.code_version
        rows = rows or []
        applied = history.applied_versions(rows)
        current = max(applied, default=None)
        problems = history.unfinished(rows)
        if current is None and not problems:
            state = "not_initialized"
        elif problems:
            state = "failed"
        elif current is not None and current > code:
            state = "ahead"
        elif current is not None and current < code:
            state = "behind"
        else:
            state = "up_to_date"
        pending = [v for v in range(1, code + 1) if v not in applied]
        describe = self.settings.describe()
        if not problems and (adopt.unverified(rows) or self._may_hold_preexisting(rows, state)):
            # Baselinr's profiler stamped versions or made tables the engine did not run:
            # say what repair would create and record, or what stops it.
            found = self._adoption(rows)
            if found is not None:
                planned, blocking = found
                return StatusResult(
                    current,
                    code,
                    "unadopted",
                    pending,
                    problems,
                    describe,
                    missing=[c for step in planned for c in step.created],
                    found=[f for step in planned for f in step.found],
                    blocking=[str(d) for d in blocking],
                    stamped=bool(adopt.unverified(rows)),
                )
        return StatusResult(current, code, state, pending, problems, describe, retried=journal.retried(rows, self._journal))

    def _may_hold_preexisting(self, rows: list[HistoryRow], state: str) -> bool:
        """Whether tables of unrecorded versions may exist. Looked up with the bare driver
        where it can, so that ``status`` of a database that is merely behind stays free of
        SQLAlchemy."""
        if state not in ("not_initialized", "behind"):
            return False
        sql = self._bare_dialect().table_names_sql
        if self._engine is not None or sql is None:
            return True
        try:
            opened = self._bare_dialect().dbapi_connect(self.settings)
        except Exception:  # noqa: BLE001 - the SQLAlchemy path reports the real error
            return True
        if opened is None:
            return state != "not_initialized"  # a SQLite file that does not exist holds nothing
        conn, _ = opened
        try:
            cur = conn.cursor()
            cur.execute(sql)
            tables = {str(r[0]).lower() for r in cur.fetchall()}
            cur.close()
        finally:
            conn.close()
        return bool(adopt.preexisting(rows, self.chain, tables, self.names))

    def _adoption(self, rows: list[HistoryRow]) -> tuple[list[Any], list[Difference]] | None:
        """What ``repair`` would adopt (``None``: nothing) and the differences that would stop it."""
        with self._connect() as conn:
            versions = self._versions_to_adopt(conn, rows)
            if not versions:
                return None
            planned = adopt.plan(conn, self.chain, versions, self.dialect, self.names)
            blocking = self._blocking(conn, versions[-1])
            if conn.in_transaction():
                conn.rollback()
        return planned, blocking

    def _versions_to_adopt(self, conn: Connection, rows: list[HistoryRow]) -> list[int]:
        existing = adopt.preexisting(rows, self.chain, adopt.live_tables(conn), self.names)
        versions = adopt.versions_to_adopt(rows, existing)
        self._check_adoptable(versions)
        return versions

    def _check_adoptable(self, versions: list[int]) -> None:
        if versions and versions[-1] > self.chain.latest:
            raise UsageError(
                f"The database is stamped at v{versions[-1]}, above the latest version this code has (v{self.chain.latest}).",
                hint="Upgrade Baselinr's schema toolkit.",
            )

    # --- planning ---------------------------------------------------------------

    def plan(self, target: int | None = None, *, resume: bool = False, rows: list[HistoryRow] | None = None) -> Plan:
        """What ``apply`` (or ``rollback``) to ``target`` would run."""
        if rows is None:
            rows = self._history() or []
        chain = self.chain
        target = chain.code_version if target is None else target
        if target < 0:
            raise UsageError(f"Target version must be 0 or more, got {target}")
        applied = history.applied_versions(rows)
        current = max(applied, default=None)
        base = current or 0
        if target > chain.latest:
            # Named one by one only when few: a typo like 10**20 must not build a set of them.
            if target - chain.latest <= 10:
                missing = "{" + ", ".join(str(v) for v in range(chain.latest + 1, target + 1)) + "}"
            else:
                missing = f"{{{chain.latest + 1}..{target}}}"
            raise ChainError(
                f"Missing migrations for versions: {missing}",
                hint=f"Target v{target} is above the latest version this code has (v{chain.latest}); "
                "upgrade Baselinr or lower --target.",
            )
        unfinished = {r.version: r for r in history.unfinished(rows)}
        # A rollback that was interrupted still has its version to take down.
        top = max([base, *(v for v, r in unfinished.items() if r.direction == "down")])
        if target >= top:
            gaps = [v for v in range(1, base + 1) if v not in applied and v in chain.migrations]
            steps = []
            for m in chain.between(0, target):
                if m.version in applied:
                    continue
                step = self._step(m, "up")
                # Model operations may render nothing on a dialect (v11 on Snowflake): the version is still recorded.
                if not step.statements and step.python is None and not m.operations:
                    raise UsageError(
                        f"Migration v{m.version} ({m.script or m.description}) has nothing to apply.",
                        hint="Write its up_sql (or up_python) first.",
                    )
                row = unfinished.get(m.version)
                if row is not None and resume and not step.transactional:
                    step = PlannedStep(**{**step.to_dict(), "resume_from": row.statements_done or 0})
                steps.append(step)
            if gaps:
                stamped = adopt.unverified(rows)
                raise UsageError(
                    f"Versions {_fmt(gaps)} are below the database version v{base} but not recorded as applied.",
                    hint=(
                        f"Baselinr's profiler stamped v{max(r.version for r in stamped)} without running them: run "
                        "'baselinr migrate repair' to create what is missing and record them."
                        if stamped
                        else "Run 'baselinr migrate validate' to see what is missing."
                    ),
                )
            direction = "up" if steps else "none"
            return Plan(current, target, direction, steps, self.dialect.name)
        downs = []
        for m in (chain.get(v) for v in range(top, target, -1) if v in chain.migrations):
            step = self._step(m, "down")
            row = unfinished.get(m.version)
            if row is not None and row.direction == "down" and resume and not step.transactional:
                step = PlannedStep(**{**step.to_dict(), "resume_from": row.statements_done or 0})
            downs.append(step)
        return Plan(current, target, "down", downs, self.dialect.name)

    def _step(self, m: Migration, direction: str) -> PlannedStep:
        d = self.dialect
        transactional = d.transactional_ddl if m.transactional is None else (m.transactional and d.transactional_ddl)
        if direction == "up":
            stmts = m.up_statements(d, self.names)
            fn = m.up_python
        else:
            stmts = m.down_statements(d, self.names)
            fn = m.down_python
        if m.transactional is None and any(d.needs_autocommit(s) for s in stmts):
            # e.g. CREATE INDEX CONCURRENTLY cannot run inside a transaction.
            transactional = False
        python = getattr(fn, "__qualname__", None) if fn else None
        return PlannedStep(m.version, m.description, direction, stmts, python, transactional)

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
            plan = self._up_plan(target, resume, self._history() or [])
            return ApplyResult(plan.current_version, plan.current_version, target, True, plan)
        done_already = self._already_at(target)
        if done_already is not None:
            return ApplyResult(target, target, target, False, done_already)
        with self._connect() as lock_conn, self.dialect.lock(lock_conn, self.lock_timeout), _Connections(
            self, on_retry, on_progress
        ) as conns:
            conn = conns.tx()
            try:
                with conn.begin():
                    history.ensure_table(conn, self.dialect)
                    journal.ensure(conn, self.dialect)
            except Exception as exc:
                if self.dialect.is_lock_error(exc):
                    raise self._lock_timeout() from None
                raise self._bookkeeping_failed(exc) from exc
            plan = self._up_plan(target, resume, conns.history(), conns.tx())
            done: list[StepResult] = []
            for step in plan.steps:
                if on_step is not None:
                    on_step(step)
                done.append(self._run(self.chain.get(step.version), step, conns))
        final = max([plan.current_version or 0] + [s.version for s in done]) if done else plan.current_version
        return ApplyResult(plan.current_version, final, target, False, plan, done)

    def _up_plan(self, target: int, resume: bool, rows: list[HistoryRow], conn: Connection | None = None) -> Plan:
        """The plan of an ``apply``: refused when it would go down, past an unfinished
        migration, or over tables that exist already without their version recorded."""
        plan = self.plan(target, resume=resume, rows=rows)
        if plan.direction == "down":
            raise UsageError(
                f"Target v{target} is below the database version v{plan.current_version}.",
                hint=f"Use 'baselinr migrate rollback --target {target}' to downgrade.",
            )
        self._refuse_unfinished(rows, plan, resume)
        if plan.steps:
            if conn is None:
                with self._connect() as own:
                    self._refuse_preexisting(own, rows, plan)
                    if own.in_transaction():
                        own.rollback()
            else:
                self._refuse_preexisting(conn, rows, plan)
                if conn.in_transaction():
                    conn.rollback()
        return plan

    def _refuse_preexisting(self, conn: Connection, rows: list[HistoryRow], plan: Plan) -> None:
        planned = {s.version for s in plan.steps}
        existing = adopt.preexisting(rows, self.chain, adopt.live_tables(conn), self.names)
        clash = {v: tables for v, tables in existing.items() if v in planned}
        if clash:
            v, tables = min(clash.items())
            raise UsageError(
                f"{', '.join(tables)} of v{v} already {'exist' if len(tables) > 1 else 'exists'} but v{v} is not recorded "
                "as applied (made outside the migrations, e.g. by Baselinr's profiler).",
                hint="Run 'baselinr migrate repair --dry-run' to see how it would be adopted, then "
                "'baselinr migrate repair' and 'baselinr migrate apply'.",
            )

    def _already_at(self, target: int) -> Plan | None:
        """The empty plan, when the bare driver's read of the history shows every
        version up to ``target`` applied, none above it, and nothing unfinished.

        An ``apply`` with nothing to do (the operator's Jobs and Helm hooks run
        it on every sync) then needs neither the lock nor SQLAlchemy. Anything
        else, including every error case, takes the locked path, which re-reads
        the history under the lock."""
        if self._engine is not None:
            return None
        rows = self._quick_history()
        if not isinstance(rows, list) or history.unfinished(rows) or adopt.unverified(rows):
            return None
        applied = history.applied_versions(rows)
        chain = self.chain
        if not applied or target > chain.latest or max(applied) != target:
            return None
        if any(m.version not in applied for m in chain.between(0, target)):
            return None
        return Plan(target, target, "none", [], self._bare_dialect().name)

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
        rows = self._history() or []
        plan = self.plan(target, rows=rows, resume=resume)
        if plan.direction == "up":
            raise UsageError(
                f"Target v{target} is above the database version v{plan.current_version or 0}.",
                hint=f"Use 'baselinr migrate apply --target {target}' to upgrade.",
            )
        self._check_downs(plan)
        self._refuse_unfinished([r for r in rows if r.direction == "down"], plan, resume)
        if dry_run:
            return ApplyResult(plan.current_version, plan.current_version, target, True, plan)
        with self._connect() as lock_conn, self.dialect.lock(lock_conn, self.lock_timeout), _Connections(
            self, on_retry, on_progress
        ) as conns:
            with conns.tx().begin():
                journal.ensure(conns.tx(), self.dialect)
            rows = conns.history()
            plan = self.plan(target, rows=rows, resume=resume)
            if plan.direction == "up":
                plan = Plan(plan.current_version, target, "none", [], plan.dialect)
            self._check_downs(plan)
            self._refuse_unfinished([r for r in rows if r.direction == "down"], plan, resume)
            done = []
            for step in plan.steps:
                if on_step is not None:
                    on_step(step)
                done.append(self._run(self.chain.get(step.version), step, conns))
        return ApplyResult(plan.current_version, target if done else plan.current_version, target, False, plan, done)

    def _check_downs(self, plan: Plan) -> None:
        missing = [s.version for s in plan.steps if not self.chain.get(s.version).has_down]
        if missing:
            raise UsageError(
                f"Cannot roll back: {', '.join(f'v{v}' for v in missing)} "
                f"{'has' if len(missing) == 1 else 'have'} no down migration (down_sql or down_python).",
                hint=f"Restore a backup taken before v{min(missing)} instead, or add a down migration.",
            )

    def _refuse_unfinished(self, rows: list[HistoryRow], plan: Plan, resume: bool) -> None:
        planned = {s.version: s for s in plan.steps}
        for row in history.unfinished(rows):
            step = planned.get(row.version)
            if step is not None and step.direction == row.direction and (step.transactional or resume):
                continue
            how = "was interrupted" if row.status == RUNNING else "failed"
            if row.direction == "down":
                how += " while being rolled back"
            progress = ""
            if row.statements_total is not None:
                progress = f" after {row.statements_done or 0} of {row.statements_total} statements"
            reason = f": {row.error_message}" if row.error_message else ""
            raise MigrationFailed(
                f"Migration v{row.version} {how}{progress}{reason}.",
                version=row.version,
                hint="The database may be partly migrated. Either finish or undo that change by hand and run "
                f"'baselinr migrate repair', or run '{row.resume_command}' to continue from statement "
                f"{(row.statements_done or 0) + 1}.",
            )

    def _guard(self, m: Migration) -> GuardSettings:
        timeout = self.ddl_lock_timeout if m.lock_timeout is None else m.lock_timeout
        if timeout > 0:
            timeout = self.dialect.lock_wait_seconds(timeout)  # what the server will really wait
        return GuardSettings(timeout, self.ddl_lock_tries, m.statement_timeout)

    def _run(self, m: Migration, step: PlannedStep, conns: _Connections) -> StepResult:
        fn = m.up_python if step.direction == "up" else m.down_python
        started = time.monotonic()
        retries: list[LockRetry] = []
        guard = self._guard(m)
        if step.transactional:
            ran = self._run_transactional(
                conns.tx(), m, step, fn, started, replace=m.version in conns.recorded, guard=guard, conns=conns, retries=retries
            )
        else:
            ran = self._run_tracked(conns.auto(), m, step, fn, started, guard=guard, conns=conns, retries=retries)
        ms = int((time.monotonic() - started) * 1000)
        return StepResult(m.version, m.description, step.direction, ms, skipped=not ran, retries=retries)

    def _lock_wait(
        self,
        exc: BaseException,
        m: Migration,
        step: PlannedStep,
        statement: int,
        attempt: int,
        guard: GuardSettings,
        watch: BlockerWatch,
        conns: _Connections,
        retries: list[LockRetry],
    ) -> LockRetry | None:
        """After ``exc``: the retry to make (its backoff slept, ``on_retry`` told) if it was a lock
        timeout of the guard with tries left; ``None`` for any other error. Out of tries:
        ``_LockGaveUp``."""
        if guard.lock_timeout <= 0 or not self.dialect.is_lock_wait_timeout(exc):
            return None
        retry = LockRetry(
            m.version,
            step.direction,
            statement,
            attempt,
            guard.tries,
            backoff(attempt) if attempt < guard.tries else 0.0,
            guard.lock_timeout,
            watch.take(),
            self.dialect.name,
        )
        conns.remember(retry)
        if attempt >= guard.tries:
            raise _LockGaveUp(retry) from exc
        retries.append(retry)
        log.info("v%s: lock timeout at statement %s, try %s of %s", m.version, statement, attempt, guard.tries)
        if conns.on_retry is not None:
            conns.on_retry(retry)
        time.sleep(retry.delay_seconds)
        return retry

    def _run_transactional(
        self,
        conn: Connection,
        m: Migration,
        step: PlannedStep,
        fn: Callable[[Any], None] | None,
        started: float,
        *,
        replace: bool,
        guard: GuardSettings,
        conns: _Connections,
        retries: list[LockRetry],
    ) -> bool:
        watch = conns.watch(conn, guard)
        attempt = 1
        while True:
            current = 0
            try:
                with conn.begin():
                    # Another runner may have done it while we waited (SQLite
                    # serialises per migration with BEGIN IMMEDIATE). Under a lock
                    # held for the whole run, the history read after taking it is
                    # still true, so the check would only cost a round trip.
                    exclusive = self.dialect.exclusive_lock
                    if not exclusive and history.is_applied(conn, m.version) == (step.direction == "up"):
                        return False
                    for sql in self.dialect.guard_statements(
                        conn, guard.lock_timeout, guard.statement_timeout, in_transaction=True
                    )[0]:
                        conn.exec_driver_sql(sql)
                    for number, stmt in enumerate(step.statements, 1):
                        current = number
                        with watch.watching():
                            run_statement(conn, stmt)
                    current = 0
                    if fn is not None:
                        with watch.watching(), backfill.inside_transaction(m.version):
                            fn(conn)
                    journal.start_run(conn, m.version, conns.run_id, resuming=False)
                    if step.direction == "up":
                        history.record(
                            conn,
                            version=m.version,
                            status="applied",
                            description=m.description,
                            script=m.script,
                            checksum=m.checksum(self.dialect, self.names),
                            algorithm=CHECKSUM_ALGORITHM,
                            applied_by=runner_id(),
                            execution_time_ms=int((time.monotonic() - started) * 1000),
                            statements_done=len(step.statements),
                            statements_total=len(step.statements),
                            replace=replace or not exclusive,
                        )
                    else:
                        history.delete(conn, m.version)
            except BaselinrError:
                raise
            except Exception as exc:
                # The transaction is rolled back already: a lock timeout tries it again from the start.
                try:
                    waited = self._lock_wait(exc, m, step, current, attempt, guard, watch, conns, retries)
                except _LockGaveUp as gave_up:
                    raise self._lock_failed(m, step, gave_up.retry, rolled_back=True) from exc
                if waited is None:
                    raise self._failed(m, step, current, exc, rolled_back=True) from exc
                attempt += 1
                continue
            return True

    def _run_tracked(
        self,
        conn: Connection,
        m: Migration,
        step: PlannedStep,
        fn: Callable[[Any], None] | None,
        started: float,
        *,
        guard: GuardSettings,
        conns: _Connections,
        retries: list[LockRetry],
    ) -> bool:
        """Run ``step`` statement by statement where DDL commits on its own.

        Before each statement the row holds how many are done and a checksum of
        the live schema (tables, columns, indexes) at that moment. A kill after
        a statement committed but before its progress was written leaves the
        count one behind; ``--resume`` then compares the live schema with the
        recorded one and, if it changed, counts that statement as done instead
        of running it again. Where the dialect allows, a statement and its
        progress row commit together (DML is then never run twice). A
        statement that times out waiting for its lock is tried again, alone:
        those before it are done and recorded."""
        d = self.dialect
        where = f"v{m.version}:{step.direction}"
        resuming = history.status_of(conn, m.version) in (RUNNING, FAILED)
        if history.is_applied(conn, m.version) == (step.direction == "up") and not resuming:
            return False
        total = len(step.statements)
        index = step.resume_from
        try:
            if not resuming:
                history.record(
                    conn,
                    version=m.version,
                    status=RUNNING,
                    description=m.description + (" (rollback)" if step.direction == "down" else ""),
                    script=m.script,
                    checksum=d.schema_checksum(conn),
                    algorithm=history.marker(step.direction),
                    applied_by=runner_id(),
                    statements_done=0,
                    statements_total=total,
                )
                journal.start_run(conn, m.version, conns.run_id, resuming=False)
            else:
                index = self._past_in_flight(conn, m.version, index, total, step.direction)
                history.set_status(conn, m.version, RUNNING)
        except Exception as exc:
            raise self._bookkeeping_failed(exc, m.version) from exc
        faults.kill_point(f"{where}:before-statements")
        first = index
        if not d.guards_tracked:
            guard = GuardSettings(0.0, guard.tries, None)
        sets, resets = d.guard_statements(conn, guard.lock_timeout, guard.statement_timeout, in_transaction=False)
        watch = conns.watch(conn, guard)
        try:
            for sql in sets:
                conn.exec_driver_sql(sql)
            for index in range(first, total):
                attempt = 1
                while True:
                    try:
                        with watch.watching(), d.tracked_transaction(conn):
                            run_statement(conn, step.statements[index])
                            faults.kill_point(f"{where}:statement-{index + 1}:before-progress")
                            history.progress(conn, m.version, index + 1, d.schema_checksum(conn), step.direction)
                    except Exception as exc:
                        if self._lock_wait(exc, m, step, index + 1, attempt, guard, watch, conns, retries) is None:
                            raise
                        attempt += 1
                        continue
                    break
                faults.kill_point(f"{where}:statement-{index + 1}:after-progress")
            index = total
            for sql in resets:
                conn.exec_driver_sql(sql)
            resets = []
            if fn is not None:
                # Python steps (usually DML) get a transaction of their own,
                # which also records the outcome: a kill cannot run them twice.
                with backfill.batches(self._batches(m, step, conns, retries)), self._connect() as py_conn, py_conn.begin():
                    fn(py_conn)
                    self._finish_tracked(py_conn, m, step, started)
                    faults.kill_point(f"{where}:python:before-commit")
                faults.kill_point(f"{where}:python:after-commit")
                return True
        except Exception as exc:
            gave_up = exc.retry if isinstance(exc, _LockGaveUp) else None
            cause = exc.__cause__ if gave_up is not None and exc.__cause__ is not None else exc
            message = redact(first_line(getattr(cause, "orig", None) or cause), self.settings)
            if gave_up is not None:
                message = f"gave up after {gave_up.tries} lock timeouts, held by {gave_up.held_by}: {message}"
            try:
                for sql in resets:
                    conn.exec_driver_sql(sql)
                history.fail(conn, m.version, f"statement {index + 1}: {message}" if index < total else message)
            except Exception:
                log.debug("could not record the failure of v%s", m.version, exc_info=True)
            if gave_up is not None:
                raise self._lock_failed(m, step, gave_up, rolled_back=False) from cause
            raise self._failed(m, step, index + 1 if index < total else 0, exc, rolled_back=False) from exc
        faults.kill_point(f"{where}:before-finish")
        self._finish_tracked(conn, m, step, started)
        return True

    def _batches(self, m: Migration, step: PlannedStep, conns: _Connections, retries: list[LockRetry]) -> backfill.Batches:
        """How a tracked migration's backfills commit: their own connection, its guard, retries as its DDL's."""
        guard = self._guard(m)

        def lock_wait(exc: BaseException, attempt: int, watch: BlockerWatch) -> bool:
            return self._lock_wait(exc, m, step, 0, attempt, guard, watch, conns, retries) is not None

        def watch(conn: Connection, guard: GuardSettings) -> BlockerWatch:
            # Not conns.watch: its sessions are cached by connection id, and each backfill opens a new one.
            session = self.dialect.session_id(conn) if guard.lock_timeout > 0 else None
            return BlockerWatch(self._connect, self.dialect, session, guard.lock_timeout)

        return backfill.Batches(
            m.version, step.direction, conns.run_id, self._connect, self.dialect, guard, self.names, lock_wait, watch,
            conns.on_progress,
        )

    def _finish_tracked(self, conn: Connection, m: Migration, step: PlannedStep, started: float) -> None:
        if step.direction == "up":
            history.finish(
                conn,
                m.version,
                checksum=m.checksum(self.dialect, self.names),
                algorithm=CHECKSUM_ALGORITHM,
                execution_time_ms=int((time.monotonic() - started) * 1000),
            )
        else:
            history.delete(conn, m.version)

    def _past_in_flight(self, conn: Connection, version: int, done: int, total: int, direction: str) -> int:
        """Where a resume starts: after ``done`` statements, or one further when
        the run was interrupted (not failed) and the live schema no longer is the
        one recorded before the next statement, i.e. that statement committed."""
        recorded = history.in_flight_schema(conn, version)
        if done >= total or recorded is None:
            return done
        live = self.dialect.schema_checksum(conn)
        if live is None or live == recorded:
            return done
        history.progress(conn, version, done + 1, live, direction)
        log.info("v%s: statement %s had taken effect before the interruption; not running it again", version, done + 1)
        return done + 1

    def _bookkeeping_failed(self, exc: BaseException, version: int = 0) -> BaselinrError:
        """Creating or writing the version table failed (e.g. no CREATE or INSERT
        privilege): a migration failure (exit 4) naming the database's reason.
        A connection the server dropped stays a connection error (exit 3)."""
        if isinstance(exc, BaselinrError):
            return exc
        detail = redact(first_line(getattr(exc, "orig", None) or exc), self.settings)
        if getattr(exc, "connection_invalidated", False):
            return DatabaseUnavailable(f"Lost the connection to {self.settings.describe()}: {detail}")
        return MigrationFailed(
            f"Cannot write {VERSION_TABLE_NAME}: {detail}",
            version=version,
            hint="For a permission error: the configured user needs the privileges to create and alter tables "
            "and to write that table.",
        )

    def _lock_timeout(self) -> LockTimeout:
        return LockTimeout(
            f"Timed out after {self.lock_timeout:g}s waiting for the migration lock: another runner is writing.",
            hint="Wait for it to finish, or raise --lock-timeout.",
        )

    def _lock_failed(self, m: Migration, step: PlannedStep, retry: LockRetry, *, rolled_back: bool) -> MigrationFailed:
        """The guard gave up: the migration failed (exit 4), naming who held the lock."""
        where = f" at statement {retry.statement} of {len(step.statements)}" if retry.statement else ""
        if step.direction == "down":
            where = " (rollback)" + where
        message = (
            f"Migration v{m.version}{where} gave up after {retry.tries} tries, each waiting "
            f"{retry.lock_timeout:g}s for a lock held by {retry.held_by}."
        )
        if rolled_back:
            hint = "Its transaction was rolled back; the database is unchanged by this version."
            again = "run it again"
        else:
            resume = HistoryRow(m.version, FAILED, direction=step.direction).resume_command
            if retry.statement:
                hint = f"Statements before {retry.statement} are done and recorded."
                again = f"run '{resume}' to continue at statement {retry.statement}"
            else:
                hint = "Its statements and the batches its backfill committed are done and recorded."
                again = f"run '{resume}' to continue after the last committed batch"
        hint += f" Let that session finish (or end it), then {again}; or raise --ddl-lock-timeout or --ddl-lock-tries."
        return MigrationFailed(message, version=m.version, hint=hint)

    def _failed(self, m: Migration, step: PlannedStep, statement: int, exc: BaseException, *, rolled_back: bool) -> BaselinrError:
        detail = redact(first_line(getattr(exc, "orig", None) or exc), self.settings)
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
                f"Lost the connection to {self.settings.describe()} during migration v{m.version}{where}: {detail}",
                hint=after[0].upper() + after[1:],
            )
        if rolled_back:
            hint = (
                "Its transaction was rolled back; the database is unchanged by this version. Fix the migration and apply again."
            )
        else:
            hint = (
                f"The database may be partly migrated ({self.dialect.name} DDL is not transactional); "
                "the failure is recorded. Fix it, then run 'baselinr migrate apply --resume' "
                "or undo the change by hand and run 'baselinr migrate repair'."
            )
        return MigrationFailed(f"Migration v{m.version}{where} failed: {detail}", version=m.version, hint=hint)

    # --- validate ----------------------------------------------------------------

    def validate(self) -> ValidationResult:
        """Check the chain, the recorded history, checksums and the live schema."""
        errors: list[str] = []
        warnings: list[str] = []
        try:
            chain = self.chain
        except ChainError as exc:
            return ValidationResult(None, self.code_version, False, [str(exc)])
        code = chain.code_version
        from baselinr.storage import schema_version

        if chain.package == DEFAULT_PACKAGE:
            missing_history = [v for v in chain.migrations if v not in schema_version.VERSION_HISTORY]
            if missing_history:
                warnings.append(f"VERSION_HISTORY has no entry for {_fmt(missing_history)}")
        with self._connect() as conn:
            rows = history.read_history(conn)
            if not rows and self._versions_to_adopt(conn, []):
                return ValidationResult(
                    None,
                    code,
                    False,
                    [
                        "Baselinr's tables exist but no version is recorded (left by Baselinr's profiler): run "
                        "'baselinr migrate repair' to adopt them, then 'baselinr migrate apply'"
                    ],
                    warnings,
                )
            if rows is None:
                return ValidationResult(
                    None, code, False, ["Schema version not initialized: run 'baselinr migrate apply'"], warnings
                )
            applied = history.applied_versions(rows)
            current = max(applied, default=None)
            for row in history.unfinished(rows):
                how = "was interrupted" if row.status == RUNNING else "failed"
                how += " while being rolled back" if row.direction == "down" else ""
                errors.append(
                    f"Migration v{row.version} {how}"
                    + (f" after {row.statements_done or 0} of {row.statements_total} statements" if row.statements_total else "")
                    + (f": {row.error_message}" if row.error_message else "")
                    + f" (run '{row.resume_command}', or fix by hand and run 'baselinr migrate repair')"
                )
            if current is None:
                errors.append("No applied version recorded: run 'baselinr migrate apply'")
                return ValidationResult(None, code, False, errors, warnings)
            if current > code:
                errors.append(f"Database schema is ahead (v{current} > v{code}): update Baselinr to match")
            elif current < code:
                warnings.append(f"Database schema is behind (v{current} < v{code}): run 'baselinr migrate apply --target {code}'")
            stamped = adopt.unverified(rows)
            gaps = [v for v in range(1, current + 1) if v not in applied]
            if stamped:
                errors.append(
                    f"Versions {_fmt(self._versions_to_adopt(conn, rows))} are not verified: Baselinr's profiler "
                    f"{adopt.note(stamped)} without running the migrations. Run 'baselinr migrate repair' to create "
                    "what is missing and record them (or 'baselinr migrate baseline --version N' if the schema is complete)"
                )
            elif gaps:
                errors.append(f"Versions {_fmt(gaps)} are not recorded as applied below v{current}")
            for row in rows:
                if row.status != "applied" or row.version not in chain.migrations or row in stamped:
                    continue
                m = chain.get(row.version)
                if row.checksum is None:
                    warnings.append(f"v{row.version} has no recorded checksum (recorded by another tool)")
                elif row.checksum != m.checksum(self.dialect, self.names):
                    errors.append(
                        f"v{row.version} ({m.script or m.description}) was modified after it was applied: "
                        "checksum differs. Revert the edit and add a new migration instead."
                    )
            from baselinr.storage.migrations.drift import compare, split

            model, exact = chain.model_at(min(current, code))
            differences = compare(conn, model, exact, self.dialect, self.names)
            if stamped:
                # The profiler's narrower version table is widened by repair before anything is written.
                differences = [d for d in differences if not adopt.is_version_table_column(d)]
            live_errors, live_warnings = split(differences)
            errors += live_errors
            warnings += live_warnings
            if conn.in_transaction():
                conn.rollback()
        return ValidationResult(current, code, not errors, errors, warnings)

    # --- repair -------------------------------------------------------------------

    def repair(self, *, dry_run: bool = False) -> RepairResult:
        """Forget failed or interrupted rows, once the schema was fixed by hand, and adopt
        what Baselinr's profiler made without the migrations (versions it stamped, tables
        it created): create what their migrations would have created (additive DDL only)
        and record them as applied. A refusal is decided before any change."""
        rows = self._history() or []
        bad = [r for r in rows if r.status in (RUNNING, FAILED)]
        stamped = adopt.unverified(rows)
        found = self._adoption(rows)
        if found is not None:
            self._refuse_blocking(found[1], found[0][-1].version)
        planned = found[0] if found is not None else []
        if dry_run:
            return RepairResult(True, bad, planned, stamped)
        if not bad and not planned:
            return RepairResult(False, bad)
        with self._connect() as lock_conn, self.dialect.lock(lock_conn, self.lock_timeout):
            if bad:
                with self._connect() as conn:
                    with conn.execution_options(baselinr_write=True).begin():
                        for r in bad:
                            history.delete(conn, r.version)
            planned = self._adopt()
        return RepairResult(False, bad, planned, stamped)

    def _blocking(self, conn: Connection, version: int) -> list[Difference]:
        """Differences from ``version``'s model that repair can neither create nor rebuild."""
        from baselinr.storage.migrations.drift import compare

        model, exact = self.chain.model_at(version)
        return adopt.blocking(compare(conn, model, exact, self.dialect, self.names))

    def _refuse_blocking(self, blocking: list[Difference], version: int) -> None:
        if blocking:
            raise ValidationFailed(
                f"Cannot adopt the database at v{version}: {'; '.join(map(str, blocking))}.",
                hint="Nothing was changed. These are not missing objects that repair could create: fix them by hand, "
                "then run 'baselinr migrate repair' again (or 'baselinr migrate baseline --version N --force').",
            )

    def _adopt(self) -> list[Any]:
        """Under the lock: re-check, widen the version table, create what is missing, record each version."""
        transactional = self.dialect.transactional_ddl
        at = 0
        with self._connect() as conn:
            if transactional:
                conn = conn.execution_options(baselinr_write=True)
                conn.begin()
            else:
                conn.execution_options(isolation_level="AUTOCOMMIT")
            try:
                rows = history.read_history(conn) or []
                stamped = adopt.unverified(rows)
                versions = self._versions_to_adopt(conn, rows)
                if versions:
                    # Before the first DDL: on a refusal nothing may have changed.
                    self._refuse_blocking(self._blocking(conn, versions[-1]), versions[-1])
                planned = adopt.plan(conn, self.chain, versions, self.dialect, self.names)
                history.ensure_table(conn, self.dialect)
                for step in planned:
                    at = step.version
                    started = time.monotonic()
                    for stmt in step.statements:
                        run_statement(conn, stmt)
                    m = self.chain.get(step.version)
                    what = f"created {', '.join(step.created)}" if step.created else "already present"
                    replaced = [r for r in stamped if r.version == step.version]
                    history.record(
                        conn,
                        version=step.version,
                        status="applied",
                        description=f"{m.description} [adopted: {what}"
                        + (f"; Baselinr's profiler {adopt.note(replaced)}" if replaced else "")
                        + "]",
                        script=m.script,
                        checksum=m.checksum(self.dialect, self.names),
                        algorithm=CHECKSUM_ALGORITHM,
                        applied_by=f"{adopt.ADOPTED_BY} {runner_id()}",
                        execution_time_ms=int((time.monotonic() - started) * 1000),
                        statements_done=len(step.statements),
                        statements_total=len(step.statements),
                    )
                if transactional:
                    conn.commit()
            except BaselinrError:
                raise
            except Exception as exc:
                detail = redact(first_line(getattr(exc, "orig", None) or exc), self.settings)
                raise MigrationFailed(
                    f"Adopting the database failed at v{at}: {detail}",
                    version=at,
                    hint="Nothing was recorded for the version that failed"
                    + ("; its transaction was rolled back." if transactional else "; run 'baselinr migrate repair' again."),
                ) from exc
            finally:
                if transactional and conn.in_transaction():
                    conn.rollback()
        return planned

    # --- baseline ------------------------------------------------------------------

    def baseline(self, version: int, *, force: bool = False, dry_run: bool = False) -> BaselineResult:
        """Record versions 1..``version`` as applied on a database whose schema already matches it."""
        chain = self.chain
        if not 1 <= version <= chain.latest:
            raise UsageError(f"Baseline version must be between 1 and {chain.latest}, got {version}")
        rows = self._history() or []
        self._refuse_managed(rows)
        differences = self._differences(version)
        if differences and not force:
            raise ValidationFailed(
                f"The schema does not match v{version}: {'; '.join(differences)}.",
                hint="Run 'baselinr migrate repair' to create what is missing, or pass --force to record it anyway.",
            )
        stamped = adopt.unverified(rows)
        recorded = list(range(1, version + 1))
        if dry_run:
            return BaselineResult(version, True, recorded, differences, force, stamped)
        with self._connect() as lock_conn, self.dialect.lock(lock_conn, self.lock_timeout):
            with self._connect() as conn:
                with conn.execution_options(baselinr_write=True).begin():
                    try:
                        history.ensure_table(conn, self.dialect)
                    except Exception as exc:
                        raise self._bookkeeping_failed(exc) from exc
                    rows = history.read_history(conn) or []
                    self._refuse_managed(rows)
                    for r in rows:
                        history.delete(conn, r.version)
                    for v in recorded:
                        m = chain.get(v)
                        extra = " (forced)" if differences else ""
                        if v == version and stamped:
                            extra += f"; Baselinr's profiler {adopt.note(stamped)}"
                        history.record(
                            conn,
                            version=v,
                            status="applied",
                            description=f"{m.description} [baseline{extra}]",
                            script=m.script,
                            checksum=m.checksum(self.dialect, self.names),
                            algorithm=CHECKSUM_ALGORITHM,
                            applied_by=f"{adopt.BASELINED_BY} {runner_id()}",
                            replace=False,
                        )
        return BaselineResult(version, False, recorded, differences, force, stamped)

    def _refuse_managed(self, rows: list[HistoryRow]) -> None:
        managed = sorted(adopt.verified_versions(rows) | {r.version for r in history.unfinished(rows)})
        if managed:
            raise UsageError(
                f"The database already records migrations {_fmt(managed)} run by this tool.",
                hint="Baseline is for databases it has never migrated; use 'baselinr migrate apply' or 'rollback'.",
            )

    def _differences(self, version: int) -> list[str]:
        from baselinr.storage.migrations.drift import compare

        model, exact = self.chain.model_at(version)
        with self._connect() as conn:
            differences = compare(conn, model, exact, self.dialect, self.names)
            if conn.in_transaction():
                conn.rollback()
        return [
            str(d)
            for d in differences
            if d.severity == "error" and not adopt.is_version_table_column(d) and d.table.lower() != VERSION_TABLE_NAME
        ]


_NO_QUICK_PATH = object()


class _LockGaveUp(Exception):
    """Internal: the guard ran out of tries (``retry`` is the last timeout)."""

    def __init__(self, retry: LockRetry) -> None:
        super().__init__(f"v{retry.version}: gave up waiting for a lock")
        self.retry = retry


class _Connections:
    """The connections one apply or rollback reuses: one for migrations that
    run in a transaction, one in autocommit for tracked (non-atomic) ones."""

    def __init__(
        self,
        manager: MigrationManager,
        on_retry: Callable[[LockRetry], None] | None = None,
        on_progress: Callable[[BackfillProgress], None] | None = None,
    ) -> None:
        self._manager = manager
        self.on_progress = on_progress
        self.run_id = uuid.uuid4().hex  # this apply's (or rollback's) rows in the journal
        self._remembered = 0
        self._stack = ExitStack()
        self._tx: Connection | None = None
        self._auto: Connection | None = None
        self.recorded: set[int] = set()  # versions with a row, at the last read
        self.on_retry = on_retry
        self._sessions: dict[int, int | None] = {}

    def watch(self, conn: Connection, guard: GuardSettings) -> BlockerWatch:
        """Who blocks ``conn`` while a statement of it waits (nothing is watched without a lock bound)."""
        session = None
        if guard.lock_timeout > 0:
            if id(conn) not in self._sessions:
                self._sessions[id(conn)] = self._manager.dialect.session_id(conn)
                if conn.in_transaction():
                    conn.rollback()
            session = self._sessions[id(conn)]
        return BlockerWatch(self._manager._connect, self._manager.dialect, session, guard.lock_timeout)

    def remember(self, retry: LockRetry) -> None:
        """Record a lock timeout in the journal at once, for ``status`` (a failure to write it is only logged)."""
        self._remembered += 1
        try:
            journal.record_retry(self._manager._connect, self.run_id, self._remembered, retry)
        except Exception:
            log.warning("v%s: could not record a lock retry in the journal", retry.version, exc_info=True)

    def __enter__(self) -> _Connections:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def tx(self) -> Connection:
        if self._tx is None:
            conn = self._stack.enter_context(self._manager._connect())
            self._tx = conn.execution_options(baselinr_write=True)
        return self._tx

    def auto(self) -> Connection:
        if self._auto is None:
            conn = self._stack.enter_context(self._manager._connect())
            conn.execution_options(isolation_level="AUTOCOMMIT")
            self._auto = conn
        return self._auto

    def history(self) -> list[HistoryRow]:
        conn = self.tx()
        rows = history.read_history(conn) or []
        if conn.in_transaction():
            conn.rollback()
        self.recorded = {r.version for r in rows}
        return rows


def _fmt(versions: list[int]) -> str:
    return "{" + ", ".join(str(v) for v in versions) + "}"
