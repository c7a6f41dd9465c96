"""The backup API: create, list, verify, restore, prune and move; what ``baselinr backup …`` and
``baselinr migrate move`` call.

Every function takes settings or a destination first and returns a result
object from ``results`` (``to_dict()`` for JSON); errors are
``BaselinrError`` subclasses with the exit codes of DESIGN.md. The CLI only
renders. Database work goes through the storage layer's ``Database`` service
(engine, dialect, connections, the migration lock) and the migration chain,
so backups use the same connection rules, lock and migrations as
``baselinr migrate``.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING

from baselinr.backup.progress import ProgressCallback
from baselinr.backup.reader import verify
from baselinr.backup.results import (
    CreateResult,
    ListedBackup,
    ListResult,
    MoveResult,
    PruneResult,
    RestoreResult,
    VerifyResult,
)
from baselinr.backup.store import COMPLETE, PARTIAL, Entry, open_store, resolve_files
from baselinr.config import Settings
from baselinr.errors import UsageError
from baselinr.storage.migrations.chain import DEFAULT_PACKAGE

if TYPE_CHECKING:
    from baselinr.backup.s3 import ObjectStoreOptions
    from baselinr.storage.database import Database
    from baselinr.storage.migrations.chain import Chain


def _database(settings: Settings, migrations_package: str, lock_timeout: float = 60.0) -> tuple[Database, Chain]:
    from baselinr.storage.database import Database
    from baselinr.storage.migrations.chain import load_chain

    return Database.from_settings(settings, lock_timeout=lock_timeout), load_chain(migrations_package)


def create_backup(
    settings: Settings,
    dest: str,
    *,
    name: str | None = None,
    keep: int | None = None,
    migrations_package: str = DEFAULT_PACKAGE,
    progress: ProgressCallback | None = None,
    exclude_tables: Sequence[str] = (),
    exclude_columns: Sequence[str] = (),
    object_store: ObjectStoreOptions | None = None,
) -> CreateResult:
    """Back up every ``baselinr_*`` table into a new backup under ``dest``; then keep the newest ``keep``.

    ``exclude_tables`` / ``exclude_columns`` (``table.column``): tables and columns the schema
    model does not know, left out on purpose and recorded in the manifest; without them such
    a table or column makes the backup fail (``SchemaOutsideModel``), never silently left out.
    ``object_store``: how to reach an ``s3://`` destination (endpoint, region, encryption)."""
    from dataclasses import replace

    from baselinr.backup.writer import write_backup

    if keep is not None and keep < 1:
        raise UsageError(f"--keep must be 1 or more, got {keep}")
    store = open_store(dest, object_store)
    db, chain = _database(settings, migrations_package)
    try:
        result = write_backup(
            db,
            chain,
            store,
            runs_table=settings.storage.runs_table,
            results_table=settings.storage.results_table,
            name=name,
            progress=progress,
            exclude_tables=exclude_tables,
            exclude_columns=exclude_columns,
        )
    finally:
        db.close()
    if keep is not None:
        pruned = prune_backups(dest, keep, only_like=result.name, object_store=object_store)
        result = replace(result, pruned=pruned.removed)
    return result


def list_backups(dest: str, *, object_store: ObjectStoreOptions | None = None) -> ListResult:
    """Every backup in ``dest``, oldest first, with partial and invalid ones flagged."""
    store = open_store(dest, object_store)
    return ListResult(store.location, [_listed(e) for e in store.entries()])


def verify_backup(
    ref: str,
    *,
    dest: str | None = None,
    migrations_package: str = DEFAULT_PACKAGE,
    progress: ProgressCallback | None = None,
    object_store: ObjectStoreOptions | None = None,
) -> VerifyResult:
    """Check the manifest against the schema model of ``migrations_package``, then re-read every table file
    and check sizes, row counts and checksums."""
    from baselinr.storage.migrations.chain import load_chain

    files = resolve_files(ref, dest, object_store)
    return verify(files, load_chain(migrations_package), progress)


