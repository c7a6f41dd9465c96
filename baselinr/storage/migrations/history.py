"""Read and write ``baselinr_schema_version`` rows.

Used by the migration layers (runner, adoption, validation) and backup, on a
SQLAlchemy connection or on the bare driver's (``storage/dbapi.py``): every
statement goes through ``exec_driver_sql`` with the driver's paramstyle, so
the same code serves both. Reads tolerate the narrower table that
Baselinr's profiler creates (no ``status`` column: every row is applied);
``ensure_table`` widens it before the engine writes anything. Only a missing
table means "not initialized": any other read error (no SELECT privilege, a
file that is not a database) is raised as ``DatabaseUnavailable``, so nothing
is ever planned from a history we could not read.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from baselinr.errors import DatabaseUnavailable
from baselinr.storage.dbapi import defer
from baselinr.storage.dialects import is_missing_object, is_missing_table
from baselinr.storage.migrations.results import HistoryRow
from baselinr.storage.version_table import (
    APPLIED,
    ENGINE_COLUMNS,
    FAILED,
    RUNNING,
    VERSION_TABLE,
    VERSION_TABLE_NAME,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from baselinr.storage.dialects import Dialect

_FULL = (
    "SELECT version, status, description, applied_at, checksum, migration_script, applied_by, "
    f"execution_time_ms, statements_done, statements_total, error_message, checksum_algorithm FROM {VERSION_TABLE_NAME} "
    "ORDER BY version"
)
_NARROW = f"SELECT version, description, applied_at, checksum, migration_script FROM {VERSION_TABLE_NAME} ORDER BY version"


# checksum_algorithm of a running (or failed) row of a tracked run: its checksum
# is that of the live schema before the run's next statement (see
# MigrationManager._run_tracked), and the value says the run's direction;
# finish() replaces both with the migration's own checksum.
LIVE_SCHEMA = "schema-sha256"
LIVE_SCHEMA_DOWN = "schema-sha256-down"  # fits checksum_algorithm VARCHAR(20)


def marker(direction: str) -> str:
    """The ``checksum_algorithm`` of a tracked run going ``direction``."""
    return LIVE_SCHEMA_DOWN if direction == "down" else LIVE_SCHEMA


def now() -> dt.datetime:
    """UTC wall time without zone, as every dialect's TIMESTAMP stores it."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def read_history(conn: Connection) -> list[HistoryRow] | None:
    """All rows, oldest first; ``None`` if the table does not exist."""
    return read_history_shape(conn)[0]


def read_history_shape(conn: Connection) -> tuple[list[HistoryRow] | None, bool]:
    """``read_history``, and whether the table has every engine column already (then
    ``ensure_table`` has nothing to do)."""
    error: type[Exception] | None = getattr(conn, "driver_error", None)
    if error is None:
        from sqlalchemy import exc

        error = exc.DBAPIError

    def run(sql: str) -> list[Any]:
        return list(conn.exec_driver_sql(sql).fetchall())

    return _read(run, error, lambda: _reset(conn))


def read_history_dbapi(dbapi_conn: Any, error: type[Exception]) -> list[HistoryRow] | None:
    """``read_history`` on a bare driver connection (the fast path of ``status``)."""

    def run(sql: str) -> list[Any]:
        cur = dbapi_conn.cursor()
        try:
            cur.execute(sql)
            return list(cur.fetchall())
        finally:
            cur.close()

    return _read(run, error, dbapi_conn.rollback)[0]


def _read(run: Any, error: type[Exception], reset: Any) -> tuple[list[HistoryRow] | None, bool]:
    try:
        return [_row(r) for r in run(_FULL)], True
    except error as exc:
        _unless_missing(exc)
        reset()
        if is_missing_table(exc):
            return None, False  # no table: the narrow read would only fail the same way
    try:
        rows = run(_NARROW)
    except error as exc:
        _unless_missing(exc)
        reset()
        return None, False
    return [
        HistoryRow(
            version=int(r[0]), status=APPLIED, description=r[1], applied_at=_iso(r[2]), checksum=r[3], migration_script=r[4]
        )
        for r in rows
    ], False


def _unless_missing(exc: BaseException) -> None:
    """Raise unless ``exc`` says the table (or one of the engine's columns) does not exist."""
    if is_missing_object(exc):
        return
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip()
    detail = text.splitlines()[0] if text else type(orig).__name__
    raise DatabaseUnavailable(
        f"Cannot read {VERSION_TABLE_NAME}: {detail}",
        hint="Check that the configured user may read it and that storage.connection points at the right database.",
    ) from None


