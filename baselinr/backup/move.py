"""``baselinr migrate move``: one storage database into another, of any dialect, checked row by row.

Called by ``api.move_database``. Four steps, each with progress:

1. Refuse before reading the source: a target that holds Baselinr tables
   (unless ``replace``), a target that an interrupted move left (its marker
   table, below; unless ``replace``), source and target the same database.
2. Back the source up into a private temporary directory, in the portable
   encoding (typed JSON lines; PostgreSQL too, ``codecs.portable_codec_for``):
   one consistent snapshot of the source, with its row counts and checksums.
3. Restore that backup into the target (``restore`` with ``convert``): every
   value converted by the model's column type and checked before anything is
   written (``crossload``: a value the target cannot keep exactly is refused,
   named by table, column and row), the schema built by our migrations at
   the backup's version in the target's dialect, the rows loaded (one
   transaction with the schema on PostgreSQL and SQLite), sequences moved
   past the highest id.
4. Verify: each table's row count and content digest under the normal form
   (``normal``) read back from the target must equal the backup's, and
   ``migrate validate`` must be green on the target.

A marker table, ``_baselinr_move`` (not a ``baselinr_*`` name, so no
Baselinr tool takes it for one of its own), is written to the target just
before step 3 writes and dropped when step 4 passes: a move that was killed
or failed part way is found and named by the next run, which then wants
``--replace``. The temporary backup is always removed.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from baselinr.backup import crossload
from baselinr.backup.catalog import catalog
from baselinr.backup.codecs import Codec, codec_for, portable_codec_for
from baselinr.backup.errors import MoveUnverified, RestoreFailed, RestoreRefused
from baselinr.backup.normal import live_digest
from baselinr.backup.progress import ProgressCallback
from baselinr.backup.restore import restore
from baselinr.backup.results import MovedTable, MoveResult, RestoreResult
from baselinr.backup.store import LocalStore, read_manifest
from baselinr.backup.tables import select_baselinr
from baselinr.backup.trust import logical_of
from baselinr.backup.writer import write_backup
from baselinr.config import Settings
from baselinr.errors import UsageError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from baselinr.storage.database import Database
    from baselinr.storage.migrations.chain import Chain

MARKER = "_baselinr_move"


def move(
    source: Settings,
    target: Settings,
    chain: Chain,
    *,
    replace: bool = False,
    work_dir: str | None = None,
    lock_timeout: float = 60.0,
    migrations_package: str,
    progress: ProgressCallback | None = None,
    exclude_tables: Sequence[str] = (),
    exclude_columns: Sequence[str] = (),
) -> MoveResult:
    from baselinr.storage.database import Database

    src = Database.from_settings(source, lock_timeout=lock_timeout)
    dst = Database.from_settings(target, lock_timeout=lock_timeout)
    try:
        excluded = (tuple(exclude_tables), tuple(exclude_columns))
        return _move(src, dst, source, target, chain, replace, work_dir, migrations_package, progress, excluded)
    finally:
        src.close()
        dst.close()


def _move(
    src: Database,
    dst: Database,
    source: Settings,
    target: Settings,
    chain: Chain,
    replace: bool,
    work_dir: str | None,
    migrations_package: str,
    progress: ProgressCallback | None,
    excluded: tuple[tuple[str, ...], tuple[str, ...]],
) -> MoveResult:
    where = dst.settings.describe()
    if src.settings.describe() == where:
        raise UsageError(f"The source and the target are the same database ({where})", hint="Give --to another config.")
    codec = codec_for(dst.dialect.name)
    extra = (target.storage.runs_table, target.storage.results_table)
    with dst.connect() as conn:
        names = codec.table_names(conn)
        unfinished = _marker(conn, dst) if MARKER in {n.lower() for n in names} else None
    if unfinished is not None and not replace:
        raise RestoreRefused(
            f"A move into {where} ({unfinished}) did not finish: the target may hold part of it",
            hint="Run the same 'baselinr migrate move' again with --replace: it drops what that move left and moves again.",
        )
    existing = select_baselinr(names, extra=extra)
    if existing and not replace:
        shown = ", ".join(existing[:6]) + (", …" if len(existing) > 6 else "")
        raise RestoreRefused(
            f"{where} already has Baselinr tables ({shown})",
            hint="Move into an empty database, or pass --replace to drop and replace them.",
        )
    seconds: dict[str, float] = {}
    try:
        scratch = Path(tempfile.mkdtemp(prefix="baselinr-move-", dir=work_dir))
    except OSError as exc:
        shown = work_dir or tempfile.gettempdir()
        raise UsageError(
            f"Cannot write the temporary backup under {shown}: {exc.strerror or exc}",
            hint="Pass --work-dir with a directory this user can write, with room for a backup of the source.",
        ) from None
    try:
        started = time.monotonic()
        created = write_backup(
            src,
            chain,
            LocalStore(scratch),
            runs_table=source.storage.runs_table,
            results_table=source.storage.results_table,
            progress=progress,
            codec=portable_codec_for(src.dialect.name),
            exclude_tables=excluded[0],
            exclude_columns=excluded[1],
        )
        seconds["backup"] = round(time.monotonic() - started, 3)
        started = time.monotonic()
        path = Path(created.path)
        try:
            restored = restore(
                dst,
                chain,
                path,
                replace=replace,
                runs_table=target.storage.runs_table,
                results_table=target.storage.results_table,
                progress=progress,
                convert=True,
                before_write=lambda: _mark(dst, src.settings.describe()),
            )
        except RestoreFailed as exc:
            raise _failed(exc, dst, path, codec) from exc
        seconds["restore"] = round(time.monotonic() - started, 3)
        started = time.monotonic()
        tables = _compare(dst, chain, codec, path, restored, progress)
        errors = _validate(target, migrations_package)
        seconds["verify"] = round(time.monotonic() - started, 3)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    result = MoveResult(
        source=src.settings.describe(),
        target=where,
        source_dialect=src.dialect.name,
        target_dialect=dst.dialect.name,
        schema_version=restored.schema_version,
        tables=tables,
        rows=sum(t.rows for t in tables),
        seconds=seconds,
        verified=not errors and all(t.equal for t in tables),
        validation_errors=errors,
        replaced=restored.replaced,
        notes=[n for n in restored.notes if not n.startswith("sequence ")],
    )
    if not result.verified:
        differ = [t for t in tables if not t.equal]
        first = (
            f"{differ[0].name} has {differ[0].target_rows} rows on the target, {differ[0].rows} in the source"
            if differ and differ[0].rows != differ[0].target_rows
            else f"the content of {differ[0].name} differs" if differ else f"migrate validate: {errors[0]}"
        )
        raise MoveUnverified(
            f"The move into {where} loaded every row, but the target differs from the source: {first}",
            hint="The target keeps what was loaded, marked as unfinished; run 'baselinr migrate validate' on it, "
            "fix the cause, then move again with --replace.",
        )
    _unmark(dst)
    return result


def _failed(exc: RestoreFailed, dst: Database, path: Path, codec: Codec) -> RestoreFailed:
    """The restore's failure, with what the target holds now and the command that clears it."""
    where = dst.settings.describe()
    again = "Run the same 'baselinr migrate move' again with --replace: it drops them and moves again"
    detail = exc.message.split(" failed: ", 1)[-1]
    if codec.atomic_restore:
        state = f"It ran in one transaction, which was rolled back: {where} holds only the marker table {MARKER}. {again}."
    else:
        tables = [dst.names(logical_of(t)) for t in read_manifest(path).tables]
        state = (
            f"{dst.dialect.name} commits schema changes as they run: {where} may hold the tables {', '.join(tables)} "
            f"without rows, and the marker table {MARKER}. {again} (or drop those tables by hand)."
        )
    return RestoreFailed(f"The move into {where} failed: {detail}", hint=state)


