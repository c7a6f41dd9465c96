"""Rules for every dialect: destructive changes, and implicit commits (a factory
the MySQL and Snowflake sets use). Listed in ``baselinr.lint.rules.RULESETS``.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlglot import exp

from baselinr.lint import coltypes
from baselinr.lint.catalog import column_name, dropped_tables, table_name
from baselinr.lint.findings import ERROR, WARNING, Finding
from baselinr.lint.rules.context import (
    Context,
    Statement,
    UnitRule,
    alter_actions,
    fills_itself,
    is_ddl,
    is_dml,
    not_null,
    type_changes,
)

# --- destructive changes (every dialect) --------------------------------------------


def _rebuilt(ctx: Context, stmt: Statement, table: str) -> bool:
    """DROP TABLE t followed by a rename of a copy of t to t: a table rebuild, not a loss."""
    copied_from = {
        table_name(n.this): {t.name.lower() for t in n.expression.find_all(exp.Table)}
        for n in ctx.others(stmt)
        if isinstance(n, exp.Insert) and isinstance(n.expression, exp.Query)
    }
    for n in ctx.after(stmt):
        source, actions = alter_actions(n)
        for a in actions:
            if isinstance(a, exp.AlterRename) and table_name(a.this) == table and table in copied_from.get(source, set()):
                return True
    return False


def drop_table(ctx: Context, stmt: Statement) -> Iterator[Finding]:
    if isinstance(stmt.node, exp.Drop) and (stmt.node.args.get("kind") or "").upper() == "TABLE":
        for table in dropped_tables(stmt.node):
            if not ctx.holds_rows(table) or _rebuilt(ctx, stmt, table):
                continue
            yield ctx.finding(
                "drop-table",
                ERROR,
                stmt,
                f"Dropping {table} deletes its rows: back it up, or keep it until no code reads it.",
                table,
            )


def _column_rebuilt(ctx: Context, stmt: Statement, table: str, column: str) -> bool:
    """DROP COLUMN c after copying c into a column that is then renamed to c."""
    copied = any(
        isinstance(n, exp.Update)
        and table_name(n.this) == table
        and any(
            c.name.lower() == column for e in n.expressions if isinstance(e, exp.EQ) for c in e.expression.find_all(exp.Column)
        )
        for n in ctx.others(stmt)
    )
    renamed = any(
        isinstance(a, exp.RenameColumn) and column_name(a.args.get("to")) == column
        for n in ctx.after(stmt)
        for a in alter_actions(n)[1]
        if alter_actions(n)[0] == table
    )
    return copied and renamed


def drop_column(ctx: Context, stmt: Statement) -> Iterator[Finding]:
    table, actions = alter_actions(stmt.node)
    if not ctx.holds_rows(table) or table is None:
        return
    for a in actions:
        if isinstance(a, exp.Drop) and (a.args.get("kind") or "").upper() == "COLUMN":
            for col in a.args.get("tables") or []:
                name = col.name.lower()
                if _column_rebuilt(ctx, stmt, table, name):
                    yield ctx.finding(
                        "drop-column",
                        WARNING,
                        stmt,
                        f"{table}.{name} is copied and replaced in this migration: code that runs during the "
                        "deploy must not depend on it changing.",
                        table,
                    )
                else:
                    yield ctx.finding(
                        "drop-column",
                        ERROR,
                        stmt,
                        f"Dropping {table}.{name} deletes its values: stop reading it first, back it up, then drop.",
                        table,
                    )


def _dropped_here(ctx: Context, stmt: Statement, table: str, column: str) -> bool:
    """True when an earlier statement of this migration dropped ``table.column``."""
    for s in ctx.statements[: stmt.index - 1]:
        name, actions = alter_actions(s.node)
        if name == table and any(
            isinstance(a, exp.Drop) and any(c.name.lower() == column for c in a.args.get("tables") or []) for a in actions
        ):
            return True
    return False


def rename(ctx: Context, stmt: Statement) -> Iterator[Finding]:
    table, actions = alter_actions(stmt.node)
    if not ctx.holds_rows(table) or table is None:
        return  # renaming a table this migration built (a rebuild) breaks no reader
    for a in actions:
        if isinstance(a, exp.RenameColumn):
            old, new = column_name(a.this), column_name(a.args.get("to"))
            if new and not _dropped_here(ctx, stmt, table, new):
                yield ctx.finding(
                    "rename-column",
                    WARNING,
                    stmt,
                    f"Code still running during the deploy reads {table}.{old}: add {new}, write both, move readers, "
                    "then drop the old one.",
                    table,
                )
        elif isinstance(a, exp.AlterRename):
            yield ctx.finding(
                "rename-table",
                WARNING,
                stmt,
                f"Code still running during the deploy reads {table}: rename in steps (a view with the old name) "
                "or deploy the readers first.",
                table,
            )


def narrowing_type_change(ctx: Context, stmt: Statement) -> Iterator[Finding]:
    for table, column, old, new in type_changes(ctx, stmt):
        how = coltypes.compare(old, new)
        if how == coltypes.NARROW:
            yield ctx.finding(
                "narrowing-type-change",
                ERROR,
                stmt,
                f"{table}.{column} becomes {new.sql(ctx.dialect)}: existing values may not fit; add a new column and backfill.",
                table,
            )
        elif how == coltypes.UNKNOWN:
            yield ctx.finding(
                "narrowing-type-change",
                WARNING,
                stmt,
                f"The old type of {table}.{column} is not known here: check existing values fit {new.sql(ctx.dialect)}.",
                table,
            )


def truncate(ctx: Context, stmt: Statement) -> Iterator[Finding]:
    if isinstance(stmt.node, exp.TruncateTable):
        for t in stmt.node.expressions:
            yield ctx.finding(
                "truncate", ERROR, stmt, f"TRUNCATE deletes every row of {table_name(t)}: back it up first.", table_name(t)
            )


def delete_all_rows(ctx: Context, stmt: Statement) -> Iterator[Finding]:
    if isinstance(stmt.node, exp.Delete) and stmt.node.args.get("where") is None:
        table = table_name(stmt.node.this)
        if ctx.holds_rows(table):
            yield ctx.finding(
                "delete-all-rows", ERROR, stmt, f"DELETE without WHERE empties {table}: back it up, or add a WHERE.", table
            )


def update_all_rows(ctx: Context, stmt: Statement) -> Iterator[Finding]:
    if isinstance(stmt.node, exp.Update) and stmt.node.args.get("where") is None:
        table = table_name(stmt.node.this)
        if ctx.holds_rows(table):
            yield ctx.finding(
                "update-all-rows",
                WARNING,
                stmt,
                f"UPDATE without WHERE rewrites every row of {table} in one statement: backfill in batches if it is large.",
                table,
            )


def not_null_without_default(ctx: Context, stmt: Statement) -> Iterator[Finding]:
    table, actions = alter_actions(stmt.node)
    if not ctx.holds_rows(table):
        return
    for a in actions:
        if isinstance(a, exp.ColumnDef) and not_null(a) and not fills_itself(a):
            yield ctx.finding(
                "not-null-without-default",
                ERROR,
                stmt,
                f"NOT NULL column {a.name} without a DEFAULT fails (or gets an implicit value) on a {table} with rows: "
                "add a DEFAULT, or add it nullable, backfill, then set NOT NULL.",
                table,
            )


# --- implicit commits (MySQL, Snowflake) -------------------------------------------


def implicit_commit(rule: str, what: str) -> UnitRule:
    def check(ctx: Context) -> Iterator[Finding]:
        seen_dml = seen_ddl = False
        for stmt in ctx.statements:
            if (is_ddl(stmt.node) and seen_dml) or (is_dml(stmt.node) and seen_ddl):
                yield ctx.finding(
                    rule,
                    WARNING,
                    stmt,
                    f"{what} commits implicitly, so this migration mixing DDL and data changes cannot be atomic: "
                    "split it, or make each statement safe to resume (migrate apply --resume).",
                )
                return
            seen_dml = seen_dml or is_dml(stmt.node)
            seen_ddl = seen_ddl or is_ddl(stmt.node)

    return check
