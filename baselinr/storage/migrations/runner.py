"""The runner: execute a plan's steps under the single-runner lock.

Called by the ``MigrationManager`` facade for ``apply`` and ``rollback``. It
takes the lock (``Database.locked``), re-reads the history under it (so a
second runner finds the work done), re-plans with the pure planner and runs
each step. The connections are SQLAlchemy's, or the bare driver's when no
step has Python (``needs_sqlalchemy``): the same code runs on both, through
the few methods ``dbapi.py`` describes. Each step runs in one transaction with its version row where the dialect has
transactional DDL (``_run_transactional``), elsewhere statement by statement
with its progress recorded (``tracked.run_tracked``). Each step's DDL runs
under the lock guard (``guard.py``): a lock timeout is retried after a
backoff, and after the last try the run fails naming the blocking session.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from baselinr import tracing
from baselinr.errors import BaselinrError
from baselinr.storage.connection import run_statement
from baselinr.storage.dbapi import defer
from baselinr.storage.dialects import runner_id
from baselinr.storage.migrations import adopt, backfill, failures, history, journal, planner
from baselinr.storage.migrations.chain import Chain
from baselinr.storage.migrations.failures import LockGaveUp
from baselinr.storage.migrations.guard import BlockerWatch, GuardSettings, backoff
from baselinr.storage.migrations.migration import CHECKSUM_ALGORITHM, Migration
from baselinr.storage.migrations.results import (
    ApplyResult,
    BackfillProgress,
    HistoryRow,
    LockRetry,
    Plan,
    PlannedStep,
    StepResult,
)
from baselinr.storage.migrations.tracked import run_tracked

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from baselinr.storage.database import Database

log = logging.getLogger(__name__)


class Connections:
    """The connections one apply or rollback reuses: one for migrations that
    run in a transaction, one in autocommit for tracked (non-atomic) ones."""

    def __init__(
        self,
        db: Database,
        on_retry: Callable[[LockRetry], None] | None = None,
        on_progress: Callable[[BackfillProgress], None] | None = None,
        *,
        bare: bool = False,
        run_id: str | None = None,
    ) -> None:
        self.db = db
        self.bare = bare
        self.connect = db.connector(bare=bare)
        self.on_progress = on_progress
        self.run_id = run_id or uuid.uuid4().hex  # this apply's (or rollback's) rows in the journal
        self._remembered = 0
        self._stack = ExitStack()
        self._tx: Connection | None = None
        self._auto: Connection | None = None
        self.recorded: set[int] = set()  # versions with a row, at the last read
        self.applied: set[int] = set()  # versions applied, at the read under the lock
        # What the journal holds per version, read under the lock (None: not read, may hold anything).
        self.journal: dict[int, set[str]] | None = None
        self.on_retry = on_retry
        self._sessions: dict[int, int | None] = {}
        # When the first try of a (version, direction, statement) began, for the guard's time budget.
        self.first_try: dict[tuple[int, str, int], float] = {}

    def watch(self, conn: Connection, guard: GuardSettings) -> BlockerWatch:
        """Who blocks ``conn`` while a statement of it waits (nothing is watched without a lock bound)."""
        session = None
        if guard.lock_timeout > 0:
            if id(conn) not in self._sessions:
                began = not conn.in_transaction()
                self.session_of(conn)
                if began and conn.in_transaction():
                    conn.rollback()
            session = self._sessions[id(conn)]
        return BlockerWatch(self.connect, self.db.dialect, session, guard.lock_timeout)

    def session_of(self, conn: Connection) -> None:
        """Learn ``conn``'s server session (in the caller's transaction, if one is open)."""
        if id(conn) not in self._sessions:
            self._sessions[id(conn)] = self.db.dialect.session_id(conn)

    def journal_kinds(self, version: int) -> set[str] | None:
        """The kinds of journal rows ``version`` can have from earlier runs; ``None``: unknown
        (not read, or a lock that does not keep other runners out between migrations)."""
        if self.journal is None or not self.db.dialect.exclusive_lock:
            return None
        return self.journal.get(version, set())

    def remember(self, retry: LockRetry) -> None:
        """Record a lock timeout in the journal at once, for ``status`` (a failure to write it is only logged)."""
        if self.journal is not None:
            # The DELETE of earlier runs' retries spares this run's own, so this needs no DELETE
            # either; counted all the same, so the journal rows a version has are never undercounted.
            self.journal.setdefault(retry.version, set()).add(journal.LOCK_RETRY)
        self._remembered += 1
        try:
            journal.record_retry(self.connect, self.run_id, self._remembered, retry)
        except Exception:
            log.warning("v%s: could not record a lock retry in the journal", retry.version, exc_info=True)

    def __enter__(self) -> Connections:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def tx(self) -> Connection:
        if self._tx is None:
            conn = self._stack.enter_context(self.connect())
            self._tx = conn.execution_options(baselinr_write=True)
        return self._tx

    def auto(self) -> Connection:
        if self._auto is None:
            conn = self._stack.enter_context(self.connect())
            conn.execution_options(isolation_level="AUTOCOMMIT")
            self._auto = conn
        return self._auto

    def adopt(self, other: Connections) -> None:
        """Take over what ``other`` read under the lock (its history and journal)."""
        self.recorded = set(other.recorded)
        self.journal = None if other.journal is None else {v: set(k) for v, k in other.journal.items()}


def needs_sqlalchemy(chain: Chain, plan: Plan) -> bool:
    """Whether a step of ``plan`` runs Python (which is handed a SQLAlchemy connection)."""
    for step in plan.steps:
        m = chain.get(step.version)
        if (m.up_python if step.direction == "up" else m.down_python) is not None:
            return True
    return False


class Runner:
    """Runs plans of one chain against one database, under the lock and the DDL lock guard."""

    def __init__(self, db: Database, chain: Chain, *, ddl_lock_timeout: float, ddl_lock_tries: int | None) -> None:
        self.db = db
        self.chain = chain
        self.ddl_lock_timeout = ddl_lock_timeout
        self.ddl_lock_tries = ddl_lock_tries

    # --- plans ----------------------------------------------------------------

    def up_plan(self, target: int, resume: bool, rows: list[HistoryRow], conn: Connection | None = None) -> Plan:
        """The plan of an ``apply``: refused when it would go down, past an unfinished
        migration, or over tables that exist already without their version recorded."""
        plan = planner.up_plan(self.chain, rows, target, self.db.dialect, self.db.names, resume=resume)
        if plan.steps:
            if conn is not None:  # the caller's, in its transaction
                tables = adopt.live_tables(conn, self.db.dialect)
            else:
                with self.db.connect() as live:
                    tables = adopt.live_tables(live, self.db.dialect)
                    if live.in_transaction():
                        live.rollback()
            planner.refuse_preexisting(plan, adopt.preexisting(rows, self.chain, tables, self.db.names))
        return plan

    # --- apply / rollback ---------------------------------------------------------

    def run_plan(
        self,
        direction: str,
        target: int,
        resume: bool,
        on_step: Callable[[PlannedStep], None] | None,
        on_retry: Callable[[LockRetry], None] | None,
        on_progress: Callable[[BackfillProgress], None] | None = None,
        *,
        bare: bool = False,
        lock_conn: Connection | None = None,
        seen: set[int] | None = None,
    ) -> ApplyResult:
        """Apply (``direction`` "up") or roll back ("down") to ``target`` under the lock, on
        the bare driver's connections if ``bare``; the lock on ``lock_conn`` if given. ``seen``:
        the versions applied at the caller's read before the lock, if it made one.

        Connections: the lock keeps one of its own (``lock_conn``, the one ``apply`` read the
        history on first, or a new one), never one that runs migrations: a migration's SQL
        may end its session's state (``DISCARD ALL``, ``pg_advisory_unlock_all()``,
        ``RELEASE_ALL_LOCKS()``, ``SET SESSION AUTHORIZATION``), which would release the lock,
        or hand it to another role, while we still run; and a statement that kills its own
        connection would take the lock along mid-run. The migrations run on a second one
        (and tracked ones on a third, in autocommit)."""
        with ExitStack() as stack:
            with tracing.span("lock", dialect=self.db.dialect.name):  # the wait for the single-runner lock
                stack.enter_context(self.db.locked(bare=bare, conn=lock_conn))
            conns = stack.enter_context(Connections(self.db, on_retry, on_progress, bare=bare))
            plan = self._under_lock(conns, direction, target, resume)
            applied = conns.applied
            conns = self._able(plan, conns, stack)
            done = self._run_all(plan, conns, on_step)
        meanwhile: list[int] = []
        if direction == "up":
            final = max([plan.current_version or 0] + [s.version for s in done]) if done else plan.current_version
            if seen is not None:
                meanwhile = sorted(v for v in applied if v not in seen and v <= target)
        else:
            final = target if done else plan.current_version
        return ApplyResult(plan.current_version, final, target, False, plan, done, meanwhile)

    def _under_lock(self, conns: Connections, direction: str, target: int, resume: bool) -> Plan:
        """Under the lock, in one transaction of the migrations' connection: re-read the
        history (another runner may have done the work meanwhile) and which versions the
        journal holds rows for; create the version table (``apply``: or widen the profiler's)
        and the journal only where that read found them missing; plan; then read what the plan
        needs (the live tables, the session the DDL lock guard watches)."""
        db = self.db
        conn = conns.tx()
        try:
            found, full = history.read_history_shape(conn)
            conns.journal = journal.read_kinds(conn)
            if (direction == "up" and not full) or conns.journal is None:
                if direction == "up" and not full:
                    history.ensure_table(conn, db.dialect, exists=found is not None)
                if conns.journal is None:
                    journal.ensure(conn, db.dialect)
                    conns.journal = {}
                conn.commit()
                # The commit ended the transaction the history was read in: read it again in the
                # one the plan's table check runs in. Where the lock does not keep other runners out
                # (SQLite), one may have applied a version meanwhile, whose tables that check would
                # otherwise find without their version row.
                found, full = history.read_history_shape(conn)
        except Exception as exc:
            if conn.in_transaction():
                conn.rollback()
            # A read's error arrives as DatabaseUnavailable; the driver's error under it says
            # whether another writer holds the database (SQLite's BEGIN IMMEDIATE).
            driver = exc.__context__ if isinstance(exc, BaselinrError) else exc
            if driver is not None and db.dialect.is_lock_error(driver):
                raise failures.lock_timeout(db.lock_timeout) from None
            raise failures.bookkeeping_failed(exc, db.settings) from exc
        rows = found or []
        conns.recorded = {r.version for r in rows}
        conns.applied = history.applied_versions(rows)
        try:
            if direction == "up":
                plan = self.up_plan(target, resume, rows, conn)
            else:
                plan = planner.down_plan(self.chain, rows, target, db.dialect, db.names, resume=resume, locked=True)
            if any(s.transactional and self.guard(self.chain.get(s.version)).lock_timeout > 0 for s in plan.steps):
                conns.session_of(conn)  # here, rather than in a transaction of its own before the first step
        finally:
            if conn.in_transaction():
                conn.rollback()
        return plan

    def _able(self, plan: Plan, conns: Connections, stack: ExitStack) -> Connections:
        """``conns``, or SQLAlchemy's connections when the plan made under the lock has a Python
        step after all (another runner went down meanwhile); the lock stays where it is."""
        if not conns.bare or not needs_sqlalchemy(self.chain, plan):
            return conns
        able = stack.enter_context(Connections(self.db, conns.on_retry, conns.on_progress, run_id=conns.run_id))
        able.adopt(conns)
        return able

    def _run_all(self, plan: Plan, conns: Connections, on_step: Callable[[PlannedStep], None] | None) -> list[StepResult]:
        done: list[StepResult] = []
        for step in plan.steps:
            if on_step is not None:
                on_step(step)
            done.append(self.run(self.chain.get(step.version), step, conns))
        return done

    # --- one step -------------------------------------------------------------------

    def guard(self, m: Migration) -> GuardSettings:
        timeout = self.ddl_lock_timeout if m.lock_timeout is None else m.lock_timeout
        if timeout > 0:
            timeout = self.db.dialect.lock_wait_seconds(timeout)  # what the server will really wait
        return GuardSettings(timeout, self.ddl_lock_tries, m.statement_timeout)

    def run(self, m: Migration, step: PlannedStep, conns: Connections) -> StepResult:
        fn = m.up_python if step.direction == "up" else m.down_python
        started = time.monotonic()
        retries: list[LockRetry] = []
        guard = self.guard(m)
        with tracing.span(
            f"migration v{m.version}", version=m.version, description=m.description, direction=step.direction,
            dialect=self.db.dialect.name, statements=len(step.statements), python=fn is not None, outcome="failed",
        ) as span:  # the outcome until the step ends well
            if step.transactional:
                replace = m.version in conns.recorded
                ran = self._run_transactional(conns.tx(), m, step, fn, started, replace, guard, conns, retries)
            else:
                ran = run_tracked(self, conns.auto(), m, step, fn, started, guard, conns, retries)
            tracing.annotate(span, retries=len(retries), outcome="applied" if ran else "skipped")
        ms = int((time.monotonic() - started) * 1000)
        return StepResult(m.version, m.description, step.direction, ms, skipped=not ran, retries=retries)

    def lock_wait(
        self,
        exc: BaseException,
        step: PlannedStep,
        statement: int,
        attempt: int,
        guard: GuardSettings,
        watch: BlockerWatch,
        conns: Connections,
        retries: list[LockRetry],
    ) -> LockRetry | None:
        """After ``exc``: the retry to make (its backoff slept, ``on_retry`` told) if it was a lock
        timeout of the guard with tries left; ``None`` for any other error. Out of tries:
        ``LockGaveUp``."""
        dialect = self.db.dialect
        if guard.lock_timeout <= 0 or not dialect.is_lock_wait_timeout(exc):
            return None
        # A transactional step's every try runs all of it (it may time out at another statement
        # each time): one budget for the step. A tracked step tries each statement on its own.
        key = (step.version, step.direction, 0 if step.transactional else statement)
        now = time.monotonic()
        if attempt == 1:
            conns.first_try[key] = now - guard.lock_timeout  # the first try began a lock timeout ago
        delay = backoff(attempt)
        last = guard.gives_up(attempt, now - conns.first_try.get(key, now), delay)
        retry = LockRetry(
            step.version,
            step.direction,
            statement,
            attempt,
            guard.tries,
            0.0 if last else delay,
            guard.lock_timeout,
            watch.take(),
            dialect.name,
            None if guard.tries is not None else guard.budget,
        )
        conns.remember(retry)
        tracing.event("lock wait timeout", statement=statement, attempt=attempt, lock_timeout_s=guard.lock_timeout, last=last)
        if last:
            raise LockGaveUp(retry) from exc
        retries.append(retry)
        log.info("v%s: lock timeout at statement %s, try %s", step.version, statement, attempt)
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
        replace: bool,
        guard: GuardSettings,
        conns: Connections,
        retries: list[LockRetry],
    ) -> bool:
        dialect = self.db.dialect
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
                    exclusive = dialect.exclusive_lock
                    if not exclusive and history.is_applied(conn, m.version) == (step.direction == "up"):
                        return False
                    # With BEGIN, in one round trip where the connection batches (dbapi.py).
                    sets = dialect.guard_statements(conn, guard.lock_timeout, guard.statement_timeout, in_transaction=True)[0]
                    # Where a transaction pooler may run each transaction on another server session,
                    # the session the guard watches is read in this one (in the same round trip).
                    moving = dialect.session_moves and watch.watches
                    for sql in sets if moving else sets[:-1]:
                        defer(conn, sql)
                    if moving:
                        watch.follow(dialect.session_id(conn))
                    else:
                        for sql in sets[-1:]:
                            conn.exec_driver_sql(sql)
                    for number, stmt in enumerate(step.statements, 1):
                        current = number
                        with watch.watching():
                            run_statement(conn, stmt)
                    current = 0
                    if fn is not None:
                        with watch.watching(), backfill.inside_transaction(m.version):
                            fn(conn)
                    # The bookkeeping goes with the COMMIT where the connection batches (dbapi.py):
                    # an error in it is still raised inside this block, as the step's (statement 0).
                    kinds = conns.journal_kinds(m.version)
                    journal.start_run(conn, m.version, conns.run_id, resuming=False, kinds=kinds, deferred=True)
                    if step.direction == "up":
                        history.record(
                            conn,
                            version=m.version,
                            status="applied",
                            description=m.description,
                            script=m.script,
                            checksum=m.checksum(dialect, self.db.names),
                            algorithm=CHECKSUM_ALGORITHM,
                            applied_by=runner_id(),
                            execution_time_ms=int((time.monotonic() - started) * 1000),
                            statements_done=len(step.statements),
                            statements_total=len(step.statements),
                            replace=replace or not exclusive,
                            deferred=True,
                        )
                    else:
                        history.delete(conn, m.version, deferred=True)
            except BaselinrError:
                raise
            except Exception as exc:
                # The transaction is rolled back already: a lock timeout tries it again from the start.
                try:
                    waited = self.lock_wait(exc, step, current, attempt, guard, watch, conns, retries)
                except LockGaveUp as gave_up:
                    raise failures.lock_failed(step, gave_up.retry, rolled_back=True) from exc
                if waited is None:
                    raise failures.step_failed(step, current, exc, self.db.settings, dialect.name, rolled_back=True) from exc
                attempt += 1
                continue
            return True
