"""PostgreSQL's side of a backup's table descriptions, read from the catalog in one query.

Used by the PostgreSQL codec (``codecs``) in place of SQLAlchemy's
inspector, so a backup or restore on PostgreSQL runs on the bare driver
without importing SQLAlchemy, and describes every table in one round trip
instead of several per table. The result is what ``tables.describe`` gives
through the inspector, to the letter: column names in table order, the
type as SQLAlchemy's PostgreSQL dialect spells it (``VARCHAR(255)``,
``TIMESTAMP WITHOUT TIME ZONE``, ``DOUBLE PRECISION``; the manifest keeps
that spelling and ``trust`` compares it with the model), nullability, and
the primary key's columns in key order. Tables are those of the
connection's current schema, as ``search_path`` (``storage.connection.schema``)
makes it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from baselinr.backup.manifest import ColumnEntry

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

TABLES_SQL = (
    "SELECT c.relname FROM pg_catalog.pg_class c "
    "WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p') ORDER BY c.relname"
)
COLUMNS_SQL = (
    "SELECT c.relname, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull, "
    "array_position(i.indkey::int2[], a.attnum) "
    "FROM pg_catalog.pg_class c "
    "JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
    "LEFT JOIN pg_catalog.pg_index i ON i.indrelid = c.oid AND i.indisprimary "
    "WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p') AND c.relname = ANY(%(names)s) "
    "ORDER BY c.relname, a.attnum"
)

# format_type's spelling -> SQLAlchemy's, for the types SQLAlchemy renders differently.
_SPELLED = {
    "character varying": "VARCHAR",
    "character": "CHAR",
    "bpchar": "CHAR",
    "timestamp without time zone": "TIMESTAMP WITHOUT TIME ZONE",
    "timestamp with time zone": "TIMESTAMP WITH TIME ZONE",
    "time without time zone": "TIME WITHOUT TIME ZONE",
    "time with time zone": "TIME WITH TIME ZONE",
    "double precision": "DOUBLE PRECISION",
    "bit varying": "BIT VARYING",
}
_TYPE = re.compile(r"(?P<base>[a-z][a-z0-9_ ]*?)(?:\((?P<args>[0-9, ]+)\))?(?P<rest>(?: [a-z ]+)?)")


def spelled(format_type: str) -> str:
    """A type as ``format_type`` gives it, spelled as SQLAlchemy's PostgreSQL dialect compiles it."""
    m = _TYPE.fullmatch(format_type)
    if m is None:
        return format_type.upper()
    base = (m["base"] + m["rest"]).strip()
    name = _SPELLED.get(base, base.upper())
    if m["args"] is None:
        return name
    args = ", ".join(a.strip() for a in m["args"].split(","))
    if base.startswith(("timestamp ", "time ")):
        head, _, zone = name.partition(" ")
        return f"{head}({args}) {zone}"
    return f"{name}({args})"


def table_names(conn: Connection) -> list[str]:
    return [str(r[0]) for r in conn.exec_driver_sql(TABLES_SQL).fetchall()]


def describe(conn: Connection, tables: Iterable[str]) -> dict[str, tuple[list[ColumnEntry], list[str]]]:
    """Columns and primary key of each of ``tables`` (a table that does not exist is left out)."""
    found: dict[str, tuple[list[ColumnEntry], list[tuple[int, str]]]] = {}
    for table, column, type_, notnull, key_position in conn.exec_driver_sql(COLUMNS_SQL, {"names": list(tables)}).fetchall():
        columns, pk = found.setdefault(str(table), ([], []))
        columns.append(ColumnEntry(str(column), spelled(str(type_)), not notnull))
        if key_position is not None:
            pk.append((int(key_position), str(column)))
    return {t: (columns, [c for _, c in sorted(pk)]) for t, (columns, pk) in found.items()}


def column_names(conn: Connection, table: str) -> list[str]:
    described = describe(conn, [table]).get(table)
    return [c.name for c in described[0]] if described else []


def quote(ident: str) -> str:
    """An identifier quoted for PostgreSQL, always: the catalog's own spelling, whatever its case."""
    return '"' + ident.replace('"', '""') + '"'


def quoted(columns: Sequence[str]) -> str:
    return ", ".join(quote(c) for c in columns)