def applied_versions(rows: list[HistoryRow]) -> set[int]:
    """The versions recorded as applied: a set, so membership tests stay cheap at 1,000 migrations."""
    return {r.version for r in rows if r.status == APPLIED}


def ensure_table(conn: Connection, dialect: Dialect, *, exists: bool | None = None) -> None:
    """Create the version table, or add the engine's columns to an old one (``exists``:
    whether the table is there, if the caller read it already)."""
    if exists is False:
        conn.exec_driver_sql(dialect.render_create_table(VERSION_TABLE))
        return
    if dialect.table_names_sql is None:
        from sqlalchemy import inspect

        insp = inspect(conn)
        if not insp.has_table(VERSION_TABLE_NAME):
            conn.exec_driver_sql(dialect.render_create_table(VERSION_TABLE))
            return
        have = {c["name"].lower() for c in insp.get_columns(VERSION_TABLE_NAME)}
    else:
        tables = {str(r[0]).lower() for r in conn.exec_driver_sql(dialect.table_names_sql).fetchall()}
        if VERSION_TABLE_NAME not in tables:
            conn.exec_driver_sql(dialect.render_create_table(VERSION_TABLE))
            return
        have = {str(k).lower() for k in conn.exec_driver_sql(f"SELECT * FROM {VERSION_TABLE_NAME} WHERE 1 = 0").keys()}
    for col in ENGINE_COLUMNS:
        if col.name not in have:
            conn.exec_driver_sql(dialect.render_add_column(VERSION_TABLE_NAME, col))


def is_applied(conn: Connection, version: int) -> bool:
    row = execute(conn, f"SELECT status FROM {VERSION_TABLE_NAME} WHERE version = :v", {"v": version}).first()
    return row is not None and (row[0] is None or row[0] == APPLIED)


def status_of(conn: Connection, version: int) -> str | None:
    """The row's status (``applied`` for a profiler's row without one); ``None`` if there is no row."""
    row = execute(conn, f"SELECT status FROM {VERSION_TABLE_NAME} WHERE version = :v", {"v": version}).first()
    if row is None:
        return None
    return str(row[0]) if row[0] is not None else APPLIED


def record(
    conn: Connection,
    *,
    version: int,
    status: str,
    description: str,
    script: str | None,
    checksum: str | None,
    algorithm: str | None,
    applied_by: str,
    execution_time_ms: int | None = None,
    statements_done: int | None = None,
    statements_total: int | None = None,
    error_message: str | None = None,
    replace: bool = True,
    deferred: bool = False,
) -> None:
    """Write the row for ``version``, replacing any earlier one if ``replace``; ``deferred``:
    with the connection's next send, at the latest its COMMIT (``dbapi.defer``)."""
    if replace:
        execute(conn, f"DELETE FROM {VERSION_TABLE_NAME} WHERE version = :v", {"v": version}, deferred=deferred)
    execute(
        conn,
        (
            f"INSERT INTO {VERSION_TABLE_NAME} (version, applied_at, description, migration_script, checksum, "
            "checksum_algorithm, execution_time_ms, applied_by, status, statements_done, statements_total, error_message) "
            "VALUES (:version, :applied_at, :description, :script, :checksum, :algorithm, :ms, :by, :status, "
            ":done, :total, :error)"
        ),
        {
            "version": version,
            "applied_at": now(),
            "description": description[:500],
            "script": (script or "")[:255] or None,
            "checksum": checksum,
            "algorithm": algorithm,
            "ms": execution_time_ms,
            "by": applied_by[:255],
            "status": status,
            "done": statements_done,
            "total": statements_total,
            "error": error_message[:4000] if error_message else None,
        },
        deferred=deferred,
    )


def progress(conn: Connection, version: int, done: int, schema: str | None = None, direction: str = "up") -> None:
    """``done`` statements ran; ``schema`` is the live schema's checksum now, before the next one."""
    execute(
        conn,
        (f"UPDATE {VERSION_TABLE_NAME} SET statements_done = :d, checksum = :c, checksum_algorithm = :a WHERE version = :v"),
        {"d": done, "c": schema, "a": marker(direction), "v": version},
    )


def in_flight_schema(conn: Connection, version: int) -> str | None:
    """The live schema's checksum recorded before the next statement of an
    interrupted (``running``) migration; ``None`` for a failed one or none recorded."""
    row = execute(
        conn, f"SELECT status, checksum, checksum_algorithm FROM {VERSION_TABLE_NAME} WHERE version = :v", {"v": version}
    ).first()
    if row is None or row[0] != RUNNING or row[2] not in (LIVE_SCHEMA, LIVE_SCHEMA_DOWN):
        return None
    return str(row[1]) if row[1] else None


