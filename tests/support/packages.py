"""Build throw-away migration packages for tests: Baselinr's v1 plus custom versions.

Each package gets a unique module name and lives in a temporary directory
put on ``sys.path`` (and on ``PYTHONPATH`` for subprocesses via ``env``).
"""

from __future__ import annotations

import sys
import textwrap
import uuid
from pathlib import Path

HEADER = "from baselinr.storage.migrations.manager import Migration\nfrom sqlalchemy import text\n\n"


def write_package(root: Path, versions: dict[int, str], *, code_version: int | None = None) -> str:
    """Write a package; ``versions`` maps N to module source defining ``migration``.

    Version 1 is Baselinr's own unless given. Returns the import path.
    """
    name = f"migs_{uuid.uuid4().hex[:8]}"
    pkg = root / name
    pkg.mkdir(parents=True)
    imports, names = [], []
    all_versions = sorted({1, *versions})
    for v in all_versions:
        if v == 1 and 1 not in versions:
            imports.append("from baselinr.storage.migrations.versions.v1_initial import migration as v1_migration")
        else:
            (pkg / f"v{v}_test.py").write_text(HEADER + textwrap.dedent(versions[v]))
            imports.append(f"from .v{v}_test import migration as v{v}_migration")
        names.append(f"v{v}_migration")
    top = code_version if code_version is not None else max(all_versions)
    (pkg / "__init__.py").write_text(
        "\n".join(imports) + f"\n\nALL_MIGRATIONS = [{', '.join(names)}]\nCURRENT_SCHEMA_VERSION = {top}\n"
    )
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return name


def sql_migration(version: int, up_sql: str, down_sql: str | None = None, description: str | None = None) -> str:
    """Module source for a plain SQL migration."""
    return (
        f"migration = Migration(version={version}, description={description or f'Test v{version}'!r}, "
        f"up_sql={up_sql!r}, down_sql={down_sql!r})\n"
    )
