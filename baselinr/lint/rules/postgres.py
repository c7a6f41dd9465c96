"""PostgreSQL rules: locking hazards and syntax PostgreSQL rejects.

Facts assumed (PostgreSQL 11 and later): ADD COLUMN with a constant or stable
default (``now()``) does not rewrite the table; a volatile default
(``random()``, ``gen_random_uuid()``, ``clock_timestamp()``, a serial) does.
Locking hazards are errors on Baselinr's big tables, warnings elsewhere
(``Context.hazard``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from sqlglot import exp

from baselinr.lint import coltypes
from baselinr.lint.catalog import dropped_tables, table_name
from baselinr.lint.findings import ERROR, WARNING, Finding
from baselinr.lint.rules.context import SERIALS, Context, Statement, alter_actions, default_of, type_changes

_PG_VOLATILE = frozenset(
    {
        "random",
        "clock_timestamp",
        "timeofday",
        "gen_random_uuid",
        "uuid_generate_v1",
        "uuid_generate_v1mc",
        "uuid_generate_v4",
        "nextval",
    }
)
# A function's PostgreSQL name, read from sqlglot's own rendering of the node (not the user's SQL):
# sqlglot normalises random() to Rand, gen_random_uuid() to Uuid.
_FUNC_NAME = re.compile(r"\s*([A-Za-z_][\w.]*)\s*\(")


def pg_index_not_concurrent(ctx: Context, stmt: Statement) -> Iterator[Finding]:
    node = stmt.node
    if isinstance(node, exp.Create) and (node.args.get("kind") or "").upper() == "INDEX" and isinstance(node.this, exp.Index):
        table = table_name(node.this.args.get("table"))
        if ctx.holds_rows(table) and not node.args.get("concurrently"):
            yield ctx.finding(
                "pg-index-not-concurrent",
                ctx.hazard(table),
                stmt,
                f"CREATE INDEX blocks writes to {table} while it builds: use CREATE INDEX CONCURRENTLY "
                "(the migration then runs outside a transaction).",
                table,
            )


def pg_drop_index_not_concurrent(ctx: Context, stmt: Statement) -> Iterator[Finding]:
    node = stmt.node
    if isinstance(node, exp.Drop) and (node.args.get("kind") or "").upper() == "INDEX" and not node.args.get("concurrently"):
        for index in dropped_tables(node):
            table = ctx.catalog.index_tables.get(index)
            if table is not None and not ctx.holds_rows(table):
                continue
            yield ctx.finding(
                "pg-drop-index-not-concurrent",
                ctx.hazard(table),
                stmt,
                f"DROP INDEX locks {table or 'its table'} against reads and writes while it waits for running queries: "
                "use DROP INDEX CONCURRENTLY.",
                table,
            )


def _concurrent(node: exp.Expression | None) -> bool:
    return (
        isinstance(node, (exp.Create, exp.Drop))
        and (node.args.get("kind") or "").upper() == "INDEX"
        and bool(node.args.get("concurrently"))
    )


def pg_concurrently_in_migration(ctx: Context) -> Iterator[Finding]:
    """A CONCURRENTLY index among other statements: the engine runs the whole migration outside a transaction."""
    if len(ctx.statements) < 2:
        return
    for stmt in ctx.statements:
        if _concurrent(stmt.node):
            yield ctx.finding(
                "pg-concurrently-in-migration",
                WARNING,
                stmt,
                f"CONCURRENTLY cannot run in a transaction, so all {len(ctx.statements)} statements of this migration "
                "commit one by one and a failure leaves it half-done: give the index a migration of its own.",
            )
            return


def pg_type_change_rewrite(ctx: Context, stmt: Statement) -> Iterator[Finding]:
    for table, column, old, new in type_changes(ctx, stmt):
        how = coltypes.compare(old, new)
        if how == coltypes.SAME or (
            how == coltypes.WIDEN and (coltypes.is_string(old) or coltypes.same_scale_decimals(old, new))
        ):
            continue  # a wider VARCHAR, VARCHAR to TEXT, more NUMERIC precision: catalog-only change
        yield ctx.finding(
            "pg-type-change-rewrite",
            ctx.hazard(table),
            stmt,
            f"Changing {table}.{column} to {new.sql('postgres')} rewrites the table under an ACCESS EXCLUSIVE lock: "
            "add a new column, backfill it, then switch.",
            table,
        )


def pg_volatile_default(ctx: Context, stmt: Statement) -> Iterator[Finding]:
    table, actions = alter_actions(stmt.node)
    if not ctx.holds_rows(table):
        return
    for a in actions:
        if not isinstance(a, exp.ColumnDef):
            continue
        default = default_of(a)
        kind = a.args.get("kind")
        volatile = sorted(func_names(default) & _PG_VOLATILE) if default is not None else []
        if volatile or (isinstance(kind, exp.DataType) and kind.this in SERIALS):
            what = f"{volatile[0]}()" if volatile else kind.sql("postgres") if isinstance(kind, exp.DataType) else "serial"
            yield ctx.finding(
                "pg-volatile-default",
                ctx.hazard(table),
                stmt,
                f"A volatile default ({what}) makes ADD COLUMN rewrite {table} under an ACCESS EXCLUSIVE lock: "
                "add the column without it, set the default, backfill in batches.",
                table,
            )


def pg_constraint_not_valid(ctx: Context, stmt: Statement) -> Iterator[Finding]:
    table, actions = alter_actions(stmt.node)
    if not ctx.holds_rows(table) or stmt.node is None or stmt.node.args.get("not_valid"):
        return
    for a in actions:
        if isinstance(a, exp.AddConstraint) and a.find(exp.ForeignKey, exp.CheckColumnConstraint) is not None:
            yield ctx.finding(
                "pg-constraint-not-valid",
                ctx.hazard(table),
                stmt,
                f"Adding this constraint scans {table} while it blocks writes: add it NOT VALID, then VALIDATE CONSTRAINT "
                "in a later migration.",
                table,
            )


def pg_unique_constraint(ctx: Context, stmt: Statement) -> Iterator[Finding]:
    table, actions = alter_actions(stmt.node)
    if not ctx.holds_rows(table):
        return
    for a in actions:
        if isinstance(a, exp.AddConstraint) and a.find(exp.UniqueColumnConstraint, exp.PrimaryKey) is not None:
            yield ctx.finding(
                "pg-unique-constraint",
                ctx.hazard(table),
                stmt,
                f"Adding a UNIQUE or PRIMARY KEY constraint builds its index while {table} is locked: CREATE UNIQUE INDEX "
                "CONCURRENTLY first, then ADD CONSTRAINT ... USING INDEX.",
                table,
            )


def pg_set_not_null(ctx: Context, stmt: Statement) -> Iterator[Finding]:
    table, actions = alter_actions(stmt.node)
    if not ctx.holds_rows(table):
        return
    for a in actions:
        if isinstance(a, exp.AlterColumn) and a.args.get("allow_null") is False:
            yield ctx.finding(
                "pg-set-not-null",
                ctx.hazard(table),
                stmt,
                f"SET NOT NULL scans {table} under an ACCESS EXCLUSIVE lock: validate a CHECK (... IS NOT NULL) NOT VALID "
                "constraint first, then SET NOT NULL uses it.",
                table,
            )


def func_names(node: exp.Expression) -> set[str]:
    names = set()
    for fn in node.find_all(exp.Func):
        m = _FUNC_NAME.match(fn.sql("postgres"))
        if m:
            names.add(m.group(1).lower().rsplit(".", 1)[-1])
    return names


def pg_auto_increment(ctx: Context, stmt: Statement) -> Iterator[Finding]:
    if stmt.node is not None and stmt.node.find(exp.AutoIncrementColumnConstraint) is not None:
        yield ctx.finding(
            "dialect-syntax",
            ERROR,
            stmt,
            "PostgreSQL has no AUTO_INCREMENT: use GENERATED BY DEFAULT AS IDENTITY (or SERIAL), or give up_sql a "
            "per-dialect mapping.",
        )
