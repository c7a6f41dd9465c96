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
    _refuse_installed(package, folder)
    target = folder / f"v{version}_{slugify(description)}.py"
    if target.exists():
        raise UsageError(f"{target} already exists")
    source = init.read_text(encoding="utf-8")
    source = _register(source, version, target.stem, init)
    version_file = _version_file(package, init)
    version_source = _bump(version_file.read_text(encoding="utf-8"), version, description, today or dt.date.today(), version_file)
    # Never write a file that cannot be read back: check both edits parse, and register v{version}.
    _check_parses(source, init, f"v{version}_migration")
    _check_parses(version_source, version_file, None)
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
    # The last entry as code (a comment after it, "v15_migration  # hybrid,", is not its comma).
    code = "\n".join(_strip_comment(line) for line in body.splitlines()).rstrip()
    lines = body.rstrip().splitlines()
    if code and not code.endswith(","):
        last = max(i for i, line in enumerate(lines) if _strip_comment(line).strip())
        entry = _strip_comment(lines[last]).rstrip()
        lines[last] = entry + "," + lines[last][len(entry) :]
    new_body = "\n".join(lines) + f"\n    {name},\n"
    return source[: m.start(1)] + new_body + source[end:]


def _strip_comment(line: str) -> str:
    """``line`` without its ``#`` comment (a registry line holds names, not strings)."""
    return line.split("#", 1)[0]


def _check_parses(source: str, where: Path, registers: str | None) -> None:
    """Refuse (before anything is written) an edit that would leave ``where`` unparsable, or
    that does not put ``registers`` into its ``ALL_MIGRATIONS``."""
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise UsageError(
            f"Registering the new migration would break {where} (line {exc.lineno}: {exc.msg}); nothing was written",
            hint="Tidy ALL_MIGRATIONS there (one name per line), or register the migration by hand.",
        ) from None
    if registers is None:
        return
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "ALL_MIGRATIONS" for t in node.targets):
            if isinstance(node.value, ast.List) and any(isinstance(e, ast.Name) and e.id == registers for e in node.value.elts):
                return
    raise UsageError(
        f"Could not register {registers} in ALL_MIGRATIONS of {where}; nothing was written",
        hint="Tidy ALL_MIGRATIONS there (one name per line), or register the migration by hand.",
    )


def _refuse_installed(package: str, folder: Path) -> None:
    """A migrations package under site-packages is an installed copy: a file written there is
    lost on the next install and never reaches the code's history."""
    if {"site-packages", "dist-packages"} & set(folder.resolve().parts):
        raise UsageError(
            f"The migrations package '{package}' is an installed copy ({folder}), not a source checkout; "
            "nothing was written",
            hint="Run 'baselinr migrate new' in a checkout of the code that holds it "
            "(installed there with 'pip install -e .', or with the checkout on PYTHONPATH).",
        )


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
