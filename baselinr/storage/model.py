"""The schema model: Baselinr's tables as data, rendered to DDL per dialect.

Migrations that are written as model operations (``CreateTable``,
``AddColumn``, ``CreateIndex`` …) get their ``up_sql`` and ``down_sql``
rendered from here for each dialect, and the same operations, replayed from
v1 to vN, give the model that ``validate`` compares the live database with.
One source for both, so the DDL and the check cannot drift apart.

Types are abstract (``String(255)``, ``Timestamp()``, ``Json()`` …); each
dialect's spelling lives in ``baselinr.storage.dialects``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from baselinr.storage.dialects import Dialect


# --- types -----------------------------------------------------------------


@dataclass(frozen=True)
class SqlType:
    """An abstract column type; ``family`` is what validation compares."""

    family: str
    length: int | None = None
    precision: int | None = None
    scale: int | None = None


def String(length: int) -> SqlType:  # noqa: N802 - reads like a type
    return SqlType("string", length=length)


def Text() -> SqlType:  # noqa: N802
    return SqlType("text")


def Integer() -> SqlType:  # noqa: N802
    return SqlType("integer")


def BigInteger() -> SqlType:  # noqa: N802
    return SqlType("bigint")


def Float() -> SqlType:  # noqa: N802
    return SqlType("float")


def Decimal(precision: int, scale: int) -> SqlType:  # noqa: N802
    return SqlType("decimal", precision=precision, scale=scale)


def Timestamp() -> SqlType:  # noqa: N802
    return SqlType("timestamp")


def Boolean() -> SqlType:  # noqa: N802
    return SqlType("boolean")


def Json() -> SqlType:  # noqa: N802
    return SqlType("json")


@dataclass(frozen=True)
class Column:
    """A column; ``default`` is SQL text or the marker ``NOW``."""

    name: str
    type: SqlType
    nullable: bool = True
    default: str | None = None
    autoincrement: bool = False


NOW = "<now>"


@dataclass(frozen=True)
class Index:
    """A secondary index. A column named ``"x DESC"`` is indexed descending."""

    name: str
    table: str
    columns: tuple[str, ...]
    unique: bool = False

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.split()[0] for c in self.columns)


@dataclass(frozen=True)
class Table:
    """A table with its primary key and indexes.

    ``positional``: a client reads it with ``SELECT *`` by column position
    (Baselinr's profiler does, for the RCA tables), so the column order is
    part of the schema and ``validate`` checks it.
    """

    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()
    indexes: tuple[Index, ...] = ()
    unique: tuple[tuple[str, ...], ...] = ()
    positional: bool = False

    def column(self, name: str) -> Column | None:
        for c in self.columns:
            if c.name == name:
                return c
        return None


def table(
    name: str,
    *columns: Column,
    primary_key: Sequence[str] = (),
    indexes: Mapping[str, Sequence[str]] | None = None,
    unique: Sequence[Sequence[str]] = (),
) -> Table:
    """Convenience constructor: ``indexes`` maps index name to columns."""
    pk = tuple(primary_key) or tuple(c.name for c in columns if c.autoincrement)
    idx = tuple(Index(n, name, tuple(cols)) for n, cols in (indexes or {}).items())
    return Table(name, tuple(columns), pk, idx, tuple(tuple(u) for u in unique))


# --- the model of a whole schema ------------------------------------------


@dataclass
class Schema:
    """The tables expected at one version, keyed by their logical name."""

    tables: dict[str, Table] = field(default_factory=dict)

    def copy(self) -> Schema:
        return Schema(dict(self.tables))


class Names(Protocol):
    """Maps a logical table name to the physical one (renamed runs/results)."""

    def __call__(self, logical: str) -> str: ...


def identity(logical: str) -> str:
    return logical


# --- operations --------------------------------------------------------------


class Operation(Protocol):
    """One reversible change, rendered per dialect and replayed on a model."""

    def apply(self, schema: Schema) -> None: ...

    def up(self, dialect: Dialect, names: Names) -> list[str]: ...

    def down(self, dialect: Dialect, names: Names) -> list[str]: ...


@dataclass(frozen=True)
class CreateTable:
    table: Table

    def apply(self, schema: Schema) -> None:
        schema.tables[self.table.name] = self.table

    def up(self, dialect: Dialect, names: Names) -> list[str]:
        t = _renamed(self.table, names)
        stmts = [dialect.render_create_table(t)]
        stmts += [dialect.render_create_index(i) for i in t.indexes if dialect.supports_indexes]
        return stmts

    def down(self, dialect: Dialect, names: Names) -> list[str]:
        return [f"DROP TABLE {dialect.quote(names(self.table.name))}"]


@dataclass(frozen=True)
class AddColumn:
    table: str
    column: Column

    def apply(self, schema: Schema) -> None:
        t = schema.tables[self.table]
        schema.tables[self.table] = replace(t, columns=(*t.columns, self.column))

    def up(self, dialect: Dialect, names: Names) -> list[str]:
        return [dialect.render_add_column(names(self.table), self.column)]

    def down(self, dialect: Dialect, names: Names) -> list[str]:
        return [f"ALTER TABLE {dialect.quote(names(self.table))} DROP COLUMN {dialect.quote(self.column.name)}"]


@dataclass(frozen=True)
class CreateIndex:
    index: Index

    def apply(self, schema: Schema) -> None:
        t = schema.tables[self.index.table]
        schema.tables[self.index.table] = replace(t, indexes=(*t.indexes, self.index))

    def up(self, dialect: Dialect, names: Names) -> list[str]:
        if not dialect.supports_indexes:
            return []
        return [dialect.render_create_index(replace(self.index, table=names(self.index.table)))]

    def down(self, dialect: Dialect, names: Names) -> list[str]:
        if not dialect.supports_indexes:
            return []
        return [dialect.render_drop_index(replace(self.index, table=names(self.index.table)))]


@dataclass(frozen=True)
class RebuildTable:
    """Recreate ``before`` as ``after`` (same name), keeping every row.

    For changes that no ALTER can make: a column order that clients read by
    position, a primary-key column that must accept NULL on SQLite. Rows are
    copied by column name; the dialect renders the copy (``render_rebuild``),
    so ids, sequences and indexes come out as a fresh ``CREATE TABLE`` would
    make them. ``dialects`` limits the DDL to those that need it; the model
    changes everywhere.
    """

    before: Table
    after: Table
    dialects: frozenset[str] | None = None

    def apply(self, schema: Schema) -> None:
        schema.tables[self.after.name] = self.after

    def up(self, dialect: Dialect, names: Names) -> list[str]:
        return self._render(dialect, names, self.before, self.after)

    def down(self, dialect: Dialect, names: Names) -> list[str]:
        return self._render(dialect, names, self.after, self.before)

    def _render(self, dialect: Dialect, names: Names, old: Table, new: Table) -> list[str]:
        if self.dialects is not None and dialect.name not in self.dialects:
            return []
        return dialect.render_rebuild(_renamed(old, names), _renamed(new, names))


def _renamed(t: Table, names: Names) -> Table:
    physical = names(t.name)
    if physical == t.name:
        return t
    return replace(t, name=physical, indexes=tuple(replace(i, table=physical) for i in t.indexes))


def render_up(ops: Iterable[Operation], dialect: Dialect, names: Names = identity) -> list[str]:
    return [s for op in ops for s in op.up(dialect, names)]


def render_down(ops: Sequence[Operation], dialect: Dialect, names: Names = identity) -> list[str]:
    return [s for op in reversed(ops) for s in op.down(dialect, names)]
