"""Batched, resumable backfills for Python migrations: ``backfill(conn, table=..., set_sql=..., key=...)``.

Called from a migration's ``up_python`` (or ``down_python``). One ``UPDATE``
over a large table holds its row locks, and on SQLite the database's write
lock, until it commits, so the profiler's writes wait for all of it, and a
kill throws all of it away. ``backfill`` instead walks the table in keyset
batches by its key (``WHERE key > last AND key <= upper``, never ``OFFSET``
over the data) and commits each batch together with its cursor in
``_baselinr_migration_journal`` (``journal.py``).

How it fits the migration's bookkeeping: a migration that backfills is
declared ``Migration(..., transactional=False)`` and keeps its DDL in a
migration of its own (which stays atomic and guarded). The manager then runs
it tracked: its version row is marked ``running`` first, the Python step runs
with this module's context (set by ``batches``), each batch commits on a
connection of its own with its cursor, and the version row is written
``applied`` only after the last batch, in the Python step's own transaction.
A kill leaves the row ``running`` and the cursor at the last committed batch;
``baselinr migrate apply --resume`` calls the step again and ``backfill``
continues after that cursor, so no committed batch is applied twice and the
uncommitted one was rolled back by the server. The keys to visit are fixed
when the backfill starts (its largest key then): rows inserted later are the
new code's to write.

Each batch runs under the DDL lock guard of its migration: the lock wait
(PostgreSQL ``SET LOCAL lock_timeout``, MySQL/MariaDB
``innodb_lock_wait_timeout``) and the migration's ``statement_timeout`` bound
every batch rather than the whole backfill; a batch that times out waiting
for a lock is rolled back and tried again after the guard's backoff, and out
of tries the migration fails (exit 4) with its committed batches recorded.

Inside a transactional migration ``backfill`` refuses to run (its commits
would end the migration's transaction). Called outside the manager (a
restore replaying the migrations, a test calling the function), it runs its
batches in the caller's transaction without commits or cursor.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from baselinr.errors import MigrationFailed, UsageError
from baselinr.storage.migrations import faults, journal
from baselinr.storage.migrations.results import BackfillProgress

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from baselinr.storage.dialects import Dialect
    from baselinr.storage.migrations.guard import BlockerWatch, GuardSettings
    from baselinr.storage.model import Names

log = logging.getLogger(__name__)

DEFAULT_BATCH = 10_000


@dataclass(frozen=True)
class Batches:
    """What the manager gives a tracked migration's backfills: where to commit, its guard, where to report."""

    version: int
    direction: str
    run_id: str
    connect: Callable[[], AbstractContextManager[Connection]]
    dialect: Dialect
    guard: GuardSettings
    names: Names
    # After a failed batch: True when it was a lock timeout with tries left (the backoff slept);
    # False for any other error; raises when out of tries.
    lock_wait: Callable[[BaseException, int, BlockerWatch], bool]
    watch: Callable[[Connection, GuardSettings], BlockerWatch]
    report: Callable[[BackfillProgress], None] | None = None


@dataclass(frozen=True)
class _InTransaction:
    version: int


_CURRENT: ContextVar[Batches | _InTransaction | None] = ContextVar("baselinr_backfill", default=None)


@contextmanager
def batches(context: Batches) -> Iterator[None]:
    """While the block runs, ``backfill`` commits per batch as ``context`` says (set by the manager)."""
    token = _CURRENT.set(context)
    try:
        yield
    finally:
        _CURRENT.reset(token)


@contextmanager
def inside_transaction(version: int) -> Iterator[None]:
    """While the block runs, migration ``version``'s Python step is inside its one transaction."""
    token = _CURRENT.set(_InTransaction(version))
    try:
        yield
    finally:
        _CURRENT.reset(token)


