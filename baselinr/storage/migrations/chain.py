"""Load the migration chain from a versions package and check it is whole.

``ALL_MIGRATIONS`` must hold versions 1..N once each, and the code version
(``CURRENT_SCHEMA_VERSION``) must be N. Problems raise ``ChainError``, which
is also a ``ValueError`` so code written against the guide's
``ValueError: Missing migrations for versions: {2}`` keeps working.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from baselinr.errors import UsageError
from baselinr.storage.migrations.migration import Migration
from baselinr.storage.model import Schema

if TYPE_CHECKING:
    from baselinr.storage.follow import Unfollowed
from baselinr.storage.version_table import VERSION_TABLE

DEFAULT_PACKAGE = "baselinr.storage.migrations.versions"


class ChainError(UsageError, ValueError):
    """The migration chain has a gap, a duplicate or a wrong code version."""


@dataclass(frozen=True)
class Chain:
    """The migrations this code has, by version, and the code's version."""

    migrations: dict[int, Migration]
    code_version: int
    package: str = DEFAULT_PACKAGE
    # model_at's answers by (version, dialect): each is built from the one before it.
    _models: dict[tuple[int, str], tuple[Schema, tuple[tuple[int, Unfollowed], ...]]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def get(self, version: int) -> Migration:
        return self.migrations[version]

    def between(self, low: int, high: int) -> list[Migration]:
        """Migrations in (low, high], ascending; raises for a missing one."""
        missing = {v for v in range(low + 1, high + 1) if v not in self.migrations}
        if missing:
            raise ChainError(
                f"Missing migrations for versions: {_fmt(missing)}",
                hint=f"This code has versions 1..{self.latest}." if self.migrations else None,
            )
        return [self.migrations[v] for v in range(low + 1, high + 1)]

    @property
    def latest(self) -> int:
        return max(self.migrations, default=0)

    def model_at(self, version: int, dialect: str) -> tuple[Schema, bool]:
        """The expected schema at ``version`` on ``dialect``, and whether it is exact.

        Every migration 1..``version`` is replayed: its model ``operations``
        where it declares them, else the DDL of its SQL for ``dialect``, read
        by ``baselinr.storage.follow``. Not exact once a statement could not be
        followed (``unfollowed`` names them): then unknown extras are only
        warnings, and wrong types too.
        """
        schema, missed = self._followed(version, dialect)
        return schema.copy(), not missed

    def unfollowed(self, version: int, dialect: str) -> list[tuple[int, Unfollowed]]:
        """(version, statement) for each statement of 1..``version`` the model could not follow."""
        return list(self._followed(version, dialect)[1])

    def _followed(self, version: int, dialect: str) -> tuple[Schema, tuple[tuple[int, Unfollowed], ...]]:
        key = (version, dialect)
        if key in self._models:
            return self._models[key]
        if version >= 1 and (version - 1, dialect) in self._models:
            base, missed = self._models[(version - 1, dialect)]
            schema, start = base.copy(), version
        else:
            schema, missed, start = Schema({VERSION_TABLE.name: VERSION_TABLE}), (), 1
        for v in range(start, version + 1):
            m = self.migrations.get(v)
            if m is None:
                continue
            if m.operations:
                for op in m.operations:
                    op.apply(schema)
            elif m.up_sql:
                from baselinr.storage.dialects import dialect_class
                from baselinr.storage.follow import follow

                statements = m.up_statements(dialect_class(dialect)())
                missed = (*missed, *((v, u) for u in follow(schema, statements, dialect)))
            self._models[(v, dialect)] = (schema.copy(), missed)
        self._models[key] = (schema, missed)
        return schema, missed


def load_chain(package: str = DEFAULT_PACKAGE) -> Chain:
    """Import ``package`` and check its ``ALL_MIGRATIONS``."""
    try:
        module = importlib.import_module(package)
    except ModuleNotFoundError as exc:
        raise UsageError(f"Cannot import migrations package '{package}': {exc}") from None
    migrations: Sequence[Migration] = getattr(module, "ALL_MIGRATIONS", None) or []
    code_version = getattr(module, "CURRENT_SCHEMA_VERSION", None)
    if code_version is None:
        if package == DEFAULT_PACKAGE:
            from baselinr.storage.schema_version import CURRENT_SCHEMA_VERSION

            code_version = CURRENT_SCHEMA_VERSION
        else:
            code_version = max((m.version for m in migrations), default=0)
    return check_chain(migrations, code_version, package)


def check_chain(migrations: Sequence[Migration], code_version: int, package: str = DEFAULT_PACKAGE) -> Chain:
    by_version: dict[int, Migration] = {}
    duplicates: set[int] = set()
    for m in migrations:
        if not isinstance(m, Migration):
            raise ChainError(f"ALL_MIGRATIONS in {package} holds {type(m).__name__}, not a Migration")
        if m.version in by_version:
            duplicates.add(m.version)
        by_version[m.version] = m
    if duplicates:
        raise ChainError(f"Duplicate migrations for versions: {_fmt(duplicates)}", hint="Each version must appear once.")
    top = max(by_version, default=0)
    missing = set(range(1, max(top, code_version) + 1)) - set(by_version)
    if missing:
        raise ChainError(f"Missing migrations for versions: {_fmt(missing)}", hint="All intermediate migrations must exist.")
    if code_version != top:
        raise ChainError(
            f"CURRENT_SCHEMA_VERSION is {code_version} but the highest migration is v{top}",
            hint="Update baselinr/storage/schema_version.py to match ALL_MIGRATIONS.",
        )
    return Chain(by_version, code_version, package)


def _fmt(versions: set[int]) -> str:
    return "{" + ", ".join(str(v) for v in sorted(versions)) + "}"
