"""Parse one SQL statement with sqlglot in the engine's dialect.

The one parser of migration SQL: used by ``follow`` (the DDL of SQL
migrations, replayed on the schema model) and by ``baselinr.lint`` (its
rules read the same AST). sqlglot is imported here, and only by code that
reads SQL: ``status`` and a no-op ``apply`` never load it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from baselinr.storage.dialects import DIALECT_NAMES, dialect_class

if TYPE_CHECKING:
    from sqlglot import exp

# The engine's dialect names → sqlglot's.
SQLGLOT_DIALECTS = {name: dialect_class(name).sqlglot_name for name in DIALECT_NAMES}


@contextmanager
def quiet() -> Iterator[None]:
    """sqlglot logs a warning when it falls back to an opaque command; callers report that themselves."""
    logger = logging.getLogger("sqlglot")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def parse_any(sql: str, dialect: str) -> exp.Expression | None:
    """The statement's AST, an opaque ``exp.Command`` included; None when sqlglot cannot parse it as one statement."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import SqlglotError

    try:
        with quiet():
            nodes = [n for n in sqlglot.parse(sql, read=SQLGLOT_DIALECTS[dialect]) if n is not None]
    except SqlglotError:
        return None
    if len(nodes) != 1 or not isinstance(nodes[0], exp.Expression):
        return None
    return nodes[0]


def parse(sql: str, dialect: str) -> exp.Expression | None:
    """The statement's AST, or None when sqlglot cannot understand it (an opaque command counts as not understood)."""
    from sqlglot import exp

    node = parse_any(sql, dialect)
    return None if node is None or isinstance(node, exp.Command) else node
