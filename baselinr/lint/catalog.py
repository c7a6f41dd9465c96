"""What the linter knows of the schema: tables, column types and indexed columns.

A view of the schema model (``Catalog``): built by ``linter`` from the
model before the migrations being linted, and updated statement by
statement through the model's own DDL reader (``storage.follow``), so rules
can tell a widening type change from a narrowing one. Unknown tables are
treated as existing (they may hold rows); unknown column types as unknown.
The helpers read names off sqlglot's nodes for the rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlglot import exp

from baselinr.storage.dialects import dialect_class
from baselinr.storage.follow import Unfollowed, follow
from baselinr.storage.model import Schema, SqlType
from baselinr.storage.sqlparse import SQLGLOT_DIALECTS


def table_name(node: exp.Expression | None) -> str | None:
    """Lower-case name of a table node, without its schema."""
    if isinstance(node, exp.Schema):
        node = node.this
    if isinstance(node, exp.Table) and node.name:
        return node.name.lower()
    return None


def dropped_tables(node: exp.Drop) -> list[str]:
    """The tables a DROP TABLE names (sqlglot keeps them in ``tables``)."""
    nodes = list(node.args.get("tables") or []) or [node.this]
    return [name for name in (table_name(n) for n in nodes) if name]


def column_name(node: exp.Expression | None) -> str | None:
    if node is None:
        return None
    name = node.name if not isinstance(node, exp.Identifier) else node.this
    return str(name).lower() if name else None


@dataclass
class Catalog:
    """What the rules read of the schema: a view of the schema model, advanced statement by statement.

    ``schema`` starts as the model before the first linted migration (``Chain.model_at``) and is
    changed by ``storage.follow``, the one reader of DDL, as each statement is linted. Column types
    come from the model's families, rendered in the dialect; a type that a linted statement wrote
    is kept as written (``written``), so ``SMALLINT`` → ``INT`` is still seen as a widening.
    """

    schema: Schema = field(default_factory=Schema)
    dialect: str = "postgres"
    written: dict[tuple[str, str], exp.DataType] = field(default_factory=dict)

    def column_type(self, table: str | None, column: str | None) -> exp.DataType | None:
        if table is None or column is None:
            return None
        t = self.schema.tables.get(table)
        col = t.column(column) if t is not None else None
        if col is None:
            return None
        return self.written.get((table, column)) or _data_type(col.type, self.dialect)

    @property
    def indexed(self) -> dict[str, set[str]]:
        """Table → the columns some index covers."""
        return {n: {c for i in t.indexes for c in i.column_names} for n, t in self.schema.tables.items() if t.indexes}

    @property
    def index_tables(self) -> dict[str, str]:
        """Index name → its table."""
        return {i.name.lower(): n for n, t in self.schema.tables.items() for i in t.indexes}

    def apply(self, node: exp.Expression, sql: str) -> list[Unfollowed]:
        """Follow one parsed statement on the model; what it could not follow is returned."""
        self._remember_types(node)
        return follow(self.schema, [sql], self.dialect)

    def _remember_types(self, node: exp.Expression) -> None:
        if isinstance(node, exp.Drop) and (node.args.get("kind") or "").upper() == "TABLE":
            gone = set(dropped_tables(node))
            self.written = {k: v for k, v in self.written.items() if k[0] not in gone}
        if not isinstance(node, exp.Alter):
            return
        name = table_name(node.this)
        if not name:
            return
        for action in node.args.get("actions") or []:
            if isinstance(action, exp.ColumnDef) and action.name and isinstance(action.args.get("kind"), exp.DataType):
                self.written[(name, action.name.lower())] = action.args["kind"]
            elif isinstance(action, exp.AlterColumn) and isinstance(action.args.get("dtype"), exp.DataType):
                col = column_name(action.this)
                if col:
                    self.written[(name, col)] = action.args["dtype"]
            elif isinstance(action, exp.ModifyColumn) and isinstance(action.this, exp.ColumnDef):
                kind = action.this.args.get("kind")
                if isinstance(kind, exp.DataType):
                    self.written[(name, action.this.name.lower())] = kind


def _data_type(t: SqlType, dialect: str) -> exp.DataType | None:
    """The model type as sqlglot's ``DataType``, spelled as the dialect renders it."""
    from sqlglot.errors import SqlglotError

    try:
        return exp.DataType.build(dialect_class(dialect)().render_type(t), dialect=SQLGLOT_DIALECTS[dialect])
    except (SqlglotError, KeyError, ValueError):
        return None
