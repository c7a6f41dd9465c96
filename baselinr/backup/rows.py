"""Streamed, batched dump and load of one table as typed JSON lines (SQLite, MySQL/MariaDB).

Called through ``codecs`` by ``writer`` and ``restore``. Reads use a
server-side cursor (``stream_results``) and fetch ``BATCH`` rows at a time,
writes use ``executemany`` per batch, so memory stays constant whatever the
table size; no table is ever loaded whole.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from baselinr.backup.values import decode_row, encode_row

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from baselinr.backup.streams import HashingGzipReader, HashingGzipWriter

BATCH = 5000
ENCODING = "jsonl-typed"


def quote(conn: Connection, ident: str) -> str:
    return str(conn.dialect.identifier_preparer.quote(ident))


def dump_rows(conn: Connection, table: str, columns: Sequence[str], sink: HashingGzipWriter) -> None:
    cols = ", ".join(quote(conn, c) for c in columns)
    result = conn.execution_options(stream_results=True, yield_per=BATCH).exec_driver_sql(
        f"SELECT {cols} FROM {quote(conn, table)}"
    )
    try:
        while True:
            batch = result.fetchmany(BATCH)
            if not batch:
                break
            sink.write("\n".join(encode_row(r) for r in batch) + "\n")
    finally:
        result.close()


def _placeholders(conn: Connection, n: int) -> str:
    style = conn.dialect.paramstyle
    if style == "qmark":
        return ", ".join("?" * n)
    if style in ("format", "pyformat"):
        return ", ".join(["%s"] * n)
    if style == "numeric":
        return ", ".join(f":{i + 1}" for i in range(n))
    return ", ".join(f":p{i}" for i in range(n))


def load_rows(conn: Connection, table: str, columns: Sequence[str], source: HashingGzipReader) -> None:
    def decoded() -> Iterator[list[Any]]:
        for line in source.lines():
            row = decode_row(line)
            if len(row) != len(columns):
                raise ValueError(f"a row of {table} has {len(row)} values for {len(columns)} columns")
            yield row

    insert_rows(conn, table, columns, decoded())


def insert_rows(conn: Connection, table: str, columns: Sequence[str], values: Iterable[Sequence[Any]]) -> None:
    """Insert rows of driver values, ``BATCH`` per ``executemany``."""
    cols = ", ".join(quote(conn, c) for c in columns)
    sql = f"INSERT INTO {quote(conn, table)} ({cols}) VALUES ({_placeholders(conn, len(columns))})"
    named = conn.dialect.paramstyle in ("named",)
    batch: list[tuple[object, ...]] = []

    def flush() -> None:
        if batch:
            params = [{f"p{i}": v for i, v in enumerate(row)} for row in batch] if named else list(batch)
            conn.exec_driver_sql(sql, params)  # type: ignore[arg-type]
            batch.clear()

    for row in values:
        batch.append(tuple(row))
        if len(batch) >= BATCH:
            flush()
    flush()
