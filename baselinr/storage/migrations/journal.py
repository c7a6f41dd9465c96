"""``_baselinr_migration_journal``: what a migration run leaves besides its version row.

Two kinds of rows, both keyed by version:

- ``lock_retry``: one per lock timeout of the DDL lock guard (``guard.py``),
  written by the manager on a connection of its own the moment it happens
  (on PostgreSQL the migration's transaction has just been rolled back, so
  nothing else could carry it), so ``status`` can say which migrations were
  retried and who blocked them, even after a kill or a give-up. A run starts
  by deleting the rows of earlier runs of the same version (inside the
  migration's transaction where there is one), so what ``status`` shows is
  the retries of the run that applied it. Which versions hold rows is read
  once under the lock (``read_kinds``), so a version without any sends no
  DELETE.
- ``backfill``: the cursor of a batched backfill (``backfill.py``), updated
  in the same transaction as each batch, so a killed run resumes after the
  last committed batch.

A side table rather than columns of ``baselinr_schema_version``: Baselinr's
released profiler reads and writes the version table, a new column there
would make our own reads of databases widened by earlier releases fall back
to the profiler's narrow shape until the next ``apply``, and retries happen
before (or without) any version row. The table is the engine's own
bookkeeping, not Baselinr's data: its name starts with an underscore so that
nothing that takes every ``baselinr_*`` table as Baselinr's (``validate``'s
extra-table check, backups, the profiler) counts it. Created by ``ensure``
at the start of ``apply`` and ``rollback``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from baselinr.storage.dialects import is_missing_object
from baselinr.storage.migrations.results import Blocker, HistoryRow, LockRetry, RetriedMigration
from baselinr.storage.model import Column, Integer, String, Table, Text, Timestamp

if TYPE_CHECKING:
    from collections.abc import Callable, Collection
    from contextlib import AbstractContextManager

    from sqlalchemy.engine import Connection

    from baselinr.storage.dialects import Dialect

JOURNAL_TABLE_NAME = "_baselinr_migration_journal"
LOCK_RETRY = "lock_retry"
BACKFILL = "backfill"

JOURNAL_TABLE = Table(
    JOURNAL_TABLE_NAME,
    (
        Column("version", Integer(), nullable=False),
        Column("kind", String(20), nullable=False),
        Column("name", String(200), nullable=False),
        Column("run_id", String(64)),
        Column("detail", Text()),
        Column("recorded_at", Timestamp(), nullable=False),
    ),
    primary_key=("version", "kind", "name"),
)

_READ_RETRIES = (
    f"SELECT version, run_id, detail FROM {JOURNAL_TABLE_NAME} WHERE kind = '{LOCK_RETRY}' ORDER BY version, recorded_at, name"
)


def ensure(conn: Connection, dialect: Dialect) -> None:
    """Create the journal if it does not exist (in the caller's transaction).

    ``IF NOT EXISTS`` (every dialect has it) rather than the inspector: one
    statement, and SQLAlchemy would quote a name that starts with an underscore
    when it looks it up on Snowflake, where the table is stored upper-case."""
    ddl = dialect.render_create_table(JOURNAL_TABLE)
    conn.exec_driver_sql(ddl.replace("CREATE TABLE ", "CREATE TABLE IF NOT EXISTS ", 1))


def start_run(
    conn: Connection,
    version: int,
    run_id: str,
    *,
    resuming: bool,
    kinds: Collection[str] | None = None,
    deferred: bool = False,
) -> None:
    """A run of ``version`` begins: forget the retries of earlier runs and, unless it
    resumes an interrupted one, a backfill's cursor (a fresh run starts from the first key).

    ``kinds``: the kinds of rows the journal can hold for ``version`` (``read_kinds`` under
    the lock, plus what this run wrote); a DELETE that cannot find a row is not sent.
    ``None``: not known, both are sent. ``deferred``: with the connection's next send."""
    from baselinr.storage.migrations.history import execute

    if kinds is None or LOCK_RETRY in kinds:
        execute(
            conn,
            f"DELETE FROM {JOURNAL_TABLE_NAME} WHERE version = :v AND kind = :k AND (run_id IS NULL OR run_id <> :r)",
            {"v": version, "k": LOCK_RETRY, "r": run_id},
            deferred=deferred,
        )
    if not resuming and (kinds is None or BACKFILL in kinds):
        execute(
            conn,
            f"DELETE FROM {JOURNAL_TABLE_NAME} WHERE version = :v AND kind = :k",
            {"v": version, "k": BACKFILL},
            deferred=deferred,
        )


def read_kinds(conn: Connection) -> dict[int, set[str]] | None:
    """Which kinds of rows the journal holds, per version; ``None`` if there is no journal
    (a missing table rolls the caller's transaction back, as any failed read does)."""
    driver_error: type[Exception] | None = getattr(conn, "driver_error", None)  # the bare driver's connection
    if driver_error is None:
        from sqlalchemy import exc

        driver_error = exc.DBAPIError
    try:
        rows = conn.exec_driver_sql(f"SELECT DISTINCT version, kind FROM {JOURNAL_TABLE_NAME}").fetchall()
    except driver_error as error:
        if conn.in_transaction():
            conn.rollback()
        if is_missing_object(error):
            return None
        raise
    kinds: dict[int, set[str]] = {}
    for version, kind in rows:
        kinds.setdefault(int(version), set()).add(str(kind))
    return kinds


def record_retry(connect: Callable[[], AbstractContextManager[Connection]], run_id: str, seq: int, retry: LockRetry) -> None:
    """Write one lock timeout, committed at once on a connection of its own."""
    from baselinr.storage.migrations.history import execute, now

    with connect() as conn, conn.begin():
        execute(
            conn,
            f"INSERT INTO {JOURNAL_TABLE_NAME} (version, kind, name, run_id, detail, recorded_at) "
            "VALUES (:v, :k, :n, :r, :d, :t)",
            {
                "v": retry.version,
                "k": LOCK_RETRY,
                "n": f"{run_id}:{seq}"[:200],
                "r": run_id[:64],
                "d": json.dumps(retry.to_dict(), default=str),
                "t": now(),
            },
        )


def read_retries(conn: Connection) -> list[tuple[int, str | None, str | None]]:
    """The recorded lock retries as (version, run id, detail); none if there is no journal."""
    driver_error: type[Exception] | None = getattr(conn, "driver_error", None)  # the bare driver's connection
    if driver_error is None:
        from sqlalchemy import exc

        driver_error = exc.DBAPIError
    try:
        rows = conn.exec_driver_sql(_READ_RETRIES).fetchall()
    except driver_error as error:
        if conn.in_transaction():
            conn.rollback()
        if is_missing_object(error):
            return []
        raise
    return [(int(r[0]), r[1], r[2]) for r in rows]


def read_retries_dbapi(dbapi_conn: Any, error: type[Exception]) -> list[tuple[int, str | None, str | None]]:
    """``read_retries`` on a bare driver connection (the fast path of ``status``)."""
    cur = dbapi_conn.cursor()
    try:
        cur.execute(_READ_RETRIES)
        return [(int(r[0]), r[1], r[2]) for r in cur.fetchall()]
    except error as exc:
        dbapi_conn.rollback()
        if is_missing_object(exc):
            return []
        raise
    finally:
        cur.close()


def retried(rows: list[HistoryRow], recorded: list[tuple[int, str | None, str | None]]) -> list[RetriedMigration]:
    """The migrations with a version row whose run waited out lock timeouts, oldest version first."""
    status = {r.version: r.status for r in rows}
    found: dict[int, list[LockRetry]] = {}
    for version, _run, detail in recorded:
        if version not in status:
            continue  # rolled back, or a run that gave up on a transactional migration: nothing of it is in place
        retry = _retry(detail)
        if retry is not None:
            found.setdefault(version, []).append(retry)
    return [RetriedMigration(v, status[v], found[v]) for v in sorted(found)]


def _retry(detail: str | None) -> LockRetry | None:
    """A journal row's retry; ``None`` for a row this code cannot read (written by another release)."""
    try:
        data = json.loads(detail or "")
        blockers = [Blocker(**b) for b in data.pop("blockers", [])]
        return LockRetry(**data, blockers=blockers)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class Cursor:
    """Where a backfill stands: the last key of its last committed batch, and counts."""

    last_key: Any  # None: no batch committed yet
    high_key: Any  # the largest key when the backfill started; rows added later are not its business
    rows_done: int
    rows_total: int
    batches: int
    finished: bool = False

    def to_json(self) -> str:
        return json.dumps(
            {
                "last_key": self.last_key,
                "high_key": self.high_key,
                "rows_done": self.rows_done,
                "rows_total": self.rows_total,
                "batches": self.batches,
                "finished": self.finished,
            },
            default=str,
        )


def read_cursor(conn: Connection, version: int, name: str) -> Cursor | None:
    from baselinr.storage.migrations.history import execute

    row = execute(
        conn,
        f"SELECT detail FROM {JOURNAL_TABLE_NAME} WHERE version = :v AND kind = :k AND name = :n",
        {"v": version, "k": BACKFILL, "n": name},
    ).first()
    if row is None or not row[0]:
        return None
    data = json.loads(row[0])
    return Cursor(
        data.get("last_key"),
        data.get("high_key"),
        int(data.get("rows_done", 0)),
        int(data.get("rows_total", 0)),
        int(data.get("batches", 0)),
        bool(data.get("finished", False)),
    )


def write_cursor(conn: Connection, version: int, name: str, run_id: str, cursor: Cursor, *, new: bool) -> None:
    """Insert (``new``) or update the cursor, in the caller's transaction (the batch's)."""
    from baselinr.storage.migrations.history import execute, now

    params = {"v": version, "k": BACKFILL, "n": name[:200], "r": run_id[:64], "d": cursor.to_json(), "t": now()}
    if new:
        execute(
            conn,
            f"INSERT INTO {JOURNAL_TABLE_NAME} (version, kind, name, run_id, detail, recorded_at) "
            "VALUES (:v, :k, :n, :r, :d, :t)",
            params,
        )
    else:
        execute(
            conn,
            f"UPDATE {JOURNAL_TABLE_NAME} SET detail = :d, run_id = :r, recorded_at = :t "
            "WHERE version = :v AND kind = :k AND name = :n",
            params,
        )