def backfill(
    conn: Connection,
    *,
    table: str,
    set_sql: str,
    key: str = "id",
    where: str | None = None,
    batch: int = DEFAULT_BATCH,
    name: str | None = None,
    pause: float = 0.0,
) -> BackfillProgress:
    """``UPDATE table SET set_sql [WHERE where]`` in batches of ``batch`` keys, in ``key`` order.

    ``key`` is a single unique, indexed column (the primary key); ``set_sql``
    and ``where`` are SQL as written (a ``where`` filters rows within each
    batch: ``x IS NULL`` makes a backfill that can be run again harmlessly).
    ``name`` tells two backfills of one migration apart (default: from the
    table and ``set_sql``); ``pause`` seconds between batches give the
    database room. Returns the final progress; each batch is reported to the
    manager's ``on_progress`` (``apply`` prints a line) and logged."""
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise UsageError(f"backfill batch must be a positive integer, got {batch!r}")
    context = _CURRENT.get()
    if isinstance(context, _InTransaction):
        raise MigrationFailed(
            f"Migration v{context.version} calls backfill(), which commits batch by batch, inside its one transaction.",
            version=context.version,
            hint="Declare it Migration(..., transactional=False) and keep its DDL in a migration of its own; "
            "its transaction was rolled back, nothing changed.",
        )
    physical = context.names(table) if context is not None else table
    job = _Job(physical, key, set_sql, where, batch, name or _default_name(physical, set_sql))
    if context is None:
        return job.run_in(conn)
    return job.run_committed(context, pause)


def _default_name(table: str, set_sql: str) -> str:
    return f"{table}:{hashlib.sha256(set_sql.encode()).hexdigest()[:12]}"


def _escape(sql: str) -> str:
    """SQL text as written inside ``text()``: a ``:word`` is not a bind parameter."""
    return sql.replace(":", "\\:")


