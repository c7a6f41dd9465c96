"""SQLite rules: changes ``ALTER TABLE`` cannot make (a table rebuild is needed),
and MySQL's AUTO_INCREMENT spelling, which SQLite rejects.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlglot import exp

from baselinr.lint.findings import ERROR, Finding
from baselinr.lint.rules.context import (
    Context,
    Statement,
    alter_actions,
    constraints,
    default_of,
    not_null,
    spells_auto_increment,
)


def sqlite_table_rebuild(ctx: Context, stmt: Statement) -> Iterator[Finding]:
    table, actions = alter_actions(stmt.node)
    for a in actions:
        why = None
        if isinstance(a, (exp.AlterColumn, exp.ModifyColumn)):
            why = "SQLite cannot alter a column's type, default or nullability"
        elif isinstance(a, (exp.AddConstraint, exp.DropPrimaryKey)) or (
            isinstance(a, exp.Drop) and (a.args.get("kind") or "").upper() not in ("COLUMN", "")
        ):
            why = "SQLite cannot add or drop a constraint"
        elif isinstance(a, exp.ColumnDef):
            kinds = constraints(a)
            default = default_of(a)
            if any(isinstance(k, (exp.PrimaryKeyColumnConstraint, exp.UniqueColumnConstraint)) for k in kinds):
                why = "SQLite cannot add a PRIMARY KEY or UNIQUE column"
            elif default is not None and not isinstance(default, (exp.Literal, exp.Null, exp.Boolean, exp.Neg)):
                why = "SQLite cannot add a column with a non-constant default"
            elif not_null(a) and (default is None or isinstance(default, exp.Null)):
                why = "SQLite cannot add a NOT NULL column without a non-NULL default"
        elif isinstance(a, exp.Drop) and (a.args.get("kind") or "").upper() == "COLUMN" and table is not None:
            indexed = {c.name.lower() for c in a.args.get("tables") or []} & ctx.catalog.indexed.get(table, set())
            if indexed:
                why = f"SQLite cannot drop {', '.join(sorted(indexed))} while an index uses it"
        if why:
            yield ctx.finding(
                "sqlite-table-rebuild",
                ERROR,
                stmt,
                f"{why}: rebuild {table} (create the new table, copy the rows, drop the old one, rename).",
                table,
            )


def sqlite_auto_increment(ctx: Context, stmt: Statement) -> Iterator[Finding]:
    if spells_auto_increment("sqlite", stmt.sql):
        yield ctx.finding(
            "dialect-syntax",
            ERROR,
            stmt,
            "SQLite rejects AUTO_INCREMENT: INTEGER PRIMARY KEY already assigns ids (AUTOINCREMENT only forbids reuse).",
        )
