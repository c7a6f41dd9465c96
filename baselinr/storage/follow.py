"""Follow the DDL of a SQL migration on the schema model.

``Chain.model_at`` replays every migration 1..N on a ``Schema``: a migration
that declares model ``operations`` applies them; one written in SQL is
followed here, statement by statement, read with sqlglot in the database's
dialect. So validate, drift, backup, restore, ``migrate test``, lint and
adoption all know the columns the guide's own SQL migrations add.

What is followed (names are folded to lower case):

- ``CREATE TABLE`` (columns, types, ``NOT NULL``, defaults, primary and
  unique keys, inline MySQL ``INDEX``/``KEY``, ``SERIAL`` /
  ``AUTO_INCREMENT`` / ``AUTOINCREMENT`` / ``IDENTITY``), ``IF NOT EXISTS``;
  ``DROP TABLE``; ``ALTER TABLE … RENAME TO``, MySQL ``RENAME TABLE``;
- ``ALTER TABLE`` ``ADD COLUMN`` (``IF NOT EXISTS``), ``DROP COLUMN``,
  ``RENAME COLUMN``, ``ALTER COLUMN … TYPE`` / ``SET DATA TYPE`` /
  ``SET|DROP NOT NULL`` / ``SET|DROP DEFAULT``, MySQL ``MODIFY`` and
  ``CHANGE``, ``ADD INDEX`` / ``ADD UNIQUE``, ``ADD PRIMARY KEY``,
  ``DROP INDEX``, ``DROP PRIMARY KEY``, foreign keys and checks (no model
  effect);
- ``CREATE [UNIQUE] INDEX``, ``DROP INDEX``, ``ALTER INDEX … RENAME TO``;
- statements that change no table: DML, ``TRUNCATE``, views, comments,
  ``SET``, ``PRAGMA``, transaction control.

So the guide's SQLite copy-and-swap rebuild (``CREATE TABLE x_new``, copy,
``DROP TABLE x``, ``ALTER TABLE x_new RENAME TO x``) comes out as the new
table under the old name. Anything else (a type outside the model's
families, ``CREATE TABLE … AS SELECT``, ``DROP CONSTRAINT``, a statement the
parser cannot read) is returned as ``Unfollowed``: the model is then not
exact, and ``migrate lint`` / ``apply --dry-run`` name the statement with
what to do (declare ``operations=[...]``). A Python step is taken to change
rows only (the guide's use of it); one that changes the schema must declare
``operations``, or a backup refuses the columns the model does not know.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from baselinr.storage.families import SERIAL, sql_type
from baselinr.storage.model import NOW, Column, Index, Schema, SqlType, Table
from baselinr.storage.sqlparse import parse_any

if TYPE_CHECKING:
    from sqlglot import exp

# Statements that change no table of the model.
_NO_SCHEMA_CHANGE = (
    "Insert",
    "Update",
    "Delete",
    "Select",
    "Union",
    "Merge",
    "TruncateTable",
    "Transaction",
    "Commit",
    "Rollback",
    "Pragma",
    "Set",
    "Comment",
    "Grant",
    "Revoke",
    "Use",
    "Analyze",
    "Semicolon",
)
_NO_TABLE_KINDS = {"VIEW", "SEQUENCE", "FUNCTION", "PROCEDURE", "SCHEMA", "DATABASE", "TRIGGER", "TYPE", "STAGE"}
_IDENT = r'(?:"[^"]+"|`[^`]+`|[A-Za-z_][\w$]*)'
_RENAME_TABLE = re.compile(r"^\s*RENAME\s+TABLE\s+(.+?)\s*$", re.I | re.S)
_RENAME_PAIR = re.compile(rf"^\s*(?:{_IDENT}\.)?({_IDENT})\s+TO\s+(?:{_IDENT}\.)?({_IDENT})\s*$", re.I)
# Opaque PostgreSQL statements that touch no table's columns or indexes.
_HARMLESS_COMMANDS = re.compile(
    r"^\s*(?:CREATE\s+(?:OR\s+REPLACE\s+)?(?:EXTENSION|FUNCTION|PROCEDURE|TRIGGER|TYPE|SEQUENCE|SCHEMA|ROLE)\b"
    r"|ALTER\s+(?:SEQUENCE|FUNCTION|ROLE|DEFAULT\s+PRIVILEGES)\b|DROP\s+(?:EXTENSION|FUNCTION|TRIGGER|TYPE|SEQUENCE)\b"
    r"|VACUUM\b|REINDEX\b|GRANT\b|REVOKE\b|DO\b)",
    re.I,
)


TYPE_NOT_IN_MODEL = "type"
STATEMENT_NOT_FOLLOWED = "statement"
MODEL_TYPES = "integer, bigint, float, decimal, string, text, json, timestamp, boolean"


@dataclass(frozen=True)
class Unfollowed:
    """A statement of a migration whose effect on the schema the model could not follow."""

    index: int  # 1-based, among the migration's statements
    sql: str
    reason: str
    kind: str = STATEMENT_NOT_FOLLOWED

    @property
    def advice(self) -> str:
        """What to do, as one sentence that works when followed."""
        if self.kind == TYPE_NOT_IN_MODEL:
            return (
                f"Use a type of the model ({MODEL_TYPES}); a backup refuses a column of another type "
                "unless it is left out with --exclude-column."
            )
        return (
            "Declare what it changes with operations=[...] beside the SQL (the SQL still runs; the model, "
            "validate and backups read the operations)."
        )


class _CannotFollow(Exception):
    def __init__(self, reason: str, kind: str = STATEMENT_NOT_FOLLOWED) -> None:
        super().__init__(reason)
        self.kind = kind


def follow(schema: Schema, statements: Sequence[str], dialect: str) -> list[Unfollowed]:
    """Apply what each of ``statements`` does to ``schema``; return those it could not follow."""
    missed: list[Unfollowed] = []
    for i, sql in enumerate(statements, 1):
        node = parse_any(sql, dialect)
        try:
            if node is None:
                raise _CannotFollow("the SQL parser could not read it")
            _Follower(schema, dialect).statement(node, sql)
        except _CannotFollow as exc:
            missed.append(Unfollowed(i, sql.strip(), str(exc), exc.kind))
    return missed


def _name(node: Any) -> str | None:
    from sqlglot import exp

    if isinstance(node, exp.Schema):
        node = node.this
    if isinstance(node, (exp.Table, exp.Column, exp.Identifier)) and node.name:
        return str(node.name).lower()
    if isinstance(node, exp.Dot):
        return _name(node.expression)
    return None


def _unquote(ident: str) -> str:
    return ident.strip('"`').lower()


class _Follower:
    def __init__(self, schema: Schema, dialect: str) -> None:
        self.schema = schema
        self.dialect = dialect

    # --- statements ---------------------------------------------------------

    def statement(self, node: exp.Expression, sql: str) -> None:
        from sqlglot import exp

        kind = str(node.args.get("kind") or "").upper()
        if isinstance(node, exp.Create):
            if kind == "TABLE":
                self.create_table(node)
            elif kind == "INDEX":
                self.create_index(node)
            elif kind not in _NO_TABLE_KINDS:
                raise _CannotFollow(f"CREATE {kind or '?'} is not a change the model follows")
        elif isinstance(node, exp.Drop):
            if kind == "TABLE":
                for t in node.args.get("tables") or [node.this]:
                    if (name := _name(t)) is not None:
                        self.schema.tables.pop(name, None)
            elif kind == "INDEX":
                for t in node.args.get("tables") or [node.this]:
                    self.drop_index(_name(t))
            elif kind not in _NO_TABLE_KINDS:
                raise _CannotFollow(f"DROP {kind or '?'} is not a change the model follows")
        elif isinstance(node, exp.Alter):
            if kind == "TABLE":
                self.alter_table(node)
            elif kind == "INDEX":
                self.alter_index(node)
            elif kind not in _NO_TABLE_KINDS:
                raise _CannotFollow(f"ALTER {kind or '?'} is not a change the model follows")
        elif isinstance(node, exp.Command):
            self.command(node, sql)
        elif type(node).__name__ not in _NO_SCHEMA_CHANGE:
            raise _CannotFollow(f"a {type(node).__name__.upper()} statement is not one the model follows")

    def command(self, node: exp.Command, sql: str) -> None:
        text = "\n".join(line for line in sql.splitlines() if not line.strip().startswith("--")).strip().rstrip(";")
        m = _RENAME_TABLE.match(text)
        if m is not None:
            for pair in m.group(1).split(","):
                p = _RENAME_PAIR.match(pair)
                if p is None:
                    raise _CannotFollow("the SQL parser could not read it")
                self.rename_table(_unquote(p.group(1)), _unquote(p.group(2)))
            return
        if _HARMLESS_COMMANDS.match(text):
            return
        raise _CannotFollow("the SQL parser could not read it")

    def create_table(self, node: exp.Create) -> None:
        from sqlglot import exp

        name = _name(node.this)
        if name is None:
            raise _CannotFollow("the table has no name the model can use")
        if node.args.get("exists") and name in self.schema.tables:
            return
        if not isinstance(node.this, exp.Schema) or node.args.get("expression") is not None:
            raise _CannotFollow(f"CREATE TABLE {name} without a column list (AS SELECT, LIKE, CLONE) is not followed")
        columns: list[Column] = []
        pk: list[str] = []
        unique: list[tuple[str, ...]] = []
        indexes: list[Index] = []
        for item in node.this.expressions:
            if isinstance(item, exp.ColumnDef):
                col, is_pk, is_unique = self.column(item, name)
                columns.append(col)
                if is_pk:
                    pk.append(col.name)
                if is_unique:
                    unique.append((col.name,))
            else:
                self.table_constraint(item, name, pk, unique, indexes)
        if not pk:
            pk = [c.name for c in columns if c.autoincrement]
        columns = [replace(c, nullable=False) if c.name in pk else c for c in columns]
        self.schema.tables[name] = Table(name, tuple(columns), tuple(pk), tuple(indexes), tuple(unique))

    def create_index(self, node: exp.Create) -> None:
        from sqlglot import exp

        index = node.this
        if not isinstance(index, exp.Index):
            raise _CannotFollow("CREATE INDEX without a table is not followed")
        table = self.table(_name(index.args.get("table")))
        name = _name(index.this)
        if name is None:
            raise _CannotFollow("an index without a name is not followed")
        if node.args.get("exists") and any(i.name.lower() == name for i in table.indexes):
            return
        params = index.args.get("params")
        cols = self.index_columns(params.args.get("columns") if params is not None else None)
        self.put(replace(table, indexes=(*table.indexes, Index(name, table.name, cols, bool(node.args.get("unique"))))))

    def alter_table(self, node: exp.Alter) -> None:
        from sqlglot import exp

        name = _name(node.this)
        if name is None or name not in self.schema.tables:
            if node.args.get("exists"):
                return
            raise _CannotFollow(f"table {name} is not in the schema model at this point")
        for action in node.args.get("actions") or []:
            table = self.schema.tables[name]
            if isinstance(action, exp.ColumnDef):
                col, is_pk, is_unique = self.column(action, name)
                if table.column(col.name) is not None:
                    if action.args.get("exists"):
                        continue
                    raise _CannotFollow(f"column {name}.{col.name} is already in the schema model")
                table = replace(table, columns=(*table.columns, col))
                if is_pk:
                    table = replace(table, primary_key=(col.name,))
                if is_unique:
                    table = replace(table, unique=(*table.unique, (col.name,)))
                self.put(table)
            elif isinstance(action, exp.AddConstraint):
                pk, unique, indexes = list(table.primary_key), list(table.unique), list(table.indexes)
                for item in action.expressions:
                    self.table_constraint(item, name, pk, unique, indexes)
                self.put(replace(table, primary_key=tuple(pk), unique=tuple(unique), indexes=tuple(indexes)))
            elif isinstance(action, exp.Drop):
                self.alter_drop(table, action)
            elif type(action).__name__ == "DropPrimaryKey":
                self.put(replace(table, primary_key=()))
            elif isinstance(action, exp.AlterColumn):
                self.alter_column(table, action)
            elif isinstance(action, exp.ModifyColumn) and isinstance(action.this, exp.ColumnDef):
                old = _name(action.args.get("rename_from")) or _name(action.this.this)
                if old is None or table.column(old) is None:
                    raise _CannotFollow(f"column {name}.{old} is not in the schema model")
                col, _pk, _unique = self.column(action.this, name)
                if old != col.name:
                    table = _rename_column(table, old, col.name)
                if col.name in table.primary_key:
                    col = replace(col, nullable=False)
                self.put(_replace_column(table, col))
            elif isinstance(action, exp.RenameColumn):
                old, new = _name(action.this), _name(action.args.get("to"))
                if old is None or new is None or table.column(old) is None:
                    raise _CannotFollow(f"column {name}.{old} is not in the schema model")
                self.put(_rename_column(table, old, new))
            elif isinstance(action, exp.AlterRename):
                new_name = _name(action.this)
                if new_name is None:
                    raise _CannotFollow("the new table name is not one the model can use")
                self.rename_table(name, new_name)
                name = new_name
            else:
                raise _CannotFollow(f"ALTER TABLE … {type(action).__name__} is not a change the model follows")

    def alter_drop(self, table: Table, action: exp.Drop) -> None:
        kind = str(action.args.get("kind") or "").upper()
        targets = [_name(t) for t in action.args.get("tables") or [action.this]]
        if kind == "COLUMN":
            for col in targets:
                if col is None or table.column(col) is None:
                    if action.args.get("exists"):
                        continue
                    raise _CannotFollow(f"column {table.name}.{col} is not in the schema model")
                table = _drop_column(table, col, keep_index=self.dialect == "mysql")
            self.put(table)
        elif kind == "INDEX":
            for idx in targets:
                self.drop_index(idx)
        elif kind == "PRIMARY KEY":
            self.put(replace(table, primary_key=()))
        elif kind == "FOREIGN KEY":
            return
        else:
            raise _CannotFollow(f"ALTER TABLE … DROP {kind or '?'} is not a change the model follows")

    def alter_column(self, table: Table, action: exp.AlterColumn) -> None:
        name = _name(action.this)
        col = table.column(name) if name else None
        if col is None:
            raise _CannotFollow(f"column {table.name}.{name} is not in the schema model")
        dtype = action.args.get("dtype")
        if dtype is not None:
            col = replace(col, type=self.type_of(dtype, f"{table.name}.{col.name}"))
        elif action.args.get("allow_null") is not None:
            col = replace(col, nullable=bool(action.args.get("allow_null")))
        elif action.args.get("default") is not None:
            col = replace(col, default=self.default(action.args["default"]))
        elif action.args.get("drop"):
            col = replace(col, default=None)
        elif action.args.get("visible") is not None or action.args.get("comment") is not None:
            return
        else:
            raise _CannotFollow("this ALTER COLUMN is not a change the model follows")
        self.put(_replace_column(table, col))

    def alter_index(self, node: exp.Alter) -> None:
        from sqlglot import exp

        old = _name(node.this)
        for action in node.args.get("actions") or []:
            if not isinstance(action, exp.AlterRename):
                continue  # SET (fillfactor …) and the like: no change of name or columns
            new = _name(action.this)
            for table in list(self.schema.tables.values()):
                renamed = tuple(replace(i, name=new) if i.name.lower() == old and new else i for i in table.indexes)
                if renamed != table.indexes:
                    self.put(replace(table, indexes=renamed))

    # --- pieces ----------------------------------------------------------------

    def column(self, node: exp.ColumnDef, table: str) -> tuple[Column, bool, bool]:
        """The model column of a column definition, and whether it is the primary key / unique."""
        from sqlglot import exp

        name = _name(node.this)
        if name is None:
            raise _CannotFollow("a column without a name the model can use")
        dtype = node.args.get("kind")
        if not isinstance(dtype, exp.DataType):
            raise _CannotFollow(f"column {table}.{name} has no type")
        sql_t = self.type_of(dtype, f"{table}.{name}")
        nullable, default, is_pk, is_unique = True, None, False, False
        autoincrement = dtype.this.name in SERIAL
        for c in node.args.get("constraints") or []:
            kind = c.args.get("kind") if isinstance(c, exp.ColumnConstraint) else c
            if isinstance(kind, exp.NotNullColumnConstraint):
                nullable = bool(kind.args.get("allow_null"))
            elif isinstance(kind, exp.PrimaryKeyColumnConstraint):
                is_pk, nullable = True, False
            elif isinstance(kind, (exp.AutoIncrementColumnConstraint, exp.GeneratedAsIdentityColumnConstraint)):
                autoincrement = True
            elif isinstance(kind, exp.DefaultColumnConstraint):
                default = self.default(kind.this)
            elif isinstance(kind, exp.UniqueColumnConstraint):
                is_unique = True
        if autoincrement and sql_t.family == "decimal":
            sql_t = SqlType("bigint")  # NUMBER(38, 0) IDENTITY on Snowflake: an integer key
        return Column(name, sql_t, nullable, default, autoincrement), is_pk, is_unique

    def type_of(self, dtype: exp.DataType, where: str) -> SqlType:
        from sqlglot import exp

        params = []
        for p in dtype.expressions:
            value = p.this if isinstance(p, exp.DataTypeParam) else p
            if isinstance(value, exp.Literal) and not value.is_string and str(value.this).isdigit():
                params.append(int(value.this))
        base = dtype.this.name
        found = sql_type(base, *params[:2])
        if found is None:
            raise _CannotFollow(f"column {where} has type {dtype.sql(self._sqlglot())}, none of the model's", TYPE_NOT_IN_MODEL)
        return found

    def default(self, node: exp.Expression) -> str:
        from sqlglot import exp

        if isinstance(node, (exp.CurrentTimestamp, exp.CurrentDate)) or (
            isinstance(node, exp.Anonymous) and str(node.this).lower() in ("now", "getdate", "sysdate")
        ):
            return NOW
        return node.sql(self._sqlglot())

    def table_constraint(
        self, item: exp.Expression, table: str, pk: list[str], unique: list[tuple[str, ...]], indexes: list[Index]
    ) -> None:
        from sqlglot import exp

        if isinstance(item, exp.Constraint):
            for inner in item.expressions:
                self.table_constraint(inner, table, pk, unique, indexes)
            return
        if isinstance(item, exp.PrimaryKey):
            pk[:] = [n for n in (_name(e) for e in item.expressions) if n]
        elif isinstance(item, exp.UniqueColumnConstraint):
            cols = self.constraint_columns(item.this)
            index_name = _name(item.this.this) if isinstance(item.this, exp.Schema) else None
            if cols:
                unique.append(cols)
            elif index_name is None:
                raise _CannotFollow(f"a UNIQUE key on {table} without columns is not followed")
        elif isinstance(item, exp.IndexColumnConstraint):
            name = _name(item.this)
            cols = self.index_columns(item.expressions)
            if name is None:
                raise _CannotFollow(f"an index on {table} without a name is not followed")
            indexes.append(Index(name, table, cols))
        elif isinstance(item, (exp.ForeignKey, exp.CheckColumnConstraint, exp.Check)):
            return
        else:
            raise _CannotFollow(f"the {type(item).__name__} of {table} is not a constraint the model follows")

    def constraint_columns(self, node: Any) -> tuple[str, ...]:
        from sqlglot import exp

        if isinstance(node, exp.Schema):
            return tuple(n for n in (_name(e) for e in node.expressions) if n)
        return ()

    def index_columns(self, items: Any) -> tuple[str, ...]:
        from sqlglot import exp

        out = []
        for item in items or []:
            desc = isinstance(item, exp.Ordered) and bool(item.args.get("desc"))
            target = item.this if isinstance(item, exp.Ordered) else item
            name = _name(target)
            if name is None:
                raise _CannotFollow("an index on an expression is not followed")
            out.append(f"{name} DESC" if desc else name)
        if not out:
            raise _CannotFollow("an index without columns is not followed")
        return tuple(out)

    def table(self, name: str | None) -> Table:
        if name is None or name not in self.schema.tables:
            raise _CannotFollow(f"table {name} is not in the schema model at this point")
        return self.schema.tables[name]

    def put(self, table: Table) -> None:
        self.schema.tables[table.name] = table

    def drop_index(self, name: str | None) -> None:
        for table in list(self.schema.tables.values()):
            kept = tuple(i for i in table.indexes if i.name.lower() != name)
            if kept != table.indexes:
                self.put(replace(table, indexes=kept))

    def rename_table(self, old: str, new: str) -> None:
        table = self.table(old)
        del self.schema.tables[old]
        self.put(replace(table, name=new, indexes=tuple(replace(i, table=new) for i in table.indexes)))

    def _sqlglot(self) -> str:
        from baselinr.storage.sqlparse import SQLGLOT_DIALECTS

        return SQLGLOT_DIALECTS[self.dialect]


def _replace_column(table: Table, col: Column) -> Table:
    return replace(table, columns=tuple(col if c.name == col.name else c for c in table.columns))


def _rename_column(table: Table, old: str, new: str) -> Table:
    def swap(cols: tuple[str, ...]) -> tuple[str, ...]:
        out = []
        for c in cols:
            parts = c.split()
            out.append(" ".join([new, *parts[1:]]) if parts and parts[0] == old else c)
        return tuple(out)

    return replace(
        table,
        columns=tuple(replace(c, name=new) if c.name == old else c for c in table.columns),
        primary_key=swap(table.primary_key),
        unique=tuple(swap(u) for u in table.unique),
        indexes=tuple(replace(i, columns=swap(i.columns)) for i in table.indexes),
    )


def _drop_column(table: Table, col: str, *, keep_index: bool) -> Table:
    """Without ``col``: PostgreSQL and SQLite drop the indexes on it, MySQL only takes it out of them."""
    indexes = []
    for i in table.indexes:
        if col not in i.column_names:
            indexes.append(i)
        elif keep_index and len(i.columns) > 1:
            indexes.append(replace(i, columns=tuple(c for c in i.columns if c.split()[0] != col)))
    return replace(
        table,
        columns=tuple(c for c in table.columns if c.name != col),
        primary_key=tuple(c for c in table.primary_key if c != col),
        unique=tuple(u for u in table.unique if col not in u),
        indexes=tuple(indexes),
    )
