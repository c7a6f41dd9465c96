"""Write one backup: every ``baselinr_*`` table from one consistent snapshot, then the manifest.

Called by ``api.create_backup``. Works in the store's hidden ``.partial``
directory: one compressed file per table (streamed through ``codecs``), then
``manifest.json`` with counts and checksums, then one atomic rename. Any
error removes the work directory; a killed process leaves only a
``.partial`` directory that ``list`` flags and nothing restores.

Every table and column of the schema model (``catalog``: the migrations'
operations and the DDL of their SQL) is backed up. A ``baselinr_*`` table
that no migration made makes the backup fail
(``SchemaOutsideModel``, exit 1) unless the user leaves it out by name
(``--exclude-table`` / ``--exclude-column``, recorded in the manifest): a
backup that exits 0 holds every value a restore needs. A column of a model
table that no migration made is kept when its type is one of the model's
families (recorded in ``kept_columns``; restore adds it back), else the
backup fails unless it is excluded by name. Tables not named
``baselinr_*`` and not in the model are not Baselinr's and are not touched. The manifest, as
written, must pass the checks of ``trust`` before the backup is published,
so every backup this code publishes is one it would verify and restore.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from baselinr import tracing
from baselinr.backup.catalog import Catalog, catalog
from baselinr.backup.codecs import Codec, codec_for
from baselinr.backup.errors import BackupError, ManifestRejected, SchemaOutsideModel
from baselinr.backup.manifest import MANIFEST_FILE, ColumnEntry, Manifest, TableEntry, backup_name, parse_manifest
from baselinr.backup.progress import ProgressCallback
from baselinr.backup.results import CreateResult, TableSummary
from baselinr.backup.streams import HashingGzipWriter
from baselinr.backup.tables import logical_names, select_baselinr
from baselinr.backup.trust import check_manifest
from baselinr.errors import UsageError
from baselinr.storage.families import closed_spelling
from baselinr.storage.migrations import history

if TYPE_CHECKING:
    from baselinr.backup.store import BackupStore
    from baselinr.storage.database import Database
    from baselinr.storage.migrations.chain import Chain
    from baselinr.storage.model import Table


def tool_version() -> str:
    """This code's version (the package's ``__version__``, which the packaging metadata must equal)."""
    from baselinr import __version__

    return __version__


def database_label(db: Database) -> str:
    s = db.settings
    if s.type == "sqlite":
        return Path(s.filepath or s.database).stem
    return s.database


def write_backup(
    db: Database,
    chain: Chain,
    store: BackupStore[Any],
    *,
    runs_table: str,
    results_table: str,
    name: str | None = None,
    progress: ProgressCallback | None = None,
    exclude_tables: Sequence[str] = (),
    exclude_columns: Sequence[str] = (),
    codec: Codec | None = None,
) -> CreateResult:
    """``codec``: another codec of the same dialect (``migrate move``: the portable encoding)."""
    started = time.monotonic()
    excluded = _Exclusions.parse(exclude_tables, exclude_columns)
    codec = codec or codec_for(db.dialect.name)
    logical = logical_names(runs_table, results_table)
    warnings: list[str] = []
    created = dt.datetime.now(dt.timezone.utc)
    # On the bare driver where the codec can be: SQLAlchemy is not even imported then.
    with db.connect(bare=codec.bare and db.bare_available) as raw:
        conn = codec.snapshot(raw)
        rows = history.read_history(conn) or []
        applied = history.applied_versions(rows)
        version = max(applied, default=None)
        for row in history.unfinished(rows):
            warnings.append(f"Migration v{row.version} is recorded as {row.status}; the backup holds that state as it is")
        if (version or 0) > chain.code_version:
            raise UsageError(
                f"{db.settings.describe()} is at schema v{version}, newer than this code (v{chain.code_version})",
                hint=f"Take the backup with a Baselinr version that knows v{version}.",
            )
        known = catalog(chain, version or 0, db.dialect.name)
        model_tables = [db.names(t) for t in known.required]
        tables, outside = [], []
        for table in select_baselinr(codec.table_names(conn), extra=(runs_table, results_table, *model_tables)):
            logical_name = logical.get(table, table)
            if excluded.table(table):
                if known.get(logical_name) is not None:
                    raise UsageError(
                        f"--exclude-table {table}: {table} is a table of the schema model at v{version or 0}; "
                        "only tables that no migration made can be left out",
                        hint="Back it up with the rest (drop the option).",
                    )
                excluded.seen_tables.append(table)
            elif known.get(logical_name) is None and not known.unmodelled(logical_name):
                outside.append(table)
            else:
                tables.append(table)
        if outside:
            raise _outside_tables(db, outside, version or 0)
        if not tables:
            raise BackupError(
                f"Nothing to back up: {db.settings.describe()} has no Baselinr tables",
                hint="Check storage.connection (and storage.connection.schema) in the config.",
            )
        server = ".".join(str(p) for p in (conn.dialect.server_version_info or ()))
        label = database_label(db)
        name = name or backup_name(label, version, created.strftime("%Y%m%dT%H%M%S.%fZ"))
        described = codec.describe(conn, tables)
        kept = _columns_outside_model(described, known, logical, excluded, version or 0, db)
        if kept:
            warnings.append(
                f"Column(s) {', '.join(kept)} are not in the schema model (no migration made them): the backup "
                "holds them and a restore adds them back; 'baselinr migrate validate' lists them"
            )
        if excluded.seen_tables or excluded.seen_columns:
            left_out = ", ".join(sorted(excluded.seen_tables) + sorted(excluded.seen_columns))
            warnings.append(f"Left out as asked (recorded in the manifest; a restore will not have them): {left_out}")
        work = store.begin(name)
        try:
            entries: list[TableEntry] = []
            for table in tables:
                columns, pk = _known_columns(described[table], known.get(logical.get(table, table)), table, excluded)
                file = f"{table}.{codec.extension}"

                def report(n: int, table: str = table) -> None:
                    if progress is not None:
                        progress("backup", table, n, None)

                with tracing.span("backup table", table=table, columns=len(columns), dialect=db.dialect.name) as span:
                    with store.create_file(work, file) as f:
                        sink = HashingGzipWriter(f, on_rows=report)
                        codec.dump(conn, table, [c.name for c in columns], sink)
                        s = sink.close()
                    tracing.annotate(span, rows=s.rows, bytes=s.file_bytes)
                report(s.rows)
                entries.append(
                    TableEntry(
                        name=table,
                        logical_name=logical.get(table, table),
                        file=file,
                        encoding=codec.encoding,
                        rows=s.rows,
                        bytes=s.file_bytes,
                        content_bytes=s.content_bytes,
                        sha256=s.sha256,
                        content_sha256=s.content_sha256,
                        columns=columns,
                        primary_key=pk,
                    )
                )
            if conn.in_transaction():
                conn.rollback()
            present = {logical.get(t, t).lower() for t in tables}
            absent = sorted(t for t in known.required if t not in present)
            if absent:
                warnings.append(
                    f"Schema v{version} has table(s) the database lacks: {', '.join(absent)}; "
                    "the backup records them as absent (a restore creates them empty)"
                )
            manifest = Manifest(
                absent_tables=absent,
                name=name,
                created_at=created.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                tool_version=tool_version(),
                dialect=db.dialect.name,
                database=label,
                server_version=server or None,
                schema_version=version,
                code_version=chain.code_version,
                tables=entries,
                excluded_tables=sorted(excluded.seen_tables),
                excluded_columns=sorted(excluded.seen_columns),
                kept_columns=kept,
            )
            text = manifest.to_json()
            _check_before_publishing(parse_manifest(text, name), db, chain)
            with store.create_file(work, MANIFEST_FILE) as f:
                f.write(text.encode("utf-8"))
            final = store.publish(work, name)
        except BaseException as exc:
            store.abort(work)
            if isinstance(exc, OSError) and (unwritable := store.destination_error(exc)) is not None:
                raise unwritable from None
            raise
    return CreateResult(
        name=name,
        path=str(final),
        dialect=manifest.dialect,
        database=db.settings.describe(),
        schema_version=version,
        tables=[TableSummary(t.name, t.rows, t.bytes) for t in entries],
        rows=manifest.rows,
        bytes=manifest.bytes,
        seconds=round(time.monotonic() - started, 3),
        warnings=warnings,
    )


def _known_columns(
    described: tuple[list[ColumnEntry], list[str]], model: Table | None, table: str, excluded: _Exclusions
) -> tuple[list[ColumnEntry], list[str]]:
    """The live columns of ``table`` to back up: all of them but those excluded by name
    (``_refuse_unknown_columns`` has made sure that every other one is the model's)."""
    columns, pk = described
    return [c for c in columns if not excluded.column(table, c.name)], pk


def _columns_outside_model(
    described: Mapping[str, tuple[list[ColumnEntry], list[str]]],
    known: Catalog,
    logical: Mapping[str, str],
    excluded: _Exclusions,
    version: int,
    db: Database,
) -> list[str]:
    """The live columns of model tables that no migration made (``table.column``), which the
    backup keeps: each must have a type of the model's closed list of families, or be
    excluded by name; otherwise the backup fails here, before anything is written."""
    kept: list[str] = []
    refused: list[str] = []
    for table, (columns, _pk) in described.items():
        model = known.get(logical.get(table, table))
        if model is None:
            continue  # a table a SQL migration the model could not follow made: restore checks it by name
        for c in columns:
            in_model = model.column(c.name.lower()) is not None
            if excluded.column(table, c.name):
                if in_model:
                    raise UsageError(
                        f"--exclude-column {table}.{c.name}: that column is in the schema model at v{version}; "
                        "only columns that no migration made can be left out",
                        hint="Back it up with the rest (drop the option).",
                    )
                excluded.seen_columns.append(f"{table}.{c.name}")
            elif in_model:
                continue
            elif _IDENTIFIER.fullmatch(c.name) and closed_spelling(c.type) is not None:
                kept.append(f"{table}.{c.name}")
            else:
                refused.append(f"{table}.{c.name} ({c.type})")
    excluded.check_all_found()
    if refused:
        shown = ", ".join(refused[:5]) + (f" (and {len(refused) - 5} more)" if len(refused) > 5 else "")
        first = refused[0].split(" ", 1)[0]
        raise SchemaOutsideModel(
            f"{db.settings.describe()} has column(s) that no migration up to v{version} made, of a type a backup "
            f"cannot hold: {shown}; none was written.",
            hint=(
                f"Back up without them, saying so: --exclude-column {first} (recorded in the manifest); or change "
                "the column to a type of the model (integer, bigint, float, decimal, string, text, json, timestamp, "
                "boolean)."
            ),
        )
    return kept


def _outside_tables(db: Database, tables: list[str], version: int) -> SchemaOutsideModel:
    shown = ", ".join(tables[:5]) + (f" (and {len(tables) - 5} more)" if len(tables) > 5 else "")
    return SchemaOutsideModel(
        f"{db.settings.describe()} has table(s) that no migration up to v{version} made: {shown}; "
        "a backup would not hold them, so none was written.",
        hint=(
            "To keep them, add a migration that creates them (CREATE TABLE IF NOT EXISTS ...; applied, it changes "
            f"nothing here) and apply it. To back up without them, say so: --exclude-table {tables[0]} "
            "(recorded in the manifest)."
        ),
    )


@dataclass
class _Exclusions:
    """What ``--exclude-table`` / ``--exclude-column`` name, and which of them the database had."""

    tables: frozenset[str]
    columns: frozenset[tuple[str, str]]
    seen_tables: list[str] = field(default_factory=list)
    seen_columns: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, tables: Sequence[str], columns: Sequence[str]) -> _Exclusions:
        cols = set()
        for spec in columns:
            table, dot, column = spec.partition(".")
            if not dot or not _IDENTIFIER.fullmatch(table) or not _IDENTIFIER.fullmatch(column):
                raise UsageError(f"--exclude-column {spec!r}: expected TABLE.COLUMN, e.g. baselinr_runs.notes")
            cols.add((table.lower(), column.lower()))
        for t in tables:
            if not _IDENTIFIER.fullmatch(t):
                raise UsageError(f"--exclude-table {t!r}: expected a plain table name, e.g. baselinr_scratch")
        return cls(frozenset(t.lower() for t in tables), frozenset(cols))

    def table(self, name: str) -> bool:
        return name.lower() in self.tables

    def column(self, table: str, column: str) -> bool:
        return (table.lower(), column.lower()) in self.columns

    def check_all_found(self) -> None:
        """An exclusion that matches nothing is a typo: say so rather than write a backup that ignores it."""
        missing_t = sorted(self.tables - {t.lower() for t in self.seen_tables})
        seen_c = {tuple(c.lower().split(".", 1)) for c in self.seen_columns}
        missing_c = sorted(f"{t}.{c}" for t, c in self.columns - seen_c)
        if missing_t or missing_c:
            what = ", ".join([*(f"--exclude-table {t}" for t in missing_t), *(f"--exclude-column {c}" for c in missing_c)])
            raise UsageError(
                f"{what}: no such table or column outside the schema model in this database",
                hint="Check the spelling; 'baselinr migrate validate' lists what the model does not know.",
            )


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,127}")


def _check_before_publishing(manifest: Manifest, db: Database, chain: Chain) -> None:
    found = check_manifest(manifest, chain, encoding=codec_for(db.dialect.name).encoding)
    if found.problems:
        more = f" (and {len(found.problems) - 1} more)" if len(found.problems) > 1 else ""
        raise ManifestRejected(
            f"{db.settings.describe()} does not match the schema model, so its backup would not restore: "
            f"{found.problems[0].message}{more}",
            hint="Nothing was published; 'baselinr migrate validate' shows the differences.",
        )
