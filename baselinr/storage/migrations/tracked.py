"""Tracked steps: a migration run statement by statement where DDL commits on its own.

Called by the runner for every step that cannot run in one transaction
(MySQL, Snowflake, PostgreSQL's ``CREATE INDEX CONCURRENTLY``). The version
row records the progress, so a kill or a failure is reported, resumable
(``--resume``) and repairable; ``faults.kill_point`` marks where the kill
tests interrupt it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from baselinr.storage.connection import run_statement
from baselinr.storage.dialects import Dialect, runner_id
from baselinr.storage.migrations import backfill, failures, faults, history, journal
from baselinr.storage.migrations.failures import LockGaveUp
from baselinr.storage.migrations.guard import BlockerWatch, GuardSettings
from baselinr.storage.migrations.migration import CHECKSUM_ALGORITHM, Migration
from baselinr.storage.migrations.results import LockRetry, PlannedStep
from baselinr.storage.model import Names
from baselinr.storage.version_table import FAILED, RUNNING

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from baselinr.storage.migrations.runner import Connections, Runner

log = logging.getLogger(__name__)


def run_tracked(
    runner: Runner,
    conn: Connection,
    m: Migration,
    step: PlannedStep,
    fn: Callable[[Any], None] | None,
    started: float,
    guard: GuardSettings,
    conns: Connections,
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
    db = runner.db
    d = db.dialect
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
            journal.start_run(conn, m.version, conns.run_id, resuming=False, kinds=conns.journal_kinds(m.version))
        else:
            index = past_in_flight(conn, d, m.version, index, total, step.direction)
            history.set_status(conn, m.version, RUNNING)
    except Exception as exc:
        raise failures.bookkeeping_failed(exc, db.settings, m.version) from exc
    faults.kill_point(f"{where}:before-statements")
    first = index
    if not d.guards_tracked:
        guard = GuardSettings(0.0, guard.tries, None, guard.budget)
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
                    if runner.lock_wait(exc, step, index + 1, attempt, guard, watch, conns, retries) is None:
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
            with backfill.batches(_batches(runner, m, step, conns, retries)), db.connect() as py_conn, py_conn.begin():
                fn(py_conn)
                finish(py_conn, d, db.names, m, step, started)
                faults.kill_point(f"{where}:python:before-commit")
            faults.kill_point(f"{where}:python:after-commit")
            return True
    except Exception as exc:
        gave_up = exc.retry if isinstance(exc, LockGaveUp) else None
        cause = exc.__cause__ if gave_up is not None and exc.__cause__ is not None else exc
        message = failures.detail(cause, db.settings)
        if gave_up is not None:
            message = f"gave up after {gave_up.attempt} lock timeouts, held by {gave_up.held_by}: {message}"
        try:
            for sql in resets:
                conn.exec_driver_sql(sql)
            history.fail(conn, m.version, f"statement {index + 1}: {message}" if index < total else message)
        except Exception:
            log.debug("could not record the failure of v%s", m.version, exc_info=True)
        if gave_up is not None:
            raise failures.lock_failed(step, gave_up, rolled_back=False) from cause
        statement = index + 1 if index < total else 0
        raise failures.step_failed(step, statement, exc, db.settings, d.name, rolled_back=False) from exc
    faults.kill_point(f"{where}:before-finish")
    finish(conn, d, db.names, m, step, started)
    return True


def _batches(runner: Runner, m: Migration, step: PlannedStep, conns: Connections, retries: list[LockRetry]) -> backfill.Batches:
    """How a tracked migration's backfills commit: their own connection, its guard, retries as its DDL's."""
    db = runner.db
    guard = runner.guard(m)

    def lock_wait(exc: BaseException, attempt: int, watch: BlockerWatch) -> bool:
        return runner.lock_wait(exc, step, 0, attempt, guard, watch, conns, retries) is not None

    def watch(conn: Connection, guard: GuardSettings) -> BlockerWatch:
        # Not conns.watch: its sessions are cached by connection id, and each backfill opens a new one.
        session = db.dialect.session_id(conn) if guard.lock_timeout > 0 else None
        return BlockerWatch(db.connect, db.dialect, session, guard.lock_timeout)

    return backfill.Batches(
        m.version, step.direction, conns.run_id, db.connect, db.dialect, guard, db.names, lock_wait, watch, conns.on_progress
    )


def finish(conn: Connection, dialect: Dialect, names: Names, m: Migration, step: PlannedStep, started: float) -> None:
    """Mark a tracked step done: its row becomes ``applied`` (up) or goes (down)."""
    if step.direction == "up":
        history.finish(
            conn,
            m.version,
            checksum=m.checksum(dialect, names),
            algorithm=CHECKSUM_ALGORITHM,
            execution_time_ms=int((time.monotonic() - started) * 1000),
        )
    else:
        history.delete(conn, m.version)


def past_in_flight(conn: Connection, dialect: Dialect, version: int, done: int, total: int, direction: str) -> int:
    """Where a resume starts: after ``done`` statements, or one further when
    the run was interrupted (not failed) and the live schema no longer is the
    one recorded before the next statement, i.e. that statement committed."""
    recorded = history.in_flight_schema(conn, version)
    if done >= total or recorded is None:
        return done
    live = dialect.schema_checksum(conn)
    if live is None or live == recorded:
        return done
    history.progress(conn, version, done + 1, live, direction)
    log.info("v%s: statement %s had taken effect before the interruption; not running it again", version, done + 1)
    return done + 1
