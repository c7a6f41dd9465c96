"""PostgreSQL's fast path: ``COPY ... TO STDOUT`` / ``COPY ... FROM STDIN`` in text format.

Called through ``codecs`` by ``writer`` and ``restore``. COPY's text format
is what ``pg_dump`` uses: one row per line (newlines inside values are
escaped), ``\\N`` for NULL, and every type in its exact text form, so
timestamps with zones, numerics, JSON, bytea and unicode round-trip
exactly. The session is pinned to UTC and ISO dates on both sides so the
text does not depend on the server's or client's defaults.

Both directions move data in blocks of about a megabyte (``streams``):
no Python code runs per row. Loading drops the table's indexes and its
primary key and unique constraints (unless a foreign key needs them) and
rebuilds them after COPY, inside the caller's transaction, as
``pg_restore`` does: building an index once is much faster than
maintaining it row by row. The builds run with the server's own
``maintenance_work_mem``, as ``pg_restore``'s do: measured on 1M rows, a
larger sort memory made PostgreSQL's parallel index builds slower, not
faster.

Every statement here works on SQLAlchemy's connection and on the bare
driver's (``storage.dbapi``); identifiers are always quoted (``quote``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from baselinr.backup.streams import CHUNK, ReadAhead, block_writer

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from baselinr.backup.streams import HashingGzipReader, HashingGzipWriter

ENCODING = "pg-copy-text"
SESSION = ("SET TIME ZONE 'UTC'", "SET DateStyle = 'ISO, YMD'", "SET IntervalStyle = 'postgres'", "SET extra_float_digits = 3")


def _raw(conn: Connection) -> Any:
    """The driver's own connection, under SQLAlchemy's or the bare one."""
    bare = getattr(conn, "raw", None)
    return bare if bare is not None else conn.connection.dbapi_connection


def prepare_session(conn: Connection) -> None:
    for stmt in SESSION:
        conn.exec_driver_sql(stmt)


def dump_copy(conn: Connection, table: str, columns: Sequence[str], sink: HashingGzipWriter) -> None:
    """COPY the table out; the rows reach ``sink`` in blocks of about a megabyte, in a second thread.

    psycopg2 calls ``write`` once per row: that call lands in a C-level
    buffer (``streams.block_writer``), so no Python code runs per row, and
    each full buffer is hashed, compressed and written by the other thread
    (which releases the GIL) while libpq keeps receiving.
    """
    cols = ", ".join(quote(c) for c in columns)
    sql = f"COPY {quote(table)} ({cols}) TO STDOUT"
    with _raw(conn).cursor() as cur, block_writer(sink, name=f"baselinr-backup-{table}") as out:
        cur.copy_expert(sql, out, size=CHUNK)


def load_copy(conn: Connection, table: str, columns: Sequence[str], source: HashingGzipReader) -> None:
    """COPY the rows in, in blocks (``streams.ReadAhead`` decompresses and hashes the next one meanwhile).

    The table's indexes, and its primary key and unique constraints unless a
    foreign key depends on them, are dropped first and rebuilt after the
    rows are in, by name and from the definitions the server gives, in the
    caller's transaction: one index build is far cheaper than maintaining
    the index row by row. A duplicate key fails when its constraint is
    rebuilt, and the whole restore rolls back. A table file without rows
    costs no statement at all.
    """
    with ReadAhead(source) as blocks:
        if not blocks.empty():  # a table without rows: no COPY, its indexes untouched
            _copy_in(conn, table, columns, blocks)


_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})
_NONFINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def _text(v: Any) -> str:
    if type(v) is str:
        # Printable text without a backslash needs no escape (tab, newline and CR are not printable).
        return v if v.isprintable() and "\\" not in v else v.translate(_ESCAPES)
    if v is None:
        return "\\N"
    if v is True or v is False:
        return "t" if v else "f"
    if isinstance(v, str):
        return v.translate(_ESCAPES)
    if isinstance(v, float):
        r = repr(v)
        return _NONFINITE.get(r, r)
    if isinstance(v, (dt.datetime, dt.date)):
        return v.isoformat(sep=" ") if isinstance(v, dt.datetime) else v.isoformat()
    return str(v)


class _RowsAsCopy:
    """Rows of driver values read as COPY text, in blocks of about ``CHUNK`` bytes (what ``copy_expert`` reads)."""

    def __init__(self, values: Iterable[Sequence[Any]]) -> None:
        self._rows = iter(values)
        self._pending = b""
        self._done = False

    def _fill(self, size: int) -> None:
        lines: list[str] = []
        length = 0
        for row in self._rows:
            line = "\t".join(_text(v) for v in row) + "\n"
            lines.append(line)
            length += len(line)
            if length >= size:
                break
        else:
            self._done = True
        self._pending += "".join(lines).encode("utf-8")

    def empty(self) -> bool:
        if not self._pending and not self._done:
            self._fill(CHUNK)
        return not self._pending

    def read(self, size: int = -1) -> bytes:
        want = CHUNK if size is None or size < 0 else size
        while len(self._pending) < want and not self._done:
            self._fill(want)
        block, self._pending = self._pending[:want], self._pending[want:]
        return block


def load_values(conn: Connection, table: str, columns: Sequence[str], values: Iterable[Sequence[Any]]) -> None:
    """COPY rows of driver values in (converted from another dialect's backup), as ``load_copy`` does a file."""
    blocks = _RowsAsCopy(values)
    if not blocks.empty():
        _copy_in(conn, table, columns, blocks)


def _copy_in(conn: Connection, table: str, columns: Sequence[str], blocks: ReadAhead | _RowsAsCopy) -> None:
    cols = ", ".join(quote(c) for c in columns)
    qtable = quote(table)
    constraints = conn.exec_driver_sql(
        "SELECT c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c "
        "WHERE c.conrelid = to_regclass(%(t)s) AND c.contype IN ('p', 'u') "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint f WHERE f.contype = 'f' AND f.conindid = c.conindid) "
        "ORDER BY c.contype, c.conname",
        {"t": qtable},
    ).fetchall()
    indexes = conn.exec_driver_sql(
        "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
        "WHERE i.indrelid = to_regclass(%(t)s) "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)",
        {"t": qtable},
    ).fetchall()
    for name, _ in indexes:
        conn.exec_driver_sql(f"DROP INDEX {name}")
    for name, _ in constraints:
        conn.exec_driver_sql(f"ALTER TABLE {qtable} DROP CONSTRAINT {quote(name)}")
    with _raw(conn).cursor() as cur:
        cur.copy_expert(f"COPY {qtable} ({cols}) FROM STDIN", blocks, size=CHUNK)
    for name, definition in constraints:
        conn.exec_driver_sql(f"ALTER TABLE {qtable} ADD CONSTRAINT {quote(name)} {definition}")
    for _, definition in indexes:
        conn.exec_driver_sql(definition)


def reset_sequences(conn: Connection, table: str, columns: Sequence[str]) -> list[str]:
    """Move each SERIAL/identity sequence of ``table`` past the restored ids; returns their names.

    One query finds the sequences of all the table's columns, then one ``setval`` per sequence.
    """
    t = quote(table)
    found = conn.exec_driver_sql(
        "SELECT a.attname, pg_get_serial_sequence(%(t)s, a.attname) FROM pg_attribute a "
        "WHERE a.attrelid = to_regclass(%(t)s) AND a.attnum > 0 AND NOT a.attisdropped",
        {"t": t},
    ).fetchall()
    owned: dict[str, str | None] = {str(name): seq for name, seq in found}
    done = []
    for col in columns:
        seq = owned.get(col)
        if seq:
            c = quote(col)
            conn.exec_driver_sql(
                f"SELECT setval(%(s)s, COALESCE((SELECT MAX({c}) FROM {t}), 1), (SELECT MAX({c}) FROM {t}) IS NOT NULL)",
                {"s": seq},
            )
            done.append(str(seq))
    return done


def quote(ident: str) -> str:
    """An identifier quoted for PostgreSQL, always: the catalog's own spelling, whatever its case."""
    return '"' + ident.replace('"', '""') + '"'
