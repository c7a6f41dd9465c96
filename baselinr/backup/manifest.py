"""The backup manifest: what a backup holds, written last, read first.

Written by ``writer`` once every table file is complete, read by ``store``
(list, prune), ``reader`` (verify) and ``restore``. A backup directory is
valid only if its ``manifest.json`` parses, has a known ``format_version``
and says ``"complete": true``; the manifest is the last file written before
the directory is published under its final name.

Format version 1 (``manifest.json``)::

    {"format": "baselinr-backup", "format_version": 1, "complete": true,
     "name": ..., "created_at": "2026-05-09T07:35:12.123456Z", "tool_version": "0.1.0",
     "dialect": "postgres", "database": "prod", "server_version": "15.6",
     "schema_version": 1, "code_version": 1, "mode": "data",
     "tables": [{"name": "baselinr_results", "logical_name": "baselinr_results",
                 "file": "baselinr_results.copy.gz", "encoding": "pg-copy-text",
                 "compression": "gzip", "rows": 1000000, "bytes": 12345678,
                 "content_bytes": 98765432, "sha256": ..., "content_sha256": ...,
                 "in_model": true, "primary_key": ["id"],
                 "columns": [{"name": "id", "type": "INTEGER", "nullable": false}, ...]}]}

``mode`` is ``data`` (table files in the backup). Another mode, such as a
Snowflake zero-copy ``clone`` whose tables live in the warehouse, would add
its own value and its own table fields; readers refuse a mode they do not know.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from baselinr.backup.errors import BackupError

FORMAT = "baselinr-backup"
FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
MODES = ("data",)
ENCODINGS = ("pg-copy-text", "jsonl-typed")


@dataclass(frozen=True)
class ColumnEntry:
    """A column as the source database had it (type in that dialect's spelling)."""

    name: str
    type: str
    nullable: bool = True


@dataclass(frozen=True)
class TableEntry:
    """One table of a backup and the file that holds its rows."""

    name: str
    file: str
    encoding: str
    rows: int
    bytes: int
    content_bytes: int
    sha256: str
    content_sha256: str
    columns: list[ColumnEntry]
    logical_name: str | None = None
    compression: str = "gzip"
    primary_key: list[str] = field(default_factory=list)
    in_model: bool = False

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


@dataclass(frozen=True)
class Manifest:
    """Everything needed to check and restore a backup without the source."""

    name: str
    created_at: str
    tool_version: str
    dialect: str
    database: str
    schema_version: int | None
    code_version: int
    tables: list[TableEntry]
    server_version: str | None = None
    mode: str = "data"
    format: str = FORMAT
    format_version: int = FORMAT_VERSION
    complete: bool = True

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)

    @property
    def bytes(self) -> int:
        return sum(t.bytes for t in self.tables)

    def table(self, name: str) -> TableEntry | None:
        return next((t for t in self.tables if t.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        head = {k: data.pop(k) for k in ("format", "format_version", "complete")}
        return {**head, **data}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False, ensure_ascii=False) + "\n"


def parse_manifest(text: str, where: str) -> Manifest:
    """Parse and check a manifest; every problem is a ``BackupError`` naming ``where``."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise BackupError(f"{where}: manifest.json is not valid JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BackupError(f"{where}: manifest.json is not a Baselinr backup manifest")
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise BackupError(
            f"{where}: backup format version {version!r} is not supported (this tool reads {FORMAT_VERSION})",
            hint="Use the Baselinr version that wrote the backup.",
        )
    if data.get("mode", "data") not in MODES:
        raise BackupError(f"{where}: backup mode {data.get('mode')!r} is not supported by this tool")
    try:
        tables = [TableEntry(**{**t, "columns": [ColumnEntry(**c) for c in t["columns"]]}) for t in data.pop("tables")]
        manifest = Manifest(**{**data, "tables": tables})
    except (KeyError, TypeError) as exc:
        raise BackupError(f"{where}: manifest.json is missing or has unexpected fields ({exc})") from None
    for t in manifest.tables:
        if t.encoding not in ENCODINGS:
            raise BackupError(f"{where}: table {t.name} uses unknown encoding {t.encoding!r}")
        if "/" in t.file or "\\" in t.file or t.file.startswith("."):
            raise BackupError(f"{where}: table {t.name} names an unsafe file {t.file!r}")
    return manifest


_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def backup_name(database: str, schema_version: int | None, stamp: str) -> str:
    """``baselinr-<db>-v<version>-<UTC stamp>``, with only file-name-safe characters."""
    db = _UNSAFE.sub("_", database).strip("._-") or "db"
    return f"baselinr-{db}-v{schema_version if schema_version is not None else 0}-{stamp}"
