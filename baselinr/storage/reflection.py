"""The one reader of the live schema: SQLAlchemy's inspector, and PostgreSQL's catalog on the bare driver.

``Reflection`` asks each kind (columns, primary keys, indexes, unique keys)
for all tables at once where the dialect batches reflection (``get_multi_*``:
one round trip per kind on PostgreSQL) and per table elsewhere. Used by
``drift`` (validate, repair, baseline: the live schema against the model),
``adopt`` (what a database the profiler made already has), ``take``
(``migrate test``'s snapshots of the whole live schema) and the backup's
table discovery and description (``describe``, for ``backup.tables``).

PostgreSQL backups and restores run on the bare driver, without importing
SQLAlchemy: they describe their tables with one catalog query
(``pg_describe``), which gives what ``describe`` gives through the
inspector to the letter (a test holds the two equal): column names in table
order, the type as SQLAlchemy's PostgreSQL dialect spells it
(``VARCHAR(255)``, ``TIMESTAMP WITHOUT TIME ZONE``), nullability, and the
primary key in key order. Tables are those of the connection's current
schema, as ``search_path`` (``storage.connection.schema``) makes it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


@dataclass(frozen=True)
class LiveColumn:
    """A live column: its name, its type as the dialect spells it, and whether it takes NULL."""

    name: str
    type: str
    nullable: bool = True


# Table → (its columns in table order, its primary key's columns in key order).
Described = dict[str, tuple[list[LiveColumn], list[str]]]


def inspector(conn: Connection) -> Any:
    """SQLAlchemy's inspector of ``conn`` (imported here: status never reflects)."""
    from sqlalchemy import inspect

    return inspect(conn)


def table_names(conn: Connection) -> list[str]:
    """The live tables, as the database names them."""
    return list(inspector(conn).get_table_names())


class Reflection:
    """The inspector, with its per-table answers (columns, primary key, indexes, unique
    constraints) fetched for all of ``tables`` in one ``get_multi_*`` call each: one round
    trip per kind where the dialect batches reflection (PostgreSQL), instead of one per
    table. A call with options, or a dialect without the batch methods, asks per table."""

    def __init__(self, insp: Any, tables: list[str]) -> None:
        self._insp = insp
        self._tables = tables
        self._batches: dict[str, dict[str, Any] | None] = {}

    def _one(self, kind: str, table: str, kw: dict[str, Any]) -> Any:
        if not kw and kind not in self._batches:
            try:
                batch = getattr(self._insp, f"get_multi_{kind}")(filter_names=self._tables)
            except NotImplementedError:
                self._batches[kind] = None
            else:
                self._batches[kind] = {name: value for (_schema, name), value in batch.items()}
        batched = None if kw else self._batches.get(kind)
        if batched is not None and table in batched:
            return batched[table]
        return getattr(self._insp, f"get_{kind}")(table, **kw)

    def get_columns(self, table: str, **kw: Any) -> Any:
        return self._one("columns", table, kw)

    def get_pk_constraint(self, table: str, **kw: Any) -> Any:
        return self._one("pk_constraint", table, kw)

    def get_indexes(self, table: str, **kw: Any) -> Any:
        return self._one("indexes", table, kw)

    def get_unique_constraints(self, table: str, **kw: Any) -> Any:
        return self._one("unique_constraints", table, kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._insp, name)


@dataclass(frozen=True)
class TableShape:
    """What one live table looks like: columns by lower-case name, keys and indexes."""

    name: str
    columns: dict[str, tuple[str, str, bool]]  # lower name -> (name, reflected type, nullable)
    primary_key: tuple[str, ...]
    unique: frozenset[tuple[str, ...]]
    indexes: dict[str, tuple[str, tuple[str, ...], bool]]  # lower name -> (name, columns, unique)


Snapshot = dict[str, TableShape]


def take(conn: Connection, *, indexes: bool = True, skip: frozenset[str] = frozenset()) -> Snapshot:
    """The live schema, keyed by lower-case table name, without the tables named in ``skip`` (lower case).

    ``indexes=False`` where the dialect has none (Snowflake, whose UNIQUE is
    declared but neither enforced nor reliably reflected): keys and indexes
    are then not read. Each kind is read for all tables at once (``Reflection``)."""
    names = [n for n in table_names(conn) if n.lower() not in skip]
    insp = Reflection(inspector(conn), names)
    return {name.lower(): _table(insp, name, indexes) for name in names}


def _cols(names: Any) -> tuple[str, ...]:
    return tuple(str(c).lower() for c in names or [] if c)


def _table(insp: Any, name: str, indexes: bool) -> TableShape:
    columns = {c["name"].lower(): (c["name"], str(c["type"]), bool(c.get("nullable", True))) for c in insp.get_columns(name)}
    pk = _cols((insp.get_pk_constraint(name) or {}).get("constrained_columns"))
    if not indexes:
        return TableShape(name, columns, pk, frozenset(), {})
    try:
        unique = frozenset(_cols(u.get("column_names")) for u in insp.get_unique_constraints(name))
    except NotImplementedError:
        unique = frozenset()
    try:
        reflected = insp.get_indexes(name)
    except NotImplementedError:
        reflected = []
    found = {
        str(i["name"]).lower(): (str(i["name"]), _cols(i.get("column_names")), bool(i.get("unique")))
        for i in reflected
        if i.get("name")
    }
    return TableShape(name, columns, pk, unique, found)


def describe(conn: Connection, names: Iterable[str]) -> Described:
    """Columns (type as this dialect spells it) and primary key of each of ``names``, through the
    inspector, each kind read for all of them at once where the dialect batches reflection."""
    raw = inspector(conn)
    wanted = list(names)
    insp = Reflection(raw, wanted)
    out: Described = {}
    for table in wanted:
        columns = []
        for c in insp.get_columns(table):
            try:
                type_ = c["type"].compile(dialect=conn.dialect)
            except Exception:  # noqa: BLE001 - a type SQLAlchemy reflects but cannot render
                type_ = str(c["type"])
            columns.append(LiveColumn(c["name"], type_, bool(c.get("nullable", True))))
        out[table] = (columns, list((insp.get_pk_constraint(table) or {}).get("constrained_columns") or []))
    return out


# --- PostgreSQL's catalog, on the bare driver --------------------------------------------


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


def pg_table_names(conn: Connection) -> list[str]:
    return [str(r[0]) for r in conn.exec_driver_sql(TABLES_SQL).fetchall()]


def pg_describe(conn: Connection, tables: Iterable[str]) -> Described:
    """Columns and primary key of each of ``tables`` (a table that does not exist is left out)."""
    found: dict[str, tuple[list[LiveColumn], list[tuple[int, str]]]] = {}
    for table, column, type_, notnull, key_position in conn.exec_driver_sql(COLUMNS_SQL, {"names": list(tables)}).fetchall():
        columns, pk = found.setdefault(str(table), ([], []))
        columns.append(LiveColumn(str(column), spelled(str(type_)), not notnull))
        if key_position is not None:
            pk.append((int(key_position), str(column)))
    return {t: (columns, [c for _, c in sorted(pk)]) for t, (columns, pk) in found.items()}


def pg_column_names(conn: Connection, table: str) -> list[str]:
    described = pg_describe(conn, [table]).get(table)
    return [c.name for c in described[0]] if described else []
