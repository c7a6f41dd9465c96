"""Click commands: ``baselinr backup create|list|verify|restore|prune``.

Registered on the ``cli`` group at the end of ``baselinr.cli.app``. Each
command calls one function of ``baselinr.backup.api`` (imported lazily, so
``baselinr migrate status`` never pays for it) and renders the result as
text or, with ``--output json``, as JSON. ``verify`` and ``restore`` take
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
from typing import Any

import click

from baselinr.cli.options import config_option, lock_option, migrations_option, output_option
from baselinr.errors import EXIT_INVALID, ConfigError, UsageError

dest_option = click.option(
    "--dest",
    "-d",
    envvar="BASELINR_BACKUP_DEST",
    metavar="DIR",
    help="Directory (local or a mounted volume) that holds the backups. Env: BASELINR_BACKUP_DEST.",
)


def _begin(output: str) -> None:
    """Tell the error reporter of ``baselinr.cli.app`` which format errors take."""
    from baselinr.cli.app import _OUTPUT

    _OUTPUT["format"] = output


def out(lines: list[str]) -> None:
    click.echo("\n".join(lines))


def _settings(config_path: str | None) -> Any:
    from baselinr.cli.app import _SECRETS

    if not config_path:
        raise ConfigError("No config file given.", hint="Pass --config config.yml or set BASELINR_CONFIG.")
    from baselinr.config import load_config

    settings = load_config(config_path)
    _SECRETS[:] = list(settings.storage.connection.secrets)
    return settings


def _need_dest(dest: str | None) -> str:
    if not dest:
        raise UsageError("No backup destination given.", hint="Pass --dest DIR or set BASELINR_BACKUP_DEST.")
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


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def _emit(data: dict[str, Any]) -> None:
    from baselinr.cli.render import emit_json

    emit_json(data)


def _marks() -> dict[str, str]:
    from baselinr.cli.render import markers

    return markers()


@click.group()
def backup() -> None:
    """Back up, verify and restore Baselinr's storage tables (every dialect, no pg_dump needed)."""


@backup.command()
@config_option
@dest_option
@click.option("--name", default=None, help="Backup name (default: baselinr-<db>-v<version>-<UTC time>).")
@click.option(
    "--keep", type=click.IntRange(min=1), default=None, metavar="N", help="Then keep only the newest N backups of this database."
)
@output_option
@migrations_option
def create(
    config_path: str | None, dest: str | None, name: str | None, keep: int | None, output: str, migrations_package: str | None
) -> None:
    """Write a new backup of every baselinr_* table to --dest."""
    _begin(output)
    from baselinr.backup.api import create_backup
    from baselinr.storage.migrations.chain import DEFAULT_PACKAGE

    settings = _settings(config_path)
    with _progress(output) as progress:
        result = create_backup(
            settings,
            _need_dest(dest),
            name=name,
            keep=keep,
            migrations_package=migrations_package or DEFAULT_PACKAGE,
            progress=progress,
        )
    if output == "json":
        _emit({**result.to_dict(), "ok": True})
        return
    m = _marks()
    lines = [
        f"{m['ok']} Backup {result.name} written: {len(result.tables)} tables, {result.rows:,} rows, "
        f"{_size(result.bytes)} in {result.seconds:.1f}s",
        f"   {result.path}",
    ]
    width = max((len(t.name) for t in result.tables), default=0)
    lines += [f"   {t.name.ljust(width)}  {t.rows:>12,} rows  {_size(t.bytes):>10}" for t in result.tables]
    lines += [f"{m['warn']} {w}" for w in result.warnings]
    if result.pruned:
        lines.append(f"   Removed {len(result.pruned)} older backup(s) (--keep {keep}): {', '.join(result.pruned)}")
    out(lines)


