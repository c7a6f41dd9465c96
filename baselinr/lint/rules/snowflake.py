"""Snowflake rules: statements that fail on its standard tables, and MySQL's
AUTO_INCREMENT spelling, which Snowflake's grammar does not document.
Implicit commits are ``common.implicit_commit``.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlglot import exp

from baselinr.lint.catalog import table_name
from baselinr.lint.findings import ERROR, WARNING, Finding
from baselinr.lint.rules.context import Context, Statement, spells_auto_increment


def snowflake_no_index(ctx: Context, stmt: Statement) -> Iterator[Finding]:
    node = stmt.node
    if isinstance(node, exp.Create) and (node.args.get("kind") or "").upper() == "INDEX":
        yield ctx.finding(
            "snowflake-no-index",
            ERROR,
            stmt,
            "Snowflake's standard tables have no secondary indexes, so this fails: leave it out of the "
            "snowflake entry of a per-dialect up_sql.",
            table_name(node.this.args.get("table")) if isinstance(node.this, exp.Index) else None,
        )


def snowflake_auto_increment(ctx: Context, stmt: Statement) -> Iterator[Finding]:
    # A warning, not an error: Snowflake documents AUTOINCREMENT | IDENTITY only, and what it does with
    # the other spelling is not something a test here can show (the emulator translates the SQL).
    if spells_auto_increment("snowflake", stmt.sql):
        yield ctx.finding(
            "dialect-syntax",
            WARNING,
            stmt,
            "AUTO_INCREMENT is MySQL's spelling; Snowflake documents AUTOINCREMENT or IDENTITY: use one of those, "
            "or give up_sql a per-dialect mapping.",
        )
