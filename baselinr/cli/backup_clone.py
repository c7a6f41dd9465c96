"""Click commands: ``baselinr backup clone create|list|restore|drop`` (Snowflake zero-copy backups).

Registered on the ``backup`` group by ``baselinr.cli.backup``. Each command
calls one function of ``baselinr.backup.snowflake_clone`` and renders its
result as text or JSON. Exit codes as for every command: 0 ok, 2 usage or
config (e.g. not a Snowflake database, unknown backup), 3 unreachable or lock
timeout.
"""

from __future__ import annotations

import click

from baselinr.cli.backup import _begin, _emit, _marks, _settings, out
from baselinr.cli.options import config_option, lock_option, output_option

name_argument = click.argument("name")


@click.group()
def clone() -> None:
    """Zero-copy backups inside Snowflake (CREATE TABLE … CLONE), kept in schema BASELINR_BACKUPS."""


@clone.command()
@name_argument
@config_option
@lock_option
@output_option
def create(name: str, config_path: str | None, lock_timeout: float, output: str) -> None:
    """Clone every baselinr_* table under the backup NAME."""
    _begin(output)
    from baselinr.backup.snowflake_clone import create_clone

    result = create_clone(_settings(config_path), name, lock_timeout=lock_timeout)
    if output == "json":
        _emit({**result.to_dict(), "ok": True})
        return
    head = f"{_marks()['ok']} Clone backup {result.name} created: {len(result.tables)} tables"
    out([head, *(f"   {t}" for t in result.tables)])


@clone.command("list")
@config_option
@output_option
def list_(config_path: str | None, output: str) -> None:
    """List the clone backups of this database."""
    _begin(output)
    from baselinr.backup.snowflake_clone import list_clones

    found = list_clones(_settings(config_path))
    if output == "json":
        _emit({"backups": [b.to_dict() for b in found], "ok": True})
        return
    if not found:
        out(["No clone backups."])
        return
    out([f"{b.name}  ({len(b.tables)} tables: {', '.join(b.tables)})" for b in found])


@clone.command()
@name_argument
@config_option
@lock_option
@output_option
def restore(name: str, config_path: str | None, lock_timeout: float, output: str) -> None:
    """Replace Baselinr's tables with the clones of backup NAME."""
    _begin(output)
    from baselinr.backup.snowflake_clone import restore_clone

    result = restore_clone(_settings(config_path), name, lock_timeout=lock_timeout)
    if output == "json":
        _emit({**result.to_dict(), "ok": True})
        return
    out([f"{_marks()['ok']} Restored clone backup {result.name}: {len(result.tables)} tables replaced"])


@clone.command()
@name_argument
@config_option
@lock_option
@output_option
def drop(name: str, config_path: str | None, lock_timeout: float, output: str) -> None:
    """Drop the clones of backup NAME."""
    _begin(output)
    from baselinr.backup.snowflake_clone import drop_clone

    result = drop_clone(_settings(config_path), name, lock_timeout=lock_timeout)
    if output == "json":
        _emit({**result.to_dict(), "ok": True})
        return
    out([f"{_marks()['ok']} Dropped clone backup {result.name}"])
