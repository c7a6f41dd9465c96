"""Write one backup: every ``baselinr_*`` table from one consistent snapshot, then the manifest.

Called by ``api.create_backup``. Works in the store's hidden ``.partial``
directory: one compressed file per table (streamed through ``codecs``), then
``manifest.json`` with counts and checksums, then one atomic rename. Any
error removes the work directory; a killed process leaves only a
``.partial`` directory that ``list`` flags and nothing restores.

Only Baselinr's tables and columns (``catalog``) are backed up; others,
even named ``baselinr_*``, are left out with a warning. The manifest, as
written, must pass the checks of ``trust`` before the backup is published,
so every backup this code publishes is one it would verify and restore.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import TYPE_CHECKING

from baselinr.backup.catalog import catalog
from baselinr.backup.codecs import codec_for
from baselinr.backup.errors import BackupError, ManifestRejected
from baselinr.backup.manifest import MANIFEST_FILE, ColumnEntry, Manifest, TableEntry, backup_name, parse_manifest
from baselinr.backup.progress import ProgressCallback
from baselinr.backup.results import CreateResult, TableSummary
from baselinr.backup.store import LocalStore
from baselinr.backup.streams import HashingGzipWriter
from baselinr.backup.tables import logical_names, select_baselinr
from baselinr.backup.trust import check_manifest
from baselinr.errors import UsageError
from baselinr.storage.migrations import history

if TYPE_CHECKING:
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
    store: LocalStore,
    *,
    runs_table: str,
    results_table: str,
    name: str | None = None,
    progress: ProgressCallback | None = None,
) -> CreateResult:
    started = time.monotonic()
    codec = codec_for(db.dialect.name)
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
        known = catalog(chain, version or 0)
        tables = []
        for table in select_baselinr(codec.table_names(conn), extra=(runs_table, results_table)):
            logical_name = logical.get(table, table)
            if known.get(logical_name) is None and not known.unmodelled(logical_name):
                warnings.append(f"Table {table} is not one of Baselinr's tables: it is not in the backup")
            else:
                tables.append(table)
        if not tables:
            raise BackupError(
                f"Nothing to back up: {db.settings.describe()} has no Baselinr tables",
                hint="Check storage.connection (and storage.connection.schema) in the config.",
            )
        server = ".".join(str(p) for p in (conn.dialect.server_version_info or ()))
        label = database_label(db)
        name = name or backup_name(label, version, created.strftime("%Y%m%dT%H%M%S.%fZ"))
        described = codec.describe(conn, tables)
        work = store.begin(name)
        try:
            entries: list[TableEntry] = []
            for table in tables:
                columns, pk = _known_columns(described[table], known.get(logical.get(table, table)), table, warnings)
                file = f"{table}.{codec.extension}"

                def report(n: int, table: str = table) -> None:
                    if progress is not None:
                        progress("backup", table, n, None)

                with store.create_file(work, file) as f:
                    sink = HashingGzipWriter(f, on_rows=report)
                    codec.dump(conn, table, [c.name for c in columns], sink)
                    s = sink.close()
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
    described: tuple[list[ColumnEntry], list[str]], model: Table | None, table: str, warnings: list[str]
) -> tuple[list[ColumnEntry], list[str]]:
    """The live columns of ``table`` that the model has; the others are left out with a warning."""
    columns, pk = described
    if model is None:
        return columns, pk
    names = {c.name.lower() for c in model.columns}
    extra = [c.name for c in columns if c.name.lower() not in names]
    if extra:
        warnings.append(f"Column(s) {', '.join(extra)} of {table} are not in the schema model: they are not in the backup")
    return [c for c in columns if c.name.lower() in names], pk


def _check_before_publishing(manifest: Manifest, db: Database, chain: Chain) -> None:
    found = check_manifest(manifest, chain, encoding=codec_for(db.dialect.name).encoding)
    if found.problems:
        more = f" (and {len(found.problems) - 1} more)" if len(found.problems) > 1 else ""
        raise ManifestRejected(
            f"{db.settings.describe()} does not match the schema model, so its backup would not restore: "
            f"{found.problems[0].message}{more}",
            hint="Nothing was published; 'baselinr migrate validate' shows the differences.",
        )
