"""The backup manifest: what a backup holds, written last, read first.

Written by ``writer`` once every table file is complete, read by ``store``
(list, prune), ``reader`` (verify) and ``restore``. A backup directory is
valid only if its ``manifest.json`` parses, has a known ``format_version``
and says ``"complete": true``; the manifest is the last file written before
the directory is published under its final name. Parsing checks the shape
and the type of every field; ``trust`` then checks the content against our
own schema model. Nothing in a manifest ever becomes SQL.

Format version 2 (``manifest.json``)::

    {"format": "baselinr-backup", "format_version": 2, "complete": true,
     "name": ..., "created_at": "2026-05-09T07:35:12.123456Z", "tool_version": "0.1.0",
     "dialect": "postgres", "database": "prod", "server_version": "15.6",
     "schema_version": 1, "code_version": 1, "mode": "data",
     "tables": [{"name": "baselinr_results", "logical_name": "baselinr_results",
                 "file": "baselinr_results.copy.gz", "encoding": "pg-copy-text",
                 "compression": "gzip", "rows": 1000000, "bytes": 12345678,
                 "content_bytes": 98765432, "sha256": ..., "content_sha256": ...,
                 "in_model": true, "primary_key": ["id"],
                 "columns": [{"name": "id", "type": "INTEGER", "nullable": false}, ...]}],
     "absent_tables": [], "manifest_sha256": ...}

``absent_tables`` names the tables of the model at ``schema_version`` that
the source did not have (a database the profiler stamped without running
every migration); a restore creates them empty through the migrations.

``manifest_sha256`` is the SHA-256 of the canonical JSON of every other
field (keys sorted, no spaces, UTF-8), so an edited or damaged manifest is
found by ``verify`` (it covers the per-file checksums too). It is an
integrity check, not a signature: whoever can write the backup can write a
matching digest, which is why restore trusts nothing the model and the
files do not confirm. Format version 1 is format 2 without that field; it
is still read (see ``trust``). Format 3 adds ``excluded_tables`` and
``excluded_columns``, what ``backup create --exclude-table`` /
``--exclude-column`` left out on purpose (tables and columns that no
migration made), and ``kept_columns``: columns that no migration made,
held under a type of the model's closed list, which restore adds back.
Format 2 is format 3 with all three empty.

``mode`` is ``data`` (table files in the backup). Another mode, such as a
Snowflake zero-copy ``clone`` whose tables live in the warehouse, would add
its own value and its own table fields; readers refuse a mode they do not know.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

from baselinr.backup.errors import BackupError

FORMAT = "baselinr-backup"
FORMAT_VERSION = 3
READABLE_FORMAT_VERSIONS = (1, 2, 3)
DIGEST_FIELD = "manifest_sha256"
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
    # Tables of the model at schema_version that the source database did not have (a database the
    # profiler made and stamped): a restore creates them, empty, through the migrations.
    absent_tables: list[str] = field(default_factory=list)
    # What the user left out on purpose (``backup create --exclude-table / --exclude-column``), as
    # ``table`` and ``table.column``: tables and columns the schema model does not know, never the model's.
    excluded_tables: list[str] = field(default_factory=list)
    excluded_columns: list[str] = field(default_factory=list)
    # Columns (``table.column``) of model tables that no migration made, held in the backup under a type
    # of the model's closed list: restore adds them back (``ALTER TABLE … ADD COLUMN`` from that type).
    kept_columns: list[str] = field(default_factory=list)
    # As read back: the digest the manifest records and the one its content has (None when written by this code).
    recorded_sha256: str | None = field(default=None, compare=False, repr=False)
    computed_sha256: str | None = field(default=None, compare=False, repr=False)

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)

    @property
    def bytes(self) -> int:
        return sum(t.bytes for t in self.tables)

    def table(self, name: str) -> TableEntry | None:
        return next((t for t in self.tables if t.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        """The manifest's content, without its digest."""
        data = asdict(self)
        data.pop("recorded_sha256")
        data.pop("computed_sha256")
        head = {k: data.pop(k) for k in ("format", "format_version", "complete")}
        return {**head, **data}

    def to_json(self) -> str:
        """The file's text, sealed with the digest of its content."""
        data = self.to_dict()
        data[DIGEST_FIELD] = digest(data)
        return json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False) + "\n"


