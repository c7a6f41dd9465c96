"""Restore a backup: rebuild the schema at the backup's version through the migrations, then load the rows.

Called by ``api.restore_backup``. Steps, under the migration lock:

1. Refuse what would go wrong: another dialect, a backup newer than the
   code, or a target that already has Baselinr tables (unless ``replace``).
2. Drop the target's Baselinr tables (``replace`` only), create the version
   table, run the up migrations 1..N of the backup's version (without
   recording them: the backup's own version rows are restored instead, so
   the history is reproduced exactly), and create any table the migrations
   do not know from the manifest's column list.
3. Load every table through its codec, checking rows and both checksums of
   each file as it is read; reset PostgreSQL's sequences.

On PostgreSQL and SQLite all of it is one transaction: a failure leaves the
target exactly as it was. MySQL commits DDL as it runs, so there the backup
is verified in full first, the rows are loaded in one transaction, and a
failure says plainly what state the target is in.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from baselinr.backup.codecs import Codec, codec_for
from baselinr.backup.errors import BackupError, RestoreFailed, RestoreRefused
from baselinr.backup.manifest import Manifest
from baselinr.backup.progress import ProgressCallback
from baselinr.backup.reader import check_table, mismatch, open_table, verify
from baselinr.backup.results import RestoreResult, TableSummary
from baselinr.backup.store import read_manifest
from baselinr.backup.tables import baselinr_tables, create_from_manifest, live_columns
from baselinr.errors import BaselinrError
from baselinr.storage.connection import first_line, open_connection, redact, run_statement
from baselinr.storage.migrations import history
from baselinr.storage.version_table import VERSION_TABLE_NAME

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from baselinr.storage.migrations.manager import MigrationManager


class _Plan:
    """What one restore does, filled in as it goes (for the result and for error messages)."""

    def __init__(self, mgr: MigrationManager, manifest: Manifest, path: Path, codec: Codec) -> None:
        self.mgr = mgr
        self.manifest = manifest
        self.path = path
        self.codec = codec
        self.version = manifest.schema_version or 0
        self.targets = {t.name: mgr.names(t.logical_name or t.name) for t in manifest.tables}
        self.replaced: list[str] = []
        self.created: list[str] = []
        self.loaded: list[TableSummary] = []
        self.notes: list[str] = []


def restore(
    mgr: MigrationManager,
    path: Path,
    *,
    replace: bool,
    runs_table: str,
    results_table: str,
    progress: ProgressCallback | None = None,
) -> RestoreResult:
    started = time.monotonic()
    manifest = read_manifest(path)
    dialect = mgr.dialect
    codec = codec_for(dialect.name)
    where = mgr.settings.describe()
    if manifest.dialect != dialect.name:
        raise RestoreRefused(
            f"Backup {manifest.name} was taken from {manifest.dialect}; it cannot be restored into {dialect.name} ({where})",
            hint=f"Restore it into a {manifest.dialect} database.",
        )
    code = mgr.chain.code_version
    if (manifest.schema_version or 0) > code:
        raise RestoreRefused(
            f"Backup {manifest.name} is at schema v{manifest.schema_version}, newer than this code (v{code})",
            hint=f"Restore it with a Baselinr version that knows v{manifest.schema_version}, or choose an older backup.",
        )
    for t in manifest.tables:
        if not (path / t.file).is_file():
            raise BackupError(f"Backup {manifest.name} is damaged: {t.file} is missing", hint="Nothing was changed.")
    if not codec.atomic_restore:
        checked = verify(path, progress, manifest)
        if not checked.ok:
            raise BackupError(
                f"Backup {manifest.name} failed verification: {'; '.join(checked.problems)}", hint="Nothing was changed."
            )
    plan = _Plan(mgr, manifest, path, codec)
    # The migration lock, held on a connection of its own, keeps 'migrate apply' out meanwhile.
    with open_connection(mgr.engine, mgr.settings) as lock_conn, dialect.lock(lock_conn, mgr.lock_timeout):
        with open_connection(mgr.engine, mgr.settings) as conn:
            existing = _existing(conn, plan, runs_table, results_table)
            if existing and not replace:
                shown = ", ".join(existing[:6]) + (", …" if len(existing) > 6 else "")
                raise RestoreRefused(
                    f"{where} already has Baselinr tables ({shown})",
                    hint="Restore into an empty database, or pass --replace to drop and replace them.",
                )
            if conn.in_transaction():
                conn.rollback()
            if codec.atomic_restore:
                _atomic(conn, plan, existing, progress)
            else:
                _staged(conn, plan, existing, progress)
    notes = plan.notes
    if not codec.atomic_restore:
        notes.insert(
            0,
            f"{dialect.name} commits schema changes at once: the schema was rebuilt first, then the rows "
            "were loaded in one transaction",
        )
    return RestoreResult(
        name=manifest.name,
        database=where,
        dialect=dialect.name,
        schema_version=manifest.schema_version,
        code_version=code,
        tables=plan.loaded,
        rows=sum(t.rows for t in plan.loaded),
        seconds=round(time.monotonic() - started, 3),
        atomic=codec.atomic_restore,
        replaced=plan.replaced,
        created_from_backup=plan.created,
        notes=notes,
    )


def _existing(conn: Connection, plan: _Plan, runs_table: str, results_table: str) -> list[str]:
    from sqlalchemy import inspect

    found = baselinr_tables(conn, extra=(runs_table, results_table))
    live = set(inspect(conn).get_table_names())
    return found + sorted(t for t in set(plan.targets.values()) if t in live and t not in found)


def _atomic(conn: Connection, plan: _Plan, existing: list[str], progress: ProgressCallback | None) -> None:
    try:
        with conn.execution_options(baselinr_write=True).begin():
            _build_schema(conn, plan, existing)
            _load(conn, plan, progress)
    except Exception as exc:
        raise _failed(
            plan,
            exc,
            f"It ran in one transaction, which was rolled back: {plan.mgr.settings.describe()} is exactly as it was before.",
        ) from exc


def _staged(conn: Connection, plan: _Plan, existing: list[str], progress: ProgressCallback | None) -> None:
    where = plan.mgr.settings.describe()
    ddl = conn.execution_options(isolation_level="AUTOCOMMIT")
    try:
        _build_schema(ddl, plan, existing)
    except Exception as exc:
        raise _failed(
            plan,
            exc,
            f"{plan.mgr.dialect.name} commits schema changes as they run: the Baselinr tables of {where} may be partly "
            "dropped or created and hold no restored rows. Run the restore again with --replace.",
        ) from exc
    with open_connection(plan.mgr.engine, plan.mgr.settings) as data:
        try:
            with data.begin():
                _load(data, plan, progress)
        except Exception as exc:
            raise _failed(
                plan,
                exc,
                f"The rows were loaded in one transaction, which was rolled back: {where} has the tables of schema "
                f"v{plan.version} and no rows. Run the restore again with --replace.",
            ) from exc


def _build_schema(conn: Connection, plan: _Plan, existing: list[str]) -> None:
    from sqlalchemy import inspect

    mgr, dialect = plan.mgr, plan.mgr.dialect
    for table in reversed(existing):
        plan.codec.drop_table(conn, table)
        plan.replaced.append(table)
    history.ensure_table(conn, dialect)
    for m in mgr.chain.between(0, plan.version):
        for stmt in m.up_statements(dialect, mgr.names):
            run_statement(conn, stmt)
        if m.up_python is not None:
            m.up_python(conn)
    live = set(inspect(conn).get_table_names())
    for entry in plan.manifest.tables:
        target = plan.targets[entry.name]
        if target not in live:
            create_from_manifest(conn, dialect, target, entry)
            plan.created.append(target)


def _load(conn: Connection, plan: _Plan, progress: ProgressCallback | None) -> None:
    plan.codec.prepare_load(conn)
    for entry in plan.manifest.tables:
        target = plan.targets[entry.name]
        live = set(live_columns(conn, target))
        missing = [c for c in entry.column_names if c not in live]
        if missing:
            raise BackupError(
                f"table {target} at schema v{plan.version} has no column(s) {', '.join(missing)} that the backup holds"
            )
        if target == VERSION_TABLE_NAME:
            conn.exec_driver_sql(f"DELETE FROM {VERSION_TABLE_NAME}")
        try:
            with open_table(plan.path, entry, progress, phase="restore") as reader:
                plan.codec.load(conn, target, entry.column_names, reader)
                reader.drain()
                summary = reader.summary()
        except BaselinrError:
            raise
        except Exception as exc:
            # Damage in the file shows up as whatever broke first (a bad row, a COPY
            # syntax error, a gzip error): check the file itself before blaming the database.
            check = check_table(plan.path, entry)
            if not check.ok:
                raise BackupError(f"{entry.file}: {check.problem}") from exc
            detail = redact(first_line(getattr(exc, "orig", None) or exc), plan.mgr.settings)
            raise RestoreFailed(f"loading {target}: {detail}") from exc
        problem = mismatch(entry, summary)
        if problem:
            raise BackupError(f"{entry.file}: {problem}")
        plan.loaded.append(TableSummary(target, summary.rows, summary.file_bytes))
        plan.notes += plan.codec.finish_load(conn, target, entry.column_names)


def _failed(plan: _Plan, exc: BaseException, state: str) -> BaselinrError:
    if isinstance(exc, BaselinrError):
        detail = exc.message
    else:
        detail = redact(first_line(getattr(exc, "orig", None) or exc), plan.mgr.settings)
    return RestoreFailed(f"Restore of {plan.manifest.name} failed: {detail}", hint=state)
