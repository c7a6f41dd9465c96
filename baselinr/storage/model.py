"""The schema model: Baselinr's tables as data, rendered to DDL per dialect.

Migrations that are written as model operations (``CreateTable``,
``AddColumn``, ``CreateIndex`` …) get their ``up_sql`` and ``down_sql``
rendered from here for each dialect, and the same operations, replayed from
v1 to vN, give the model that ``validate`` compares the live database with.
One source for both, so the DDL and the check cannot drift apart.

Types are abstract (``String(255)``, ``Timestamp()``, ``Json()`` …); each
dialect's spelling lives in ``baselinr.storage.dialects``.

The operations themselves are defined in ``baselinr.storage.operations`` and
importable from here (``from baselinr.storage.model import CreateTable``):
every frozen dataclass costs generated code at import, and ``status``, or an
``apply`` with nothing to do on a chain of SQL migrations, needs the tables
(the version table's, the journal's) but no operation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from baselinr.storage.dialects import Dialect
    from baselinr.storage.operations import AddColumn as AddColumn
    from baselinr.storage.operations import CreateIndex as CreateIndex
    from baselinr.storage.operations import CreateTable as CreateTable
    from baselinr.storage.operations import RebuildTable as RebuildTable
else:

    def __getattr__(name: str) -> Any:
        """The operations of ``baselinr.storage.operations``, imported on first use."""
        if name in ("AddColumn", "CreateIndex", "CreateTable", "RebuildTable"):
            from baselinr.storage import operations

            return getattr(operations, name)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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


def render_up(ops: Iterable[Operation], dialect: Dialect, names: Names = identity) -> list[str]:
    return [s for op in ops for s in op.up(dialect, names)]


def render_down(ops: Sequence[Operation], dialect: Dialect, names: Names = identity) -> list[str]:
    return [s for op in reversed(ops) for s in op.down(dialect, names)]
