"""Where lint's units come from: SQL / migration files, or a database's plan.

Called by ``baselinr.cli.lint``. ``units_from_files`` reads ``.sql`` files
(one migration each, version taken from a leading number in the name) and
``.py`` migration modules (every ``Migration`` they define), offline.
``units_from_manager`` lints what ``MigrationManager.plan`` would apply, with
the schema model of the already-applied versions as the starting schema
(``model_before_files`` gives FILES the same, offline).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from baselinr.errors import UsageError
from baselinr.lint.linter import Unit
from baselinr.storage.dialects import dialect_for
from baselinr.storage.migrations.migration import Migration

if TYPE_CHECKING:
    from baselinr.storage.dialects import Dialect
    from baselinr.storage.migrations.manager import MigrationManager
    from baselinr.storage.model import Schema

_VERSION = re.compile(r"^[vV]?0*(\d+)(?:[_.\-]|$)")


def _sql_texts(m: Migration) -> str:
    parts = []
    for sql in (m.up_sql, m.down_sql):
        if isinstance(sql, str):
            parts.append(sql)
        elif sql is not None:
            parts.extend(sql.values())
    return "\n".join(parts)


def _qualname(fn: object) -> str | None:
    return getattr(fn, "__qualname__", None) or (repr(fn) if fn is not None else None)


def migration_unit(m: Migration, dialect: Dialect, module_text: str = "") -> Unit:
    notes = _sql_texts(m) + "\n" + module_text
    return Unit(
        m.version, m.script or f"v{m.version}", m.up_statements(dialect), notes, _qualname(m.up_python), bool(m.operations)
    )


def units_from_files(paths: Sequence[str], dialect_name: str) -> list[Unit]:
    """One unit per ``.sql`` file, one per ``Migration`` in a ``.py`` file, in the order given."""
    dialect = dialect_for(dialect_name)
    units: list[Unit] = []
    for raw in paths:
        path = Path(raw)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"Cannot read {raw}: {exc.__class__.__name__}") from None
        if path.suffix == ".py":
            found = [v for v in vars(_load_module(path)).values() if isinstance(v, Migration)]
            if not found:
                raise UsageError(f"{raw} defines no Migration.")
            for m in sorted({id(m): m for m in found}.values(), key=lambda m: m.version):
                unit = migration_unit(m, dialect, text)
                units.append(Unit(unit.version, raw, unit.statements, unit.notes, unit.python, unit.operations))
        else:
            match = _VERSION.match(path.name)
            units.append(Unit(int(match.group(1)) if match else None, raw, _split(text, dialect), text))
    return units


def _split(text: str, dialect: Dialect) -> list[str]:
    from baselinr.storage.splitter import split_sql

    return split_sql(text, dialect.split_rules)


def _load_module(path: Path) -> object:
    """Import a migration module, as part of its package when it sits in one (relative imports)."""
    path = path.resolve()
    parts = [path.stem]
    parent = path.parent
    while (parent / "__init__.py").exists():
        parts.insert(0, parent.name)
        parent = parent.parent
    try:
        if len(parts) > 1:
            if str(parent) not in sys.path:
                sys.path.insert(0, str(parent))
            return importlib.import_module(".".join(parts))
        spec = importlib.util.spec_from_file_location(f"baselinr_lint_{path.stem}", path)
        if spec is None or spec.loader is None:
            raise ImportError(path.name)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    except Exception as exc:  # noqa: BLE001 - a user's module may raise anything on import
        raise UsageError(f"Cannot import {path.name}: {exc.__class__.__name__}: {exc}") from None


def model_before_files(units: Sequence[Unit], dialect_name: str, package: str | None = None) -> Schema:
    """The schema model FILES are linted against, offline: the chain's (Baselinr's own by default)
    at the version before the first file's, or at its latest where the files name no version."""
    from baselinr.storage.migrations.chain import DEFAULT_PACKAGE, load_chain

    chain = load_chain(package or DEFAULT_PACKAGE)
    first = min((u.version for u in units if u.version is not None), default=None)
    at = chain.code_version if first is None else max(min(first - 1, chain.code_version), 0)
    return chain.model_at(at, dialect_name)[0]


def units_from_manager(mgr: MigrationManager, target: int | None) -> tuple[list[Unit], Schema]:
    """The pending migrations up to ``target`` as units, and the schema model before them."""
    plan = mgr.plan(target)
    chain = mgr.chain
    if plan.direction != "up":
        return [], chain.model_at(plan.target_version, mgr.dialect.name)[0]
    pending = {s.version: s for s in plan.steps}
    package_dir = _package_dir(chain.package)
    units: list[Unit] = []
    for version in sorted(chain.migrations):
        if version > plan.target_version:
            break
        m = chain.get(version)
        step = pending.get(version)
        if step is None:
            continue
        module_text = ""
        if package_dir is not None and m.script:
            try:
                module_text = (package_dir / m.script).read_text(encoding="utf-8")
            except OSError:
                module_text = ""
        notes = _sql_texts(m) + "\n" + module_text
        units.append(Unit(version, m.script or f"v{version}", list(step.statements), notes, step.python, bool(m.operations)))
    before = min(pending, default=plan.target_version + 1) - 1
    return units, chain.model_at(before, mgr.dialect.name)[0]


def _package_dir(package: str) -> Path | None:
    try:
        module = importlib.import_module(package)
    except ImportError:
        return None
    paths = list(getattr(module, "__path__", []))
    return Path(os.fspath(paths[0])) if paths else None
