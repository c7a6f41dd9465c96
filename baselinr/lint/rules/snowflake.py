"""Snowflake rules: statements that fail on its standard tables. Implicit
commits are ``common.implicit_commit``.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlglot import exp

from baselinr.lint.catalog import table_name
from baselinr.lint.findings import ERROR, Finding
from baselinr.lint.rules.context import Context, Statement


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
