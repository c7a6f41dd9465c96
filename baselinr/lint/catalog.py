"""What the linter knows of the schema: tables, column types and indexed columns.

Built by ``linter`` from the statements of the migrations before the ones
being linted (and updated statement by statement while linting), so rules
can tell a widening type change from a narrowing one, or a table that may
hold rows from one this migration created. Unknown tables are treated as
existing (they may hold rows); unknown column types as unknown.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlglot import exp


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
    """Tables → columns → type, and the columns that some index covers."""

    tables: dict[str, dict[str, exp.DataType | None]] = field(default_factory=dict)
    indexed: dict[str, set[str]] = field(default_factory=dict)
    index_tables: dict[str, str] = field(default_factory=dict)  # index name → its table

    def column_type(self, table: str | None, column: str | None) -> exp.DataType | None:
        if table is None or column is None:
            return None
        return self.tables.get(table, {}).get(column)

    def apply(self, node: exp.Expression) -> None:
        """Record what one parsed statement does to the schema."""
        if isinstance(node, exp.Create):
            self._create(node)
        elif isinstance(node, exp.Drop) and (node.args.get("kind") or "").upper() == "INDEX":
            for name in dropped_tables(node):
                self.index_tables.pop(name, None)
        elif isinstance(node, exp.Drop) and (node.args.get("kind") or "").upper() == "TABLE":
            for name in dropped_tables(node):
                self.tables.pop(name, None)
                self.indexed.pop(name, None)
        elif isinstance(node, exp.Alter) and (node.args.get("kind") or "").upper() == "TABLE":
            self._alter(node)

    def _create(self, node: exp.Create) -> None:
        kind = (node.args.get("kind") or "").upper()
        if kind == "TABLE":
            name = table_name(node.this)
            if not name:
                return
            cols: dict[str, exp.DataType | None] = {}
            schema = node.this
            if isinstance(schema, exp.Schema):
                for col in schema.expressions:
                    if isinstance(col, exp.ColumnDef) and col.name:
                        kind_ = col.args.get("kind")
                        cols[col.name.lower()] = kind_ if isinstance(kind_, exp.DataType) else None
            self.tables[name] = cols
        elif kind == "INDEX" and isinstance(node.this, exp.Index):
            name = table_name(node.this.args.get("table"))
            if name and node.this.name:
                self.index_tables[node.this.name.lower()] = name
            params = node.this.args.get("params")
            if name and params is not None:
                for col in params.find_all(exp.Column):
                    self.indexed.setdefault(name, set()).add(col.name.lower())

    def _alter(self, node: exp.Alter) -> None:
        name = table_name(node.this)
        if not name:
            return
        cols = self.tables.setdefault(name, {})
        for action in node.args.get("actions") or []:
            if isinstance(action, exp.ColumnDef) and action.name:
                kind = action.args.get("kind")
                cols[action.name.lower()] = kind if isinstance(kind, exp.DataType) else None
            elif isinstance(action, exp.Drop) and (action.args.get("kind") or "").upper() == "COLUMN":
                for col in action.args.get("tables") or []:
                    cols.pop(col.name.lower(), None)
            elif isinstance(action, exp.AlterColumn) and isinstance(action.args.get("dtype"), exp.DataType):
                col_name = column_name(action.this)
                if col_name:
                    cols[col_name] = action.args["dtype"]
            elif isinstance(action, exp.ModifyColumn) and isinstance(action.this, exp.ColumnDef):
                old = action.args.get("rename_from")
                if old is not None:
                    cols.pop(str(column_name(old)), None)
                kind = action.this.args.get("kind")
                cols[action.this.name.lower()] = kind if isinstance(kind, exp.DataType) else None
            elif isinstance(action, exp.RenameColumn):
                old_name, new_name = column_name(action.this), column_name(action.args.get("to"))
                if old_name and new_name:
                    cols[new_name] = cols.pop(old_name, None)
            elif isinstance(action, exp.AlterRename):
                new = table_name(action.this)
                if new:
                    self.tables[new] = self.tables.pop(name, {})
                    self.index_tables = {i: (new if t == name else t) for i, t in self.index_tables.items()}
                    if name in self.indexed:
                        self.indexed[new] = self.indexed.pop(name)