def finish(conn: Connection, version: int, *, checksum: str, algorithm: str, execution_time_ms: int) -> None:
    execute(
        conn,
        (
            f"UPDATE {VERSION_TABLE_NAME} SET status = :s, checksum = :c, checksum_algorithm = :a, "
            "execution_time_ms = :ms, applied_at = :at, error_message = NULL WHERE version = :v"
        ),
        {"s": APPLIED, "c": checksum, "a": algorithm, "ms": execution_time_ms, "at": now(), "v": version},
    )


def set_status(conn: Connection, version: int, status: str) -> None:
    execute(conn, f"UPDATE {VERSION_TABLE_NAME} SET status = :s WHERE version = :v", {"s": status, "v": version})


def fail(conn: Connection, version: int, message: str) -> None:
    execute(
        conn,
        (f"UPDATE {VERSION_TABLE_NAME} SET status = :s, error_message = :e WHERE version = :v"),
        {"s": FAILED, "e": message[:4000], "v": version},
    )


def realign_checksum(conn: Connection, version: int, *, checksum: str, algorithm: str, description: str) -> None:
    """Record ``checksum`` (the migration file's) for an applied ``version``, and ``description``
    (which carries the note of what was realigned, from what, when and by whom)."""
    execute(
        conn,
        f"UPDATE {VERSION_TABLE_NAME} SET checksum = :c, checksum_algorithm = :a, description = :d WHERE version = :v",
        {"c": checksum, "a": algorithm, "d": description[:500], "v": version},
    )


def delete(conn: Connection, version: int, *, deferred: bool = False) -> None:
    execute(conn, f"DELETE FROM {VERSION_TABLE_NAME} WHERE version = :v", {"v": version}, deferred=deferred)


_PARAM = re.compile(r":([a-z_]+)")


def execute(conn: Connection, sql: str, params: Mapping[str, Any], *, deferred: bool = False) -> Any:
    """Run ``sql`` with ``:name`` parameters in the driver's own paramstyle (no SQLAlchemy
    ``text()``, so the bare driver's connection takes the same statements). ``deferred``
    (nothing is returned): with the connection's next send where it batches (``dbapi.defer``)."""
    statement, values = _in_style(conn.dialect.paramstyle, sql, params)
    if deferred:
        defer(conn, statement, values)
        return None
    return conn.exec_driver_sql(statement, values)


def _in_style(style: str, sql: str, params: Mapping[str, Any]) -> tuple[str, Any]:
    """``sql`` and its parameters in the driver's paramstyle."""
    if style == "named":
        return sql, dict(params)
    if style == "pyformat":
        return _PARAM.sub(r"%(\1)s", sql), dict(params)
    order = _PARAM.findall(sql)
    if style == "qmark":
        # sqlite3, which stores timestamps as text: written as SQLAlchemy's SQLite type writes
        # them (always with microseconds), not through sqlite3's deprecated default adapter.
        return _PARAM.sub("?", sql), tuple(_text_time(params[n]) for n in order)
    if style == "format":
        return _PARAM.sub("%s", sql), tuple(params[n] for n in order)
    numbered = iter(range(1, len(order) + 1))  # numeric
    return _PARAM.sub(lambda _m: f":{next(numbered)}", sql), tuple(params[n] for n in order)


def _text_time(value: Any) -> Any:
    return value.isoformat(sep=" ", timespec="microseconds") if isinstance(value, dt.datetime) else value


def unfinished(rows: list[HistoryRow]) -> list[HistoryRow]:
    return [r for r in rows if r.status in (RUNNING, FAILED)]


def _row(r: Any) -> HistoryRow:
    return HistoryRow(
        version=int(r[0]),
        status=r[1] or APPLIED,
        description=r[2],
        applied_at=_iso(r[3]),
        checksum=r[4],
        migration_script=r[5],
        applied_by=r[6],
        execution_time_ms=r[7],
        statements_done=r[8],
        statements_total=r[9],
        error_message=r[10],
        direction="down" if r[11] == LIVE_SCHEMA_DOWN else "up",
    )


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.replace(microsecond=0).isoformat(sep=" ")
    return str(value)


def _reset(conn: Connection) -> None:
    if conn.in_transaction():
        conn.rollback()
