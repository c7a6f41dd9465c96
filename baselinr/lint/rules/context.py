"""What a rule sees (``Context``, ``Statement``) and the AST helpers rules share.

Used by every module of ``baselinr.lint.rules``; built by ``linter``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from sqlglot import exp

from baselinr.lint.catalog import Catalog, column_name, table_name
from baselinr.lint.findings import ERROR, WARNING, Finding

# Baselinr's tables that grow with every profiling run.
BIG_TABLES = frozenset({"baselinr_results", "baselinr_runs", "baselinr_events"})
SERIALS = {exp.DataType.Type.SERIAL, exp.DataType.Type.BIGSERIAL, exp.DataType.Type.SMALLSERIAL}


@dataclass
class Statement:
    index: int  # 1-based
    sql: str
    node: exp.Expression | None  # None: sqlglot could not parse it


@dataclass
class Context:
    """What a rule sees: the migration, its statements and the schema so far."""

    dialect: str
    version: int | None
    source: str
    statements: list[Statement]
    catalog: Catalog = field(default_factory=Catalog)
    created: set[str] = field(default_factory=set)  # tables created by this migration so far
    big_tables: frozenset[str] = BIG_TABLES  # as named in this database (config may rename them)

    def finding(self, rule: str, severity: str, stmt: Statement, advice: str, table: str | None = None) -> Finding:
        return Finding(rule, severity, self.version, self.source, stmt.index, stmt.sql, advice, table)

    def holds_rows(self, table: str | None) -> bool:
        """False only for a table this migration created (it is empty)."""
        return table is not None and table not in self.created

    def after(self, stmt: Statement) -> list[exp.Expression]:
        return [s.node for s in self.statements[stmt.index :] if s.node is not None]

    def others(self, stmt: Statement) -> list[exp.Expression]:
        return [s.node for s in self.statements if s.node is not None and s.index != stmt.index]

    def hazard(self, table: str | None) -> str:
        """Locking hazards are errors on the big tables, warnings elsewhere."""
        return ERROR if table in self.big_tables else WARNING


StatementRule = Callable[[Context, Statement], Iterator[Finding]]
UnitRule = Callable[[Context], Iterator[Finding]]


def alter_actions(node: exp.Expression | None) -> tuple[str | None, list[exp.Expression]]:
    if isinstance(node, exp.Alter) and (node.args.get("kind") or "").upper() == "TABLE":
        return table_name(node.this), list(node.args.get("actions") or [])
    return None, []


def constraints(col: exp.ColumnDef) -> list[exp.Expression]:
    return [c.args.get("kind") for c in col.args.get("constraints") or [] if c.args.get("kind") is not None]


def default_of(col: exp.ColumnDef) -> exp.Expression | None:
    for kind in constraints(col):
        if isinstance(kind, exp.DefaultColumnConstraint):
            value = kind.this
            return value if isinstance(value, exp.Expression) else None
    return None


def fills_itself(col: exp.ColumnDef) -> bool:
    """A default, identity, generated or auto-increment value fills existing rows."""
    fill = (
        exp.DefaultColumnConstraint,
        exp.GeneratedAsIdentityColumnConstraint,
        exp.ComputedColumnConstraint,
        exp.AutoIncrementColumnConstraint,
    )
    if any(isinstance(k, fill) for k in constraints(col)):
        default = default_of(col)
        return not (isinstance(default, exp.Null))
    kind = col.args.get("kind")
    return isinstance(kind, exp.DataType) and kind.this in SERIALS


def not_null(col: exp.ColumnDef) -> bool:
    return any(
        (isinstance(k, exp.NotNullColumnConstraint) and not k.args.get("allow_null"))
        or isinstance(k, exp.PrimaryKeyColumnConstraint)
        for k in constraints(col)
    )


def type_change(action: exp.Expression) -> tuple[str | None, exp.DataType | None]:
    """(column, new type) for ALTER COLUMN ... TYPE and MySQL MODIFY/CHANGE."""
    if isinstance(action, exp.AlterColumn) and isinstance(action.args.get("dtype"), exp.DataType):
        return column_name(action.this), action.args["dtype"]
    if isinstance(action, exp.ModifyColumn) and isinstance(action.this, exp.ColumnDef):
        kind = action.this.args.get("kind")
        old = action.args.get("rename_from")
        return column_name(old if old is not None else action.this.this), kind if isinstance(kind, exp.DataType) else None
    return None, None


def type_changes(ctx: Context, stmt: Statement) -> Iterator[tuple[str, str, exp.DataType | None, exp.DataType]]:
    """(table, column, old type as the chain knows it, new type) of each type change of an
    ALTER TABLE on a table that may hold rows."""
    table, actions = alter_actions(stmt.node)
    if table is None or not ctx.holds_rows(table):
        return
    for a in actions:
        column, new = type_change(a)
        if column is not None and new is not None:
            yield table, column, ctx.catalog.column_type(table, column), new


def is_dml(node: exp.Expression | None) -> bool:
    return isinstance(node, (exp.Insert, exp.Update, exp.Delete, exp.Merge))


def is_ddl(node: exp.Expression | None) -> bool:
    return isinstance(node, (exp.Create, exp.Drop, exp.Alter, exp.TruncateTable))


def spells_auto_increment(dialect: str, sql: str) -> bool:
    """Whether ``sql`` writes MySQL's ``AUTO_INCREMENT`` (not ``AUTOINCREMENT``).

    sqlglot's AST keeps one node for both spellings; its tokens keep the text
    (and, unlike a regex, skip comments and string literals)."""
    from sqlglot.dialects.dialect import Dialect
    from sqlglot.tokenizer_core import TokenType

    tokens = Dialect.get_or_raise(dialect).tokenize(sql)
    return any(t.token_type == TokenType.AUTO_INCREMENT and t.text.upper() == "AUTO_INCREMENT" for t in tokens)
