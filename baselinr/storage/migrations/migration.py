"""``Migration``: one integer version of the schema, in SQL, Python or both.

Re-exported by ``manager`` (the guide imports ``from ..manager import
Migration``). A migration is SQL text (``up_sql``, optionally a mapping of
dialect name to text with a ``"default"``), Python callables that receive a
SQLAlchemy connection inside the migration's transaction, and/or model
``operations`` whose DDL is rendered per dialect and which tell ``validate``
what the schema looks like afterwards.
"""

from __future__ import annotations

import inspect
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Union

from baselinr.storage.model import Names, Operation, identity, render_down, render_up
from baselinr.storage.splitter import split_sql

if TYPE_CHECKING:
    from baselinr.storage.dialects import Dialect

SqlText = Union[str, Mapping[str, str]]
PythonStep = Callable[[Any], None]
CHECKSUM_ALGORITHM = "sha256-v1"
MAX_TIMEOUT = 86400.0


@dataclass
class Migration:
    """Version N-1 → N. ``version`` and ``description`` are required."""

    version: int
    description: str
    up_sql: SqlText | None = None
    down_sql: SqlText | None = None
    up_python: PythonStep | None = None
    down_python: PythonStep | None = None
    operations: Sequence[Operation] = ()
    transactional: bool | None = None  # None: whatever the dialect allows
    # Seconds its DDL may wait for a table lock before it is retried (None: the run's
    # --ddl-lock-timeout; 0: wait as long as the server would), and the bound on each
    # of its statements' run time (None: none), e.g. for a long backfill.
    lock_timeout: float | None = None
    statement_timeout: float | None = None
    script: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.version, int) or isinstance(self.version, bool) or self.version < 1:
            raise ValueError(f"Migration version must be a positive integer, got {self.version!r}")
        if not self.description or not isinstance(self.description, str):
            raise ValueError(f"Migration v{self.version} needs a description")
        for name in ("lock_timeout", "statement_timeout"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or not 0 <= value <= MAX_TIMEOUT
            ):
                raise ValueError(f"Migration v{self.version}: {name} must be 0 to {MAX_TIMEOUT:g} seconds, got {value!r}")
        if self.statement_timeout == 0:
            self.statement_timeout = None
        if self.script is None:
            # The module that built this migration, for migration_script.
            frame = sys._getframe(2)
            path = frame.f_globals.get("__file__")
            self.script = os.path.basename(path) if path else None

    # --- what runs ----------------------------------------------------------

    @property
    def has_up(self) -> bool:
        return bool(self.up_sql or self.up_python or self.operations)

    @property
    def has_down(self) -> bool:
        if self.down_sql or self.down_python:
            return True
        return bool(self.operations) and self.up_sql is None and self.up_python is None

    @property
    def declares_model(self) -> bool:
        """True when ``operations`` describe the whole change (exact validate)."""
        return bool(self.operations) or not (self.up_sql or self.up_python)

    def up_statements(self, dialect: Dialect, names: Names = identity) -> list[str]:
        text = _pick(self.up_sql, dialect.name)
        if text is not None:
            return split_sql(text, dialect.split_rules)
        return render_up(self.operations, dialect, names)

    def down_statements(self, dialect: Dialect, names: Names = identity) -> list[str]:
        text = _pick(self.down_sql, dialect.name)
        if text is not None:
            return split_sql(text, dialect.split_rules)
        if self.down_python is None and self.up_sql is None and self.up_python is None:
            return render_down(self.operations, dialect, names)
        return []

    def checksum(self, dialect: Dialect, names: Names = identity) -> str:
        """SHA-256 of the normalised up SQL and Python source."""
        text = _pick(self.up_sql, dialect.name)
        sql = normalise(text) if text is not None else ";\n".join(render_up(self.operations, dialect, names))
        parts = ["sql:", sql, "python:", _source(self.up_python)]
        import hashlib  # here: status and a no-op apply load the chain but hash nothing

        return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()


def normalise(text: str) -> str:
    """Text as hashed: no BOM, LF line endings, no trailing blanks."""
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    return "\n".join(line.rstrip() for line in text.strip().split("\n"))


def _pick(sql: SqlText | None, dialect: str) -> str | None:
    if sql is None or isinstance(sql, str):
        return sql
    if dialect in sql:
        return sql[dialect]
    return sql.get("default")


def _source(fn: PythonStep | None) -> str:
    if fn is None:
        return ""
    try:
        return normalise(inspect.getsource(fn))
    except (OSError, TypeError):
        return getattr(fn, "__qualname__", repr(fn))
