"""The model operations: ``CreateTable``, ``AddColumn``, ``CreateIndex``, ``RebuildTable``.

Each is one reversible change that a migration declares (``operations``):
rendered to DDL per dialect (``up`` / ``down``) and replayed on a ``Schema``
(``apply``), the one source of both that ``baselinr.storage.model`` describes.
They implement its ``Operation`` protocol and are importable from it too; they
live here so that a run that loads no such migration does not build their
classes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from baselinr.storage.model import Column, Index, Names, Schema, Table

if TYPE_CHECKING:
    from baselinr.storage.dialects import Dialect

__all__ = ["AddColumn", "CreateIndex", "CreateTable", "RebuildTable"]


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
