"""Click commands: ``baselinr backup create|list|verify|restore|prune``.

Registered on the ``cli`` group by ``baselinr.cli.app``; registers
``backup clone`` (``baselinr.cli.backup_clone``). Each command calls one
function of ``baselinr.backup.api`` (imported lazily, so ``baselinr migrate
status`` never pays for it) and hands the result to
``baselinr.cli.render.backup`` (text) or prints it as JSON with ``--output
json``. ``verify`` and ``restore`` take
``--migrations``: the schema model a backup is checked against. ``--dest`` names where backups
live (``--output`` only ever names a format). Progress goes to stderr, and
only when stderr is a terminal and the output is text. Exit codes: 0 ok,
1 a backup failed verification (damaged, or its manifest differs from the
model), 2 usage or config (a refused restore, a destination ``create``
cannot write or that is full), 3 database unreachable or lock timeout,
4 restore failed.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from baselinr.cli.backup_clone import clone
from baselinr.cli.options import (
    config_option,
    dest_option,
    keep_option,
    lock_option,
    migrations_option,
    object_store_options,
    output_option,
    prune_keep_option,
)
from baselinr.cli.render import backup as render
from baselinr.cli.render import echo, emit_json
from baselinr.cli.session import current
from baselinr.errors import EXIT_INVALID, UsageError

if TYPE_CHECKING:
    from baselinr.backup.s3 import ObjectStoreOptions


def _need_dest(dest: str | None) -> str:
    if not dest:
        raise UsageError(
            "No backup destination given.", hint="Pass --dest DIR (or s3://BUCKET/PREFIX) or set BASELINR_BACKUP_DEST."
        )
    return dest


@contextmanager
def _progress(output: str) -> Iterator[Any]:
    if output != "text" or not sys.stderr.isatty():
        yield None
        return
    from baselinr.backup.progress import TerminalProgress

    bar = TerminalProgress(sys.stderr)
    try:
        yield bar
    finally:
        bar.close()


@click.group()
def backup() -> None:
    """Back up, verify and restore Baselinr's storage tables (every dialect, no pg_dump needed)."""


@backup.command()
@config_option
@dest_option
@click.option("--name", default=None, help="Backup name (default: baselinr-<db>-v<version>-<UTC time>).")
@keep_option
@click.option(
    "--exclude-table",
    "exclude_tables",
    multiple=True,
    metavar="TABLE",
    help="Leave out a baselinr_* table that no migration made (recorded in the manifest). Repeatable.",
)
@click.option(
    "--exclude-column",
    "exclude_columns",
    multiple=True,
    metavar="TABLE.COLUMN",
    help="Leave out a column that no migration made (recorded in the manifest). Repeatable.",
)
@object_store_options
@output_option
@migrations_option
def create(
    config_path: str | None,
    dest: str | None,
    name: str | None,
    keep: int | None,
    exclude_tables: tuple[str, ...],
    exclude_columns: tuple[str, ...],
    output: str,
    migrations_package: str | None,
    object_store: ObjectStoreOptions,
) -> None:
    """Write a new backup of every Baselinr table to --dest.

    A baselinr_* table or a column that no migration made fails the backup
    (exit 1) unless left out by name with --exclude-table / --exclude-column."""
    session = current(output)
    from baselinr.backup.api import create_backup
    from baselinr.storage.migrations.chain import DEFAULT_PACKAGE

    settings = session.settings(config_path)
    with _progress(output) as progress:
        result = create_backup(
            settings,
            _need_dest(dest),
            name=name,
            keep=keep,
            migrations_package=migrations_package or DEFAULT_PACKAGE,
            progress=progress,
            exclude_tables=exclude_tables,
            exclude_columns=exclude_columns,
            object_store=object_store,
        )
    if output == "json":
        emit_json({**result.to_dict(), "ok": True})
        return
    echo(render.created_text(result, keep))


@backup.command("list")
@dest_option
@object_store_options
@output_option
def list_(dest: str | None, output: str, object_store: ObjectStoreOptions) -> None:
    """List the backups in --dest, newest last; partial and invalid ones are flagged."""
    current(output)
    from baselinr.backup.api import list_backups

    result = list_backups(_need_dest(dest), object_store=object_store)
    if output == "json":
        emit_json({**result.to_dict(), "ok": True})
        return
    echo(render.list_text(result))


@backup.command()
@click.argument("backup_ref", metavar="BACKUP")
@dest_option
@object_store_options
@output_option
@migrations_option
def verify(
    backup_ref: str, dest: str | None, output: str, migrations_package: str | None, object_store: ObjectStoreOptions
) -> None:
    """Check BACKUP (a path, an s3:// URL, a name in --dest, or 'latest') against the schema model, then re-read it and check
    row counts and checksums."""
    current(output)
    from baselinr.backup.api import verify_backup
    from baselinr.storage.migrations.chain import DEFAULT_PACKAGE

    with _progress(output) as progress:
        result = verify_backup(
            backup_ref,
            dest=dest,
            migrations_package=migrations_package or DEFAULT_PACKAGE,
            progress=progress,
            object_store=object_store,
        )
    if output == "json":
        emit_json({**result.to_dict(), "ok": result.ok})
    else:
        echo(render.verify_text(result))
    if not result.ok:
        sys.exit(EXIT_INVALID)


@backup.command()
@click.argument("backup_ref", metavar="BACKUP")
@config_option
@dest_option
@click.option("--replace", is_flag=True, help="Drop the target's Baselinr tables and replace them with the backup.")
@lock_option
@object_store_options
@output_option
@migrations_option
def restore(
    backup_ref: str,
    config_path: str | None,
    dest: str | None,
    replace: bool,
    lock_timeout: float,
    output: str,
    migrations_package: str | None,
    object_store: ObjectStoreOptions,
) -> None:
    """Restore BACKUP (a path, an s3:// URL, a name in --dest, or 'latest') into the configured database."""
    session = current(output)
    from baselinr.backup.api import restore_backup
    from baselinr.storage.migrations.chain import DEFAULT_PACKAGE

    settings = session.settings(config_path)
    with _progress(output) as progress:
        result = restore_backup(
            settings,
            backup_ref,
            dest=dest,
            replace=replace,
            migrations_package=migrations_package or DEFAULT_PACKAGE,
            lock_timeout=lock_timeout,
            progress=progress,
            object_store=object_store,
        )
    if output == "json":
        emit_json({**result.to_dict(), "ok": True})
        return
    echo(render.restored_text(result))


@backup.command()
@dest_option
@prune_keep_option
@click.option(
    "--partial-older-than",
    type=click.FloatRange(min=0),
    default=None,
    metavar="MINUTES",
    help="Also remove partial backups (interrupted ones) nothing was written to for MINUTES, "
    "with their unfinished uploads. Default: leave them.",
)
@object_store_options
@output_option
def prune(dest: str | None, keep: int, partial_older_than: float | None, output: str, object_store: ObjectStoreOptions) -> None:
    """Remove the oldest complete backups in --dest beyond the newest N of each database."""
    current(output)
    from baselinr.backup.api import prune_backups

    result = prune_backups(
        _need_dest(dest),
        keep,
        partial_older_than=None if partial_older_than is None else partial_older_than * 60,
        object_store=object_store,
    )
    if output == "json":
        emit_json({**result.to_dict(), "ok": True})
        return
    echo(render.pruned_text(result))


backup.add_command(clone)
