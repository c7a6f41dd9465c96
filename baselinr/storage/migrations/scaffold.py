"""``baselinr migrate new``: write the next version's file and register it.

Does the guide's steps 2–4 in one go: creates ``versions/vN_<slug>.py``,
adds it to ``ALL_MIGRATIONS`` in ``versions/__init__.py``, and bumps
``CURRENT_SCHEMA_VERSION`` and ``VERSION_HISTORY`` in ``schema_version.py``.
Edits are textual and minimal, so the files stay as a person wrote them.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from baselinr.errors import UsageError
from baselinr.storage.migrations.chain import DEFAULT_PACKAGE, load_chain

TEMPLATE = '''"""
Migration v{version}: {title}

Describe what this version changes and why.
"""

from ..manager import Migration

migration = Migration(
    version={version},
    description={description},
    up_sql="""
        -- Write the SQL for this version here, e.g.
        -- ALTER TABLE baselinr_runs ADD COLUMN new_field VARCHAR(100);
    """,
    down_sql=None,
)
'''


@dataclass(frozen=True)
class NewMigration:
    version: int
    path: str
    registered_in: str
    version_file: str | None

    def to_dict(self) -> dict[str, object]:
        return {
            "version": self.version,
            "path": self.path,
            "registered_in": self.registered_in,
            "version_file": self.version_file,
        }


def slugify(description: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", description.lower()).strip("_")
    return slug[:40].rstrip("_") or "migration"


def new_migration(description: str, package: str = DEFAULT_PACKAGE, today: dt.date | None = None) -> NewMigration:
    """Create and register migration v(latest+1)."""
    description = description.strip()
    if not description:
        raise UsageError('A migration needs a description, e.g. baselinr migrate new "Add cost tracking fields"')
    chain = load_chain(package)
    version = chain.latest + 1
    module = importlib.import_module(package)
    init = Path(module.__file__ or "")
    folder = init.parent
    target = folder / f"v{version}_{slugify(description)}.py"
    if target.exists():
        raise UsageError(f"{target} already exists")
    source = init.read_text(encoding="utf-8")
    source = _register(source, version, target.stem, init)
    version_file = _version_file(package, init)
    version_source = _bump(version_file.read_text(encoding="utf-8"), version, description, today or dt.date.today(), version_file)
    target.write_text(
        TEMPLATE.format(version=version, title=description, description=json.dumps(description, ensure_ascii=False)),
        encoding="utf-8",
    )
    init.write_text(source, encoding="utf-8")
    version_file.write_text(version_source, encoding="utf-8")
    return NewMigration(version, str(target), str(init), str(version_file))


def _register(source: str, version: int, stem: str, where: Path) -> str:
    imports = list(re.finditer(r"^from \.\S+ import migration as \w+.*$", source, re.MULTILINE))
    if not imports:
        raise UsageError(f"Cannot find the migration imports in {where}")
    name = f"v{version}_migration"
    line = f"from .{stem} import migration as {name}"
    at = imports[-1].end()
    source = source[:at] + "\n" + line + source[at:]
    m = re.search(r"ALL_MIGRATIONS\s*=\s*\[(.*?)^\]", source, re.MULTILINE | re.DOTALL)
    if not m:
        raise UsageError(f"Cannot find ALL_MIGRATIONS = [...] in {where}")
    end = m.end() - 1
    body = source[m.start(1) : end]
    sep = "" if body.rstrip().endswith(",") or not body.strip() else ","
    stripped = body.rstrip()
    new_body = stripped + sep + f"\n    {name},\n"
    return source[: m.start(1)] + new_body + source[end:]


def _version_file(package: str, init: Path) -> Path:
    if package == DEFAULT_PACKAGE:
        return init.parent.parent.parent / "schema_version.py"
    return init


def _bump(source: str, version: int, description: str, today: dt.date, where: Path) -> str:
    source, n = re.subn(r"^CURRENT_SCHEMA_VERSION\s*=\s*\d+", f"CURRENT_SCHEMA_VERSION = {version}", source, flags=re.MULTILINE)
    if n != 1:
        raise UsageError(f"Cannot find CURRENT_SCHEMA_VERSION in {where}")
    m = re.search(r"^VERSION_HISTORY\s*=\s*\{(.*?)^\}", source, re.MULTILINE | re.DOTALL)
    if not m:
        return source
    end = m.end() - 1
    body = source[m.start(1) : end].rstrip()
    sep = "" if body.endswith(",") or not body.strip() else ","
    entry = (
        f'\n    {version}: {{\n        "description": {json.dumps(description, ensure_ascii=False)},\n'
        f'        "applied": "{today.isoformat()}",\n        "breaking_changes": False,\n    }},\n'
    )
    return source[: m.start(1)] + body + sep + entry + source[end:]