@dataclass(frozen=True)
class _Job:
    table: str
    key: str
    set_sql: str
    where: str | None
    batch: int
    name: str

    def _bounds(self, conn: Connection) -> tuple[Any, int]:
        from sqlalchemy import text

        row = conn.execute(text(f"SELECT MAX({self.key}), COUNT(*) FROM {self.table}")).one()
        return row[0], int(row[1])

    def _next(self, conn: Connection, last: Any, high: Any) -> tuple[Any, int]:
        """The last key of the next batch after ``last`` (None: from the start) and how many keys it holds."""
        from sqlalchemy import text

        after = f"{self.key} > :last AND " if last is not None else ""
        row = conn.execute(
            text(
                f"SELECT MAX(k), COUNT(*) FROM (SELECT {self.key} AS k FROM {self.table} "
                f"WHERE {after}{self.key} <= :high ORDER BY {self.key} LIMIT {self.batch}) batch_keys"
            ),
            {"last": last, "high": high} if last is not None else {"high": high},
        ).one()
        return row[0], int(row[1])

    def _update(self, conn: Connection, last: Any, upper: Any) -> int:
        from sqlalchemy import text

        after = f"{self.key} > :last AND " if last is not None else ""
        extra = f" AND ({_escape(self.where)})" if self.where else ""
        result = conn.execute(
            text(f"UPDATE {self.table} SET {_escape(self.set_sql)} WHERE {after}{self.key} <= :upper{extra}"),
            {"last": last, "upper": upper} if last is not None else {"upper": upper},
        )
        return int(result.rowcount or 0)

    def run_in(self, conn: Connection) -> BackfillProgress:
        """Outside the manager: every batch in the caller's transaction, nothing recorded."""
        high, total = self._bounds(conn)
        cursor = journal.Cursor(None, high, 0, total, 0, finished=high is None)
        started = time.monotonic()
        while not cursor.finished:
            upper, n = self._next(conn, cursor.last_key, high)
            if n == 0:
                break
            self._update(conn, cursor.last_key, upper)
            cursor = journal.Cursor(
                upper, high, cursor.rows_done + n, total, cursor.batches + 1, finished=n < self.batch or upper == high
            )
        return self._progress(0, cursor, started, 0, done=True)

    def run_committed(self, context: Batches, pause: float) -> BackfillProgress:
        """In the manager: batch by batch, each committed with its cursor on a connection of its own."""
        d, guard = context.dialect, context.guard
        where = f"v{context.version}:{context.direction}"
        with context.connect() as conn:
            conn = conn.execution_options(baselinr_write=True)  # SQLite: BEGIN IMMEDIATE for each batch
            with conn.begin():
                cursor = journal.read_cursor(conn, context.version, self.name)
                if cursor is None:
                    high, total = self._bounds(conn)
                    cursor = journal.Cursor(None, high, 0, total, 0, finished=high is None)
                    journal.write_cursor(conn, context.version, self.name, context.run_id, cursor, new=True)
            resumed_at = cursor.rows_done
            if resumed_at and not cursor.finished:
                log.info("v%s: backfill %s resumes after %s rows", context.version, self.name, resumed_at)
            # Session-wide bounds (MySQL, Snowflake) once; transaction-local ones (PostgreSQL) in each batch.
            sets, resets = d.guard_statements(conn, guard.lock_timeout, guard.statement_timeout, in_transaction=False)
            local = [] if sets else d.guard_statements(conn, guard.lock_timeout, guard.statement_timeout, in_transaction=True)[0]
            watch = context.watch(conn, guard)
            started = time.monotonic()
            try:
                for sql in sets:
                    conn.exec_driver_sql(sql)
                if conn.in_transaction():
                    conn.commit()
                while not cursor.finished:
                    cursor = self._one_batch(context, conn, cursor, local, watch, where)
                    self._report(context, cursor, started, resumed_at)
                    if pause > 0 and not cursor.finished:
                        time.sleep(pause)
            finally:
                if conn.in_transaction():
                    conn.rollback()
                for sql in resets:
                    conn.exec_driver_sql(sql)
                if conn.in_transaction():
                    conn.commit()
        progress = self._progress(context.version, cursor, started, resumed_at, done=True)
        if cursor.batches == 0 or resumed_at == cursor.rows_done:
            self._report(context, cursor, started, resumed_at)  # nothing ran in this call: say so once
        return progress

    def _one_batch(
        self, context: Batches, conn: Connection, cursor: journal.Cursor, local: list[str], watch: BlockerWatch, where: str
    ) -> journal.Cursor:
        attempt = 1
        while True:
            try:
                with watch.watching(), conn.begin():
                    for sql in local:
                        conn.exec_driver_sql(sql)
                    upper, n = self._next(conn, cursor.last_key, cursor.high_key)
                    if n == 0:
                        upper = cursor.last_key
                    else:
                        self._update(conn, cursor.last_key, upper)
                    done = journal.Cursor(
                        upper,
                        cursor.high_key,
                        cursor.rows_done + n,
                        cursor.rows_total,
                        cursor.batches + (1 if n else 0),
                        finished=n < self.batch or upper == cursor.high_key,
                    )
                    journal.write_cursor(conn, context.version, self.name, context.run_id, done, new=False)
                    faults.kill_point(f"{where}:backfill-batch-{done.batches}:before-commit")
                faults.kill_point(f"{where}:backfill-batch-{done.batches}:after-commit")
                return done
            except Exception as exc:
                if not context.lock_wait(exc, attempt, watch):
                    raise
                attempt += 1

    def _progress(self, version: int, cursor: journal.Cursor, started: float, resumed_at: int, *, done: bool) -> BackfillProgress:
        elapsed = max(time.monotonic() - started, 1e-6)
        return BackfillProgress(
            version,
            self.name,
            self.table,
            cursor.rows_done,
            cursor.rows_total,
            cursor.batches,
            round((cursor.rows_done - resumed_at) / elapsed, 1),
            resumed_at,
            cursor.finished or done,
        )

    def _report(self, context: Batches, cursor: journal.Cursor, started: float, resumed_at: int) -> None:
        progress = self._progress(context.version, cursor, started, resumed_at, done=cursor.finished)
        log.info("v%s: backfill %s: %s of %s rows", context.version, self.name, cursor.rows_done, cursor.rows_total)
        if context.report is not None:
            context.report(progress)