def _marker(conn: Connection, db: Database) -> str:
    try:
        row = conn.exec_driver_sql(f"SELECT source, started_at FROM {db.dialect.quote(MARKER)}").first()
    except Exception:  # noqa: BLE001 - a marker we cannot read is still a marker
        return "an earlier move"
    return f"from {row[0]}, started {row[1]}" if row is not None else "an earlier move"


def _mark(db: Database, source: str) -> None:
    """Note on the target, committed at once, that a move is writing it."""
    q = db.dialect.quote(MARKER)
    at = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    with db.connect() as conn, conn.begin():
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {q}")
        conn.exec_driver_sql(f"CREATE TABLE {q} (source VARCHAR(500), started_at VARCHAR(40))")
        conn.exec_driver_sql(f"INSERT INTO {q} (source, started_at) VALUES ('{_literal(source)}', '{at}')")


def _unmark(db: Database) -> None:
    with db.connect() as conn, conn.begin():
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {db.dialect.quote(MARKER)}")


def _literal(text: str) -> str:
    """A described database as a plain SQL string's content: quotes doubled, cut to fit the column."""
    return text[:500].replace("\\", "/").replace("'", "''")


def _compare(
    dst: Database, chain: Chain, codec: Codec, path: Path, restored: RestoreResult, progress: ProgressCallback | None
) -> list[MovedTable]:
    """Each table's rows and normal-form digest read back from the target, beside the backup's."""
    manifest = read_manifest(path)
    cat = catalog(chain, manifest.schema_version or 0, dst.dialect.name)
    logical = {t.name: logical_of(t) for t in manifest.tables}
    targets = {t.name: dst.names(logical[t.name]) for t in manifest.tables}
    planned = crossload.plan(manifest, cat, targets, logical, codec.limits)
    out = []
    with dst.connect() as conn:
        for table in planned:
            entry = table.entry

            def report(n: int, name: str = entry.name, total: int = entry.rows) -> None:
                if progress is not None:
                    progress("verify", name, n, total)

            found = live_digest(conn, table.target, entry.column_names, table.types, report)
            out.append(MovedTable(table.target, entry.rows, found.rows, restored.normal_digests[entry.name], found.hexdigest))
    return out


def _validate(target: Settings, migrations_package: str) -> list[str]:
    from baselinr.storage.migrations.manager import MigrationManager

    manager = MigrationManager.from_settings(target, migrations_package=migrations_package)
    try:
        result = manager.validate()
    finally:
        manager.close()
    return [] if result.valid else list(result.errors) or ["the target is not valid"]

