"""The Snowflake codec of the portable backup format (typed JSON lines).

Registered in ``codecs`` for ``snowflake``; ``writer`` and ``restore`` use it
like any other codec. Rows stream as in ``rows``; the one difference is
``VARIANT``: Snowflake returns a VARIANT as its JSON text, and an ``INSERT …
VALUES`` would store that text as a JSON *string*, so loading goes through
``INSERT … SELECT PARSE_JSON(…) FROM VALUES …`` for tables that have one.
Snowflake commits DDL at once, so a restore is staged, not atomic (the
dialect's ``transactional_ddl`` says so); which columns are ``VARIANT`` is the
dialect's reading of the reflected types.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from baselinr.backup import rows
from baselinr.backup.codecs import Codec
from baselinr.backup.convert import Limits
from baselinr.backup.values import decode_row
from baselinr.storage.dialects import SnowflakeDialect

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from baselinr.backup.streams import HashingGzipReader

# Rows per INSERT … SELECT statement: one round trip each, well under the statement size limit.
BATCH = 500


def variant_columns(conn: Connection, table: str) -> set[str]:
    from sqlalchemy import inspect

    return {c["name"].lower() for c in inspect(conn).get_columns(table) if SnowflakeDialect.is_variant(c["type"])}


class SnowflakeCodec(Codec):
    dialect = SnowflakeDialect
    limits = Limits(integer_bits=127, json_parsed=True, zoned_timestamps=True)

    def load(self, conn: Connection, table: str, columns: Sequence[str], source: HashingGzipReader) -> None:
        def decoded() -> Iterator[list[Any]]:
            for line in source:
                row = decode_row(line)
                if len(row) != len(columns):
                    raise ValueError(f"a row of {table} has {len(row)} values for {len(columns)} columns")
                yield row

        self.load_values(conn, table, columns, decoded())

    def load_values(self, conn: Connection, table: str, columns: Sequence[str], values: Iterable[Sequence[Any]]) -> None:
        variants = variant_columns(conn, table)
        if not variants & {c.lower() for c in columns}:
            rows.insert_rows(conn, table, columns, values)
            return
        q = conn.dialect.identifier_preparer.quote
        picks = ", ".join(
            f"PARSE_JSON(column{i + 1})" if c.lower() in variants else f"column{i + 1}" for i, c in enumerate(columns)
        )
        head = f"INSERT INTO {q(table)} ({', '.join(q(c) for c in columns)}) SELECT {picks} FROM VALUES "
        one = "(" + ", ".join(["%s"] * len(columns)) + ")"
        batch: list[object] = []
        count = 0

        def flush() -> None:
            nonlocal count
            if count:
                conn.exec_driver_sql(head + ", ".join([one] * count), tuple(batch))
                batch.clear()
                count = 0

        for row in values:
            batch.extend(row)
            count += 1
            if count >= BATCH:
                flush()
        flush()