@backup.command("list")
@dest_option
@output_option
def list_(dest: str | None, output: str) -> None:
    """List the backups in --dest, newest last; partial and invalid ones are flagged."""
    _begin(output)
    from baselinr.backup.api import list_backups

    result = list_backups(_need_dest(dest))
    if output == "json":
        _emit({**result.to_dict(), "ok": True})
        return
    if not result.backups:
        out([f"No backups in {result.dest}"])
        return
    m = _marks()
    rows = [("NAME", "CREATED", "VERSION", "TABLES", "ROWS", "SIZE", "STATUS")]
    for b in result.backups:
        status = "complete" if b.status == "complete" else f"{b.status.upper()}: {b.problem}"
        rows.append(
            (
                b.name,
                (b.created_at or "-")[:19].replace("T", " "),
                f"v{b.schema_version}" if b.schema_version is not None else "-",
                str(b.tables) if b.tables is not None else "-",
                f"{b.rows:,}" if b.rows is not None else "-",
                _size(b.bytes) if b.bytes is not None else "-",
                status,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    lines = [f"Backups in {result.dest}:"]
    lines += ["  " + "  ".join(r[i].ljust(widths[i]) for i in range(6)) + "  " + r[6] for r in rows]
    bad = [b for b in result.backups if b.status != "complete"]
    if bad:
        lines.append(f"{m['warn']} {len(bad)} not usable (interrupted or damaged); they are never restored")
    out(lines)


@backup.command()
@click.argument("backup_ref", metavar="BACKUP")
@dest_option
@output_option
@migrations_option
def verify(backup_ref: str, dest: str | None, output: str, migrations_package: str | None) -> None:
    """Check BACKUP (a path, a name in --dest, or 'latest') against the schema model, then re-read it and check
    row counts and checksums."""
    _begin(output)
    from baselinr.backup.api import verify_backup
    from baselinr.storage.migrations.chain import DEFAULT_PACKAGE

    with _progress(output) as progress:
        result = verify_backup(backup_ref, dest=dest, migrations_package=migrations_package or DEFAULT_PACKAGE, progress=progress)
    if output == "json":
        _emit({**result.to_dict(), "ok": result.ok})
    else:
        m = _marks()
        lines = [f"   {m['error']} {p.message}" for p in result.manifest_problems]
        if not result.manifest_problems:
            lines.append(f"   {m['ok']} manifest: matches the schema model (integrity {result.manifest_integrity})")
        for t in result.tables:
            lines.append(f"   {m['ok'] if t.ok else m['error']} {t.name}: " + (f"{t.rows:,} rows" if t.ok else f"{t.problem}"))
        if result.ok:
            lines.append(f"{m['ok']} Backup {result.name} is intact: {len(result.tables)} tables, {result.rows:,} rows")
        else:
            lines.append(f"{m['error']} Backup {result.name} is damaged: {len(result.problems)} problem(s) found")
        out(lines)
    if not result.ok:
        sys.exit(EXIT_INVALID)


@backup.command()
@click.argument("backup_ref", metavar="BACKUP")
@config_option
@dest_option
@click.option("--replace", is_flag=True, help="Drop the target's Baselinr tables and replace them with the backup.")
@lock_option
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
) -> None:
    """Restore BACKUP (a path, a name in --dest, or 'latest') into the configured database."""
    _begin(output)
    from baselinr.backup.api import restore_backup
    from baselinr.storage.migrations.chain import DEFAULT_PACKAGE

    settings = _settings(config_path)
    with _progress(output) as progress:
        result = restore_backup(
            settings,
            backup_ref,
            dest=dest,
            replace=replace,
            migrations_package=migrations_package or DEFAULT_PACKAGE,
            lock_timeout=lock_timeout,
            progress=progress,
        )
    if output == "json":
        _emit({**result.to_dict(), "ok": True})
        return
    m = _marks()
    lines = [
        f"{m['ok']} Restored {result.name} into {result.database}: {len(result.tables)} tables, {result.rows:,} rows "
        f"at schema v{result.schema_version or 0} in {result.seconds:.1f}s"
    ]
    if result.replaced:
        lines.append(f"   Replaced {len(result.replaced)} existing table(s)")
    if result.created_from_backup:
        created = ", ".join(result.created_from_backup)
        lines.append(f"   Created from the schema model (tables the profiler makes outside the migrations): {created}")
    lines += [f"   {n}" for n in result.notes if not n.startswith("sequence ")]
    if (result.schema_version or 0) < result.code_version:
        lines.append(f"Next: baselinr migrate apply   (the code is at v{result.code_version})")
    out(lines)


@backup.command()
@dest_option
@click.option(
    "--keep", type=click.IntRange(min=1), required=True, metavar="N", help="How many of each database's newest backups to keep."
)
@output_option
def prune(dest: str | None, keep: int, output: str) -> None:
    """Remove the oldest complete backups in --dest beyond the newest N of each database."""
    _begin(output)
    from baselinr.backup.api import prune_backups

    result = prune_backups(_need_dest(dest), keep)
    if output == "json":
        _emit({**result.to_dict(), "ok": True})
        return
    m = _marks()
    if not result.removed:
        out([f"{m['ok']} Nothing to remove: {len(result.kept)} backup(s) kept"])
    else:
        out([f"Removed {n}" for n in result.removed] + [f"{m['ok']} Kept {len(result.kept)} backup(s)"])


from baselinr.cli.backup_clone import clone  # noqa: E402 - it builds on the helpers above

backup.add_command(clone)
