"""Check a backup's manifest against our own schema model, before its files are read or a database is touched.

Called by ``reader.verify`` (``backup verify`` reports every problem),
``restore`` (which refuses on any problem, before it connects) and
``writer`` (which never publishes a backup that would fail here). A backup
is data, never code: restore builds every table from the model, so the
manifest only supplies table and column names, which must be the model's,
and the counts and checksums that the files are checked against. What is
checked:

- the manifest's own digest (``manifest_sha256``; format 1 has none, see
  ``INTEGRITY_NOT_RECORDED``) and its ``complete`` flag;
- the schema version: not newer than the code;
- the dialect and its file encoding;
- every table: known to the model (or one the profiler makes; where the
  model is not exact, any ``baselinr_*`` table, see ``catalog``), only the
  two renamable tables under another name, none twice, and every table of
  the model at that version present or listed in ``absent_tables`` (the
  source did not have it: restore creates it empty);
- every column: one the model has, of a type whose family the model's
  accepts (the rules of ``migrate validate``), and no required column left
  out; or one the manifest lists in ``kept_columns`` (no migration made it),
  of a type of the model's closed list of families.

Each finding is a ``ManifestProblem`` (a kind, a table, a detail); the text
is rendered from it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from baselinr.backup.catalog import RENAMABLE, Catalog, catalog
from baselinr.backup.manifest import FORMAT_VERSION, Manifest, TableEntry
from baselinr.backup.rows import ENCODING as PORTABLE
from baselinr.storage.families import accepts, closed_spelling, describe, type_family
from baselinr.storage.model import Column, SqlType, Table

if TYPE_CHECKING:
    from baselinr.storage.migrations.chain import Chain

INTEGRITY_OK = "ok"
INTEGRITY_MISMATCH = "mismatch"
INTEGRITY_MISSING = "missing"
# Format 1 backups (written before the digest existed) are still accepted: every field restore uses
# is checked against the model or against the files themselves, which is what keeps the target safe.
INTEGRITY_NOT_RECORDED = "not recorded (format 1)"

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,127}")
class _Report(Protocol):
    def __call__(self, kind: str, table: str | None, detail: str) -> None: ...


@dataclass(frozen=True)
class ManifestProblem:
    """One way a manifest differs from what this code accepts."""

    kind: str  # incomplete | integrity | newer | dialect | encoding | unknown_table | renamed_table | duplicate_table
    # | missing_table | absent_table | unknown_column | duplicate_column | missing_column | type | name
    table: str | None
    detail: str

    @property
    def message(self) -> str:
        return f"{self.table}: {self.detail}" if self.table else self.detail


@dataclass(frozen=True)
class ManifestCheck:
    """The outcome of checking one manifest: its integrity state and every problem found."""

    integrity: str
    sha256: str | None
    problems: list[ManifestProblem]

    @property
    def ok(self) -> bool:
        return not self.problems


def type_matches(model: SqlType, spelled: str) -> bool:
    found = type_family(spelled)
    return found is not None and accepts(model, *found)


def integrity(manifest: Manifest) -> str:
    if manifest.recorded_sha256 is None:
        return INTEGRITY_NOT_RECORDED if manifest.format_version < FORMAT_VERSION else INTEGRITY_MISSING
    return INTEGRITY_OK if manifest.recorded_sha256 == manifest.computed_sha256 else INTEGRITY_MISMATCH


def check_manifest(manifest: Manifest, chain: Chain, *, encoding: str | None) -> ManifestCheck:
    """Every problem of ``manifest`` for code with ``chain``; ``encoding`` is the dialect codec's, None if unknown."""
    problems: list[ManifestProblem] = []

    def problem(kind: str, table: str | None, detail: str) -> None:
        problems.append(ManifestProblem(kind, table, detail))

    state = integrity(manifest)
    if state == INTEGRITY_MISMATCH:
        problem("integrity", None, "manifest.json was changed after it was written (its SHA-256 differs from the recorded one)")
    elif state == INTEGRITY_MISSING:
        problem("integrity", None, "manifest.json records no SHA-256 of its content")
    if not manifest.complete:
        problem("incomplete", None, "the manifest says the backup is incomplete")
    if encoding is None:
        problem("dialect", None, f"backups of dialect {_shown(manifest.dialect)} are not supported")
    version = manifest.schema_version or 0
    if version > chain.code_version:
        problem("newer", None, f"schema v{version} is newer than this code (v{chain.code_version})")
        return ManifestCheck(state, manifest.recorded_sha256, problems)
    if encoding is None:
        return ManifestCheck(state, manifest.recorded_sha256, problems)  # no model for a dialect we do not back up
    cat = catalog(chain, version, manifest.dialect)
    seen: dict[str, str] = {}
    names: set[str] = set()
    for entry in manifest.tables:
        if entry.name.lower() in names:
            problem("duplicate_table", _shown(entry.name), "a second entry of that name")
            continue
        names.add(entry.name.lower())
        logical = _check_table(entry, cat, encoding, problem, kept_columns(manifest))
        if logical is None:
            continue
        if logical in seen:
            problem("duplicate_table", _shown(entry.name), f"a second entry for {logical} (also {seen[logical]})")
            continue
        seen[logical] = entry.name
    absent = {a.lower() for a in manifest.absent_tables}
    for logical in sorted(absent):
        if logical not in cat.required or logical in seen:
            detail = f"listed as absent, but it is not a missing table of the model at v{version}"
            problem("absent_table", _shown(logical), detail)
    for logical in sorted(set(cat.required) - set(seen) - absent):
        problem("missing_table", logical, f"the schema model at v{version} has this table; the backup does not")
    return ManifestCheck(state, manifest.recorded_sha256, problems)


