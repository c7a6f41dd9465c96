"""MySQL/MariaDB rules: ALTERs that need the COPY algorithm.

Facts assumed (MySQL 8.0, MariaDB 10.3+): ADD COLUMN and CREATE INDEX run
INSTANT or INPLACE with concurrent writes; changing a column's type copies
the table. Implicit commits are ``common.implicit_commit``.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlglot import exp

from baselinr.lint import coltypes
from baselinr.lint.findings import WARNING, Finding
from baselinr.lint.rules.context import Context, Statement, alter_actions, type_change


def _algorithm(node: exp.Expression) -> str | None:
    for opt in node.args.get("options") or []:
        if isinstance(opt, exp.AlgorithmProperty):
            return opt.name.upper()
    return None


def mysql_copy_algorithm(ctx: Context, stmt: Statement) -> Iterator[Finding]:
    table, actions = alter_actions(stmt.node)
    if not ctx.holds_rows(table) or stmt.node is None:
        return
    algorithm = _algorithm(stmt.node)
    if algorithm in ("INSTANT", "INPLACE"):
        return  # the server refuses the statement rather than copy
    certain: list[str] = []
    maybe: list[str] = []  # depends on what the chain does not show (old type, character set)
    if algorithm == "COPY":
        certain.append("ALGORITHM=COPY")
    for a in actions:
        column, new = type_change(a)
        if column is not None and new is not None:
            old = ctx.catalog.column_type(table, column)
            how = coltypes.compare(old, new)
            lengths = coltypes.varchar_lengths(old, new)
            if how == coltypes.UNKNOWN:
                maybe.append(f"changing {column} (old type unknown here)")
            elif how == coltypes.NARROW or (how == coltypes.WIDEN and lengths is None):
                certain.append(f"changing the type of {column}")
            elif how == coltypes.WIDEN and lengths is not None and lengths[0] * 4 < 256 <= lengths[1] * 4:
                # INPLACE only while the length prefix stays 1 byte: 255 bytes, 63 characters of utf8mb4.
                maybe.append(f"widening {column} past 255 bytes (its length prefix grows; 63 utf8mb4 characters)")
        elif isinstance(a, exp.DropPrimaryKey):
            certain.append("dropping the primary key")
    if certain or maybe:
        yield ctx.finding(
            "mysql-copy-algorithm",
            ctx.hazard(table) if certain else WARNING,
            stmt,
            f"{'; '.join(certain + maybe)} copies {table} with writes blocked (not INSTANT/INPLACE): add a new column "
            "and backfill, or state ALGORITHM=INPLACE to make the server refuse a copy.",
            table,
        )