def digest(data: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a manifest's fields, its own digest left out."""
    content = {k: v for k, v in data.items() if k != DIGEST_FIELD}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# Bounds for numbers read back: a count or version far beyond any real backup is damage, not data.
_MAX_COUNT = 2**62
_MAX_VERSION = 1_000_000
_SHA256 = re.compile(r"[0-9a-f]{64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SAFE_FILE = re.compile(r"[A-Za-z0-9_$.-]{1,200}")


def _kind(value: Any, want: str) -> bool:
    if want == "str":
        # One line of printable text: every message that quotes it stays one line.
        return isinstance(value, str) and len(value) <= 4096 and _CONTROL.search(value) is None
    if want == "bool":
        return isinstance(value, bool)
    if want == "count":
        return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _MAX_COUNT
    if want == "version":
        return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _MAX_VERSION
    if want == "version?":
        return value is None or _kind(value, "version")
    if want == "str?":
        return value is None or _kind(value, "str")
    if want == "sha256":
        return isinstance(value, str) and _SHA256.fullmatch(value) is not None
    if want == "names":
        return isinstance(value, list) and all(_kind(v, "str") for v in value)
    return False


_MANIFEST_FIELDS = {
    "name": "str", "created_at": "str", "tool_version": "str", "dialect": "str", "database": "str",
    "schema_version": "version?", "code_version": "version", "server_version": "str?", "mode": "str",
    "format": "str", "format_version": "version", "complete": "bool", "absent_tables": "names",
    "excluded_tables": "names", "excluded_columns": "names", "kept_columns": "names",
}  # fmt: skip
_FORMAT_3_FIELDS = ("excluded_tables", "excluded_columns", "kept_columns")
_TABLE_FIELDS = {
    "name": "str", "file": "str", "encoding": "str", "rows": "count", "bytes": "count", "content_bytes": "count",
    "sha256": "sha256", "content_sha256": "sha256", "logical_name": "str?", "compression": "str",
    "primary_key": "names", "in_model": "bool",
}  # fmt: skip
_COLUMN_FIELDS = {"name": "str", "type": "str", "nullable": "bool"}


def _check_fields(data: Any, spec: dict[str, str], required: set[str], what: str, where: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise BackupError(f"{where}: manifest.json has a malformed {what} (not an object)")
    unexpected = sorted(set(data) - set(spec) - {"tables", "columns"})
    missing = sorted(required - set(data))
    if unexpected or missing:
        detail = ", ".join([*(f"unexpected {k!r}" for k in unexpected), *(f"missing {k!r}" for k in missing)])
        raise BackupError(f"{where}: manifest.json has a malformed {what} ({detail[:200]})")
    for key, want in spec.items():
        if key in data and not _kind(data[key], want):
            raise BackupError(f"{where}: manifest.json has a malformed {what}: {key!r} is {_shown(data[key])}")
    return data


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=True)
    return text if len(text) <= 60 else text[:57] + "..."


def _required(cls: type) -> set[str]:
    return {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}


def parse_manifest(text: str, where: str) -> Manifest:
    """Parse and check a manifest; every problem is a ``BackupError`` naming ``where``."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise BackupError(f"{where}: manifest.json is not valid JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BackupError(f"{where}: manifest.json is not a Baselinr backup manifest")
    version = data.get("format_version")
    if version not in READABLE_FORMAT_VERSIONS or isinstance(version, bool):
        raise BackupError(
            f"{where}: backup format version {_shown(version)} is not supported "
            f"(this tool reads {', '.join(map(str, READABLE_FORMAT_VERSIONS))})",
            hint="Use the Baselinr version that wrote the backup.",
        )
    if data.get("mode", "data") not in MODES:
        raise BackupError(f"{where}: backup mode {_shown(data.get('mode'))} is not supported by this tool")
    recorded = data.pop(DIGEST_FIELD, None)
    if recorded is not None and not isinstance(recorded, str):
        raise BackupError(f"{where}: manifest.json has a malformed {DIGEST_FIELD!r}")
    try:
        computed = digest(data)
    except ValueError:
        raise BackupError(f"{where}: manifest.json holds a number JSON cannot represent") from None
    _check_fields(data, _MANIFEST_FIELDS, _required(Manifest) - {"tables"}, "manifest", where)
    newer = sorted(k for k in _FORMAT_3_FIELDS if k in data)
    if version < 3 and newer:
        raise BackupError(f"{where}: manifest.json has a malformed manifest (format {version} has no {newer[0]!r})")
    raw_tables = data.pop("tables", None)
    if not isinstance(raw_tables, list):
        raise BackupError(f"{where}: manifest.json has no list of tables")
    tables = []
    for raw in raw_tables:
        fields_ = _check_fields(raw, _TABLE_FIELDS, _required(TableEntry), "table entry", where)
        if not isinstance(fields_.get("columns"), list):
            raise BackupError(f"{where}: manifest.json has a malformed table entry (no list of columns)")
        columns = [ColumnEntry(**_check_fields(c, _COLUMN_FIELDS, {"name", "type"}, "column", where)) for c in fields_["columns"]]
        tables.append(TableEntry(**{**fields_, "columns": columns}))
    manifest = Manifest(**{**data, "tables": tables}, recorded_sha256=recorded, computed_sha256=computed)
    for t in manifest.tables:
        if t.encoding not in ENCODINGS:
            raise BackupError(f"{where}: table {_shown(t.name)} uses unknown encoding {_shown(t.encoding)}")
        if not _SAFE_FILE.fullmatch(t.file) or t.file.startswith("."):
            raise BackupError(f"{where}: table {_shown(t.name)} names an unsafe file {_shown(t.file)}")
    return manifest


_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def backup_name(database: str, schema_version: int | None, stamp: str) -> str:
    """``baselinr-<db>-v<version>-<UTC stamp>``, with only file-name-safe characters."""
    db = _UNSAFE.sub("_", database).strip("._-") or "db"
    return f"baselinr-{db}-v{schema_version if schema_version is not None else 0}-{stamp}"