def logical_of(entry: TableEntry) -> str:
    return (entry.logical_name or entry.name).lower()


def kept_columns(manifest: Manifest) -> set[tuple[str, str]]:
    """(table, column), lower case, of the manifest's ``kept_columns``: columns no migration made."""
    out = set()
    for spec in manifest.kept_columns:
        table, _, column = spec.lower().partition(".")
        out.add((table, column))
    return out


def _check_table(
    entry: TableEntry, cat: Catalog, encoding: str | None, problem: _Report, kept: set[tuple[str, str]]
) -> str | None:
    """The entry's logical name once it is one of the model's, else None (after reporting why)."""
    shown = _shown(entry.name)
    names = [entry.name] if entry.logical_name is None else [entry.name, entry.logical_name]
    if not all(_IDENTIFIER.fullmatch(n) for n in names):
        problem("name", shown, "not a plain table name")
        return None
    logical = logical_of(entry)
    table = cat.get(logical)
    if table is None and not cat.unmodelled(logical):
        problem("unknown_table", shown, f"not a table of the schema model at v{cat.version}")
        return None
    if entry.name.lower() != logical and logical not in RENAMABLE:
        problem("renamed_table", shown, f"names itself {logical}, which cannot be renamed")
        return None
    # The portable encoding (typed JSON lines) is every dialect's: ``migrate move`` backs PostgreSQL up in it.
    if encoding is not None and entry.encoding not in (encoding, PORTABLE):
        problem("encoding", shown, f"encoding {_shown(entry.encoding)} is not this dialect's ({encoding})")
    if table is not None:
        _check_columns(entry, table, cat.version, problem, kept)
    else:
        # Made by a SQL migration: restore checks the names against the table the migrations create.
        for c in entry.columns:
            if not _IDENTIFIER.fullmatch(c.name):
                problem("unknown_column", shown, f"column {_shown(c.name)} is not a plain column name")
    return logical


def _check_columns(entry: TableEntry, table: Table, version: int, problem: _Report, kept: set[tuple[str, str]]) -> None:
    shown = _shown(entry.name)
    if not entry.columns:
        problem("missing_column", shown, "no columns")
        return
    names: set[str] = set()
    for c in entry.columns:
        key = c.name.lower()
        col = table.column(key) or next((m for m in table.columns if m.name.lower() == key), None)
        if col is None and (entry.name.lower(), key) in kept and _IDENTIFIER.fullmatch(c.name):
            # No migration made it; the backup holds it under a type of the model's closed list.
            if key in names:
                problem("duplicate_column", shown, f"column {c.name} is listed twice")
            elif closed_spelling(c.type) is None:
                problem("type", shown, f"column {c.name} has type {_shown(c.type)}, which is none of the model's types")
            names.add(key)
            continue
        if col is None or not _IDENTIFIER.fullmatch(c.name):
            problem("unknown_column", shown, f"column {_shown(c.name)} is not in the schema model at v{version}")
            continue
        if key in names:
            problem("duplicate_column", shown, f"column {c.name} is listed twice")
            continue
        names.add(key)
        if not type_matches(col.type, c.type):
            problem("type", shown, f"column {c.name} has type {_shown(c.type)}, which is not the model's {_model_type(col)}")
    for col in table.columns:
        if col.name.lower() not in names and _required(col, table):
            problem("missing_column", shown, f"column {col.name} (NOT NULL, no default) is not in the backup")


def _required(col: Column, table: Table) -> bool:
    return not col.nullable and col.default is None and not col.autoincrement


def _model_type(col: Column) -> str:
    return describe(col.type)


def _shown(value: str) -> str:
    text = value.encode("unicode_escape").decode("ascii")
    return text if len(text) <= 60 else text[:57] + "..."
