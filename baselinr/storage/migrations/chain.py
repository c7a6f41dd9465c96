"""Load the migration chain from a versions package and check it is whole.

``ALL_MIGRATIONS`` must hold versions 1..N once each, and the code version
(``CURRENT_SCHEMA_VERSION``) must be N. Problems raise ``ChainError``, which
is also a ``ValueError`` so code written against the guide's
``ValueError: Missing migrations for versions: {2}`` keeps working.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from baselinr.errors import UsageError
from baselinr.storage.migrations.migration import Migration
from baselinr.storage.model import Schema
from baselinr.storage.version_table import VERSION_TABLE

if TYPE_CHECKING:
    from baselinr.storage.follow import Unfollowed

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
        if exc.name is not None and (package == exc.name or package.startswith(exc.name + ".")):
            raise UsageError(f"Cannot import migrations package '{package}': {exc}") from None
        raise _broken(package, exc) from None
    except Exception as exc:  # noqa: BLE001 - any error a migration module raises on import is the package's
        raise _broken(package, exc) from None
    migrations: Sequence[Migration] = getattr(module, "ALL_MIGRATIONS", None) or []
    code_version = getattr(module, "CURRENT_SCHEMA_VERSION", None)
    if code_version is None:
        if package == DEFAULT_PACKAGE:
            from baselinr.storage.schema_version import CURRENT_SCHEMA_VERSION

            code_version = CURRENT_SCHEMA_VERSION
        else:
            code_version = max((m.version for m in migrations), default=0)
    return check_chain(migrations, code_version, package)


def _broken(package: str, exc: BaseException) -> UsageError:
    """A migrations package that fails to import, as one line naming the file and line at fault:
    for a syntax error where the parser stopped, otherwise the innermost frame of the import."""
    if isinstance(exc, SyntaxError) and exc.filename:
        where, line, what = exc.filename, exc.lineno, f"{type(exc).__name__}: {exc.msg}"
    else:
        import importlib.util
        import traceback

        try:
            spec = importlib.util.find_spec(package)
            roots = list(spec.submodule_search_locations or []) if spec is not None else []
        except (ImportError, ValueError):
            roots = []
        frames = [(f.filename, f.lineno) for f in traceback.extract_tb(exc.__traceback__)] or [("?", None)]
        # The package's own line (a migration calling into the engine fails there, not in the engine).
        ours = [f for f in frames if any(f[0].startswith(root) for root in roots)]
        where, line = (ours or frames)[-1]
        detail = str(exc).splitlines()[0] if str(exc) else ""
        what = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    return UsageError(
        f"Cannot import migrations package '{package}': {where}, line {line}: {what}",
        hint="Fix that line, then run the command again.",
    )


def registry_looks_whole(package: str, code_version: int) -> bool:
    """Whether ``package``'s ``__init__.py`` registers ``v1_*`` .. ``v{code_version}_*`` once
    each in ``ALL_MIGRATIONS``, read as text without importing a migration (``status``
    stays cheap). ``False`` whenever it cannot tell: then the caller loads the chain,
    whose check is the one that decides and names the fault."""
    import ast
    import importlib.util

    try:
        spec = importlib.util.find_spec(package)
        origin = spec.origin if spec is not None else None
        if origin is None or not origin.endswith("__init__.py"):
            return False
        tree = ast.parse(Path(origin).read_text(encoding="utf-8"))
    except (ImportError, OSError, SyntaxError, ValueError, UnicodeDecodeError):
        return False
    modules: dict[str, str] = {}
    registered: list[str] | None = None
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            modules.update({alias.asname or alias.name: node.module for alias in node.names})
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "ALL_MIGRATIONS" for t in node.targets):
            if not isinstance(node.value, ast.List) or not all(isinstance(e, ast.Name) for e in node.value.elts):
                return False
            registered = [e.id for e in node.value.elts if isinstance(e, ast.Name)]
    if registered is None:
        return False
    versions = []
    for name in registered:
        found = re.fullmatch(r"v([0-9]+)_\w*", modules.get(name, ""))
        if found is None:
            return False
        versions.append(int(found.group(1)))
    return sorted(versions) == list(range(1, code_version + 1))


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
        unregistered = _unregistered_files(package, missing)
        if unregistered:
            init, files = unregistered
            first = files[0].removesuffix(".py")
            raise ChainError(
                f"{', '.join(files)} {'is' if len(files) == 1 else 'are'} in {init.parent} but not registered "
                f"in ALL_MIGRATIONS (missing migrations for versions: {_fmt(missing)})",
                hint=f"Import {'it' if len(files) == 1 else 'each'} in {init} (e.g. 'from .{first} import migration as "
                f"{first.split('_')[0]}_migration') and add {'it' if len(files) == 1 else 'them'} to ALL_MIGRATIONS there.",
            )
        raise ChainError(f"Missing migrations for versions: {_fmt(missing)}", hint="All intermediate migrations must exist.")
    if code_version != top:
        raise ChainError(
            f"CURRENT_SCHEMA_VERSION is {code_version} but the highest migration is v{top}",
            hint="Update baselinr/storage/schema_version.py to match ALL_MIGRATIONS.",
        )
    return Chain(by_version, code_version, package)


def _unregistered_files(package: str, missing: set[int]) -> tuple[Path, list[str]] | None:
    """The package's ``__init__.py`` and its ``vN_*.py`` files for ``missing`` versions, if any
    are there: written but not registered."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None or not spec.origin.endswith("__init__.py"):
        return None
    init = Path(spec.origin)
    found = {}
    for f in init.parent.glob("v*_*.py"):
        m = re.fullmatch(r"v([0-9]+)_\w*\.py", f.name)
        if m is not None and int(m.group(1)) in missing:
            found[f.name] = int(m.group(1))
    files = sorted(found, key=found.__getitem__)
    return (init, files) if files else None


def _fmt(versions: set[int]) -> str:
    return "{" + ", ".join(str(v) for v in sorted(versions)) + "}"
