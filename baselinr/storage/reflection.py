"""The one reader of the live schema through SQLAlchemy's inspector.

``Reflection`` asks each kind (columns, primary keys, indexes, unique keys)
for all tables at once where the dialect batches reflection (``get_multi_*``:
one round trip per kind on PostgreSQL) and per table elsewhere. Used by
``drift`` (validate, repair, baseline: the live schema against the model),
``adopt`` (what a database the profiler made already has), ``take``
(``migrate test``'s snapshots of the whole live schema) and the backup's
table discovery and description (``backup.tables``). PostgreSQL backups
read the catalog with one query on the bare driver instead
(``backup.pg_catalog``), to the letter of what the inspector returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


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
