"""Tamper with a backup's ``manifest.json`` the ways an attacker (or a bad day) would, for the hostile-backup tests.

Used by ``tests/integration/test_backup_hostile.py`` (SQLite, PostgreSQL,
MariaDB) and ``tests/integration/test_snowflake.py`` (the emulator). Each
kind edits the manifest and, unless it is about the digest itself, reseals
it (recomputes ``manifest_sha256``), so that the check that must catch it
is the model or the files, not only the digest.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from baselinr.backup.manifest import DIGEST_FIELD, digest

Manifest = dict[str, Any]

INJECTION = "VARCHAR(36)); DROP TABLE victim; --"


def _entry(m: Manifest, name: str) -> dict[str, Any]:
    return next(t for t in m["tables"] if t["name"] == name)


def _type_injection(m: Manifest) -> None:
    _entry(m, "baselinr_runs")["columns"][0]["type"] = INJECTION


def _type_changed(m: Manifest) -> None:
    _entry(m, "baselinr_runs")["columns"][0]["type"] = "INTEGER"


def _renamed(m: Manifest) -> None:
    runs = _entry(m, "baselinr_runs")
    runs["name"] = runs["logical_name"] = "victim"


def _renamed_as_model_table(m: Manifest) -> None:
    # A foreign table passed off as one of the model's that cannot be renamed.
    runs = _entry(m, "baselinr_runs")
    runs["name"], runs["logical_name"] = "victim", "baselinr_events"


def _removed(m: Manifest) -> None:
    m["tables"] = [t for t in m["tables"] if t["name"] != "baselinr_runs"]


def _unknown_table(m: Manifest) -> None:
    extra = copy.deepcopy(_entry(m, "baselinr_runs"))
    extra["name"] = extra["logical_name"] = "baselinr_evil"
    m["tables"].append(extra)


def _duplicated(m: Manifest) -> None:
    # The runs table twice: once as itself, once passed off as the (renamable) results table.
    extra = copy.deepcopy(_entry(m, "baselinr_runs"))
    extra["logical_name"] = "baselinr_results"
    m["tables"].append(extra)


def _unknown_column(m: Manifest) -> None:
    _entry(m, "baselinr_runs")["columns"].append({"name": "evil", "type": "INTEGER", "nullable": True})


def _kept_injection(m: Manifest) -> None:
    # A column no migration made, as the backup keeps one, with a type that would be SQL in the restore's DDL.
    _entry(m, "baselinr_runs")["columns"].append({"name": "evil", "type": INJECTION, "nullable": True})
    m["kept_columns"] = ["baselinr_runs.evil"]


def _kept_bad_name(m: Manifest) -> None:
    _entry(m, "baselinr_runs")["columns"].append({"name": "x INTEGER; DROP TABLE victim", "type": "INTEGER"})
    m["kept_columns"] = ["baselinr_runs.x INTEGER; DROP TABLE victim"]


def _incomplete(m: Manifest) -> None:
    m["complete"] = False


def _count(m: Manifest) -> None:
    _entry(m, "baselinr_runs")["rows"] += 1


def _checksum(m: Manifest) -> None:
    runs = _entry(m, "baselinr_runs")
    runs["sha256"] = "0" * 64 if runs["sha256"] != "0" * 64 else "1" * 64


def _newer(m: Manifest) -> None:
    m["schema_version"] = m["code_version"] + 1


def _unsealed(m: Manifest) -> None:
    m["created_at"] = "2020-01-01T00:00:00.000000Z"


# kind -> (edit, reseal, what the first problem of verify / restore says)
KINDS: dict[str, tuple[Callable[[Manifest], None], bool, str]] = {
    "type_injection": (_type_injection, True, "has type"),
    "type_changed": (_type_changed, True, "has type"),
    "renamed_entry": (_renamed, True, "not a table of the schema model"),
    "renamed_as_model_table": (_renamed_as_model_table, True, "cannot be renamed"),
    "removed_entry": (_removed, True, "the backup does not"),
    "unknown_table": (_unknown_table, True, "not a table of the schema model"),
    "duplicated_entry": (_duplicated, True, "a second entry"),
    "unknown_column": (_unknown_column, True, "is not in the schema model"),
    "kept_column_injection": (_kept_injection, True, "none of the model's types"),
    "kept_column_bad_name": (_kept_bad_name, True, "is not in the schema model"),
    "incomplete_flag": (_incomplete, True, "incomplete"),
    "edited_count": (_count, True, "rows read"),
    "edited_checksum": (_checksum, True, "file checksum differs"),
    "version_newer": (_newer, True, "newer than this code"),
    "integrity_mismatch": (_unsealed, False, "SHA-256 differs"),
}


def tamper(backup: Path, kind: str) -> None:
    """Apply tampering ``kind`` to the manifest of the backup directory ``backup``."""
    edit, reseal, _ = KINDS[kind]
    path = backup / "manifest.json"
    m: Manifest = json.loads(path.read_text())
    recorded = m.pop(DIGEST_FIELD)
    edit(m)
    m[DIGEST_FIELD] = digest(m) if reseal else recorded
    path.write_text(json.dumps(m, indent=2))


FORMAT_3_FIELDS = ("excluded_tables", "excluded_columns", "kept_columns")


def as_format_1(backup: Path) -> None:
    """Rewrite a backup's manifest as format 1 wrote it (no digest, none of format 3's fields)."""
    as_older_format(backup, 1)


def as_format_2(backup: Path) -> None:
    """Rewrite a backup's manifest as format 2 wrote it (sealed, none of format 3's fields)."""
    as_older_format(backup, 2)


def as_older_format(backup: Path, version: int) -> None:
    path = backup / "manifest.json"
    m: Manifest = json.loads(path.read_text())
    m.pop(DIGEST_FIELD)
    for key in FORMAT_3_FIELDS:
        assert m.pop(key) == [], key
    m["format_version"] = version
    if version >= 2:
        m[DIGEST_FIELD] = digest(m)
    path.write_text(json.dumps(m, indent=2))