def restore_backup(
    settings: Settings,
    ref: str,
    *,
    dest: str | None = None,
    replace: bool = False,
    migrations_package: str = DEFAULT_PACKAGE,
    lock_timeout: float = 60.0,
    progress: ProgressCallback | None = None,
    object_store: ObjectStoreOptions | None = None,
) -> RestoreResult:
    """Restore a backup into an empty database (or over Baselinr's tables with ``replace``)."""
    from baselinr.backup.restore import restore

    files = resolve_files(ref, dest, object_store)
    db, chain = _database(settings, migrations_package, lock_timeout)
    try:
        return restore(
            db,
            chain,
            files,
            replace=replace,
            runs_table=settings.storage.runs_table,
            results_table=settings.storage.results_table,
            progress=progress,
        )
    finally:
        db.close()


def move_database(
    source: Settings,
    target: Settings,
    *,
    replace: bool = False,
    work_dir: str | None = None,
    migrations_package: str = DEFAULT_PACKAGE,
    lock_timeout: float = 60.0,
    progress: ProgressCallback | None = None,
    exclude_tables: Sequence[str] = (),
    exclude_columns: Sequence[str] = (),
) -> MoveResult:
    """Move every Baselinr table of ``source`` into ``target`` (any dialect): backup, restore, verify
    (see ``move``). ``work_dir``: where the temporary backup is written (default: the system's);
    ``exclude_tables`` / ``exclude_columns`` as for ``create_backup``: left out of the move on purpose."""
    from baselinr.backup.move import move
    from baselinr.storage.migrations.chain import load_chain

    return move(
        source,
        target,
        load_chain(migrations_package),
        replace=replace,
        work_dir=work_dir,
        lock_timeout=lock_timeout,
        migrations_package=migrations_package,
        progress=progress,
        exclude_tables=exclude_tables,
        exclude_columns=exclude_columns,
    )


def prune_backups(
    dest: str,
    keep: int,
    *,
    only_like: str | None = None,
    partial_older_than: float | None = None,
    object_store: ObjectStoreOptions | None = None,
) -> PruneResult:
    """Remove the oldest complete backups beyond ``keep``, per source database.

    Backups are grouped by (dialect, database) so one destination can hold
    several databases' backups. Partial backups are left alone (one may
    still be being written) unless ``partial_older_than`` (seconds) is given:
    then a partial backup nothing was written to for that long is removed,
    with its unfinished uploads. ``only_like`` limits pruning to the group
    of that backup (``create --keep``).
    """
    if keep < 1:
        raise UsageError(f"--keep must be 1 or more, got {keep}")
    if partial_older_than is not None and partial_older_than < 0:
        raise UsageError(f"--partial-older-than must be 0 or more, got {partial_older_than:g}")
    store = open_store(dest, object_store)
    groups: dict[tuple[str, str], list[Entry]] = defaultdict(list)
    entries = store.entries()
    removed: list[str] = []
    if partial_older_than is not None:
        now = time.time()
        for e in entries:
            idle = None if e.last_activity is None else now - e.last_activity
            if e.status == PARTIAL and (not partial_older_than or idle is None or idle >= partial_older_than):
                store.remove(e)
                removed.append(e.name)
    for e in entries:
        if e.status != COMPLETE:
            continue
        assert e.manifest is not None
        groups[(e.manifest.dialect, e.manifest.database)].append(e)
    kept: list[str] = []
    for members in groups.values():
        if only_like is not None and only_like not in {m.name for m in members}:
            continue
        doomed, stay = members[:-keep], members[-keep:]
        for e in doomed:
            store.remove(e)
            removed.append(e.name)
        kept += [e.name for e in stay]
    return PruneResult(store.location, keep, removed, kept)


def _listed(e: Entry) -> ListedBackup:
    m = e.manifest
    if e.status != COMPLETE or m is None:
        return ListedBackup(e.name, str(e.path), e.status, problem=e.problem)
    return ListedBackup(
        name=e.name,
        path=str(e.path),
        status=e.status,
        created_at=m.created_at,
        dialect=m.dialect,
        database=m.database,
        schema_version=m.schema_version,
        tables=len(m.tables),
        rows=m.rows,
        bytes=m.bytes,
    )
