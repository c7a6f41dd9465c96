"""Click commands: ``baselinr backup clone create|list|restore|drop`` (Snowflake zero-copy backups).

Registered on the ``backup`` group by ``baselinr.cli.backup``. Each command
calls one function of ``baselinr.backup.snowflake_clone`` and renders its
result with ``baselinr.cli.render.backup`` (text) or as JSON. Exit codes as for every command: 0 ok, 2 usage or
config (e.g. not a Snowflake database, unknown backup), 3 unreachable or lock
timeout.
"""

from __future__ import annotations

import click

from baselinr.cli.options import config_option, lock_option, output_option
from baselinr.cli.render import backup as render
from baselinr.cli.render import echo, emit_json
from baselinr.cli.session import current

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
    session = current(output)
    from baselinr.backup.snowflake_clone import create_clone

    result = create_clone(session.settings(config_path), name, lock_timeout=lock_timeout)
    if output == "json":
        emit_json({**result.to_dict(), "ok": True})
        return
    echo(render.clone_created_text(result))


@clone.command("list")
@config_option
@output_option
def list_(config_path: str | None, output: str) -> None:
    """List the clone backups of this database."""
    session = current(output)
    from baselinr.backup.snowflake_clone import list_clones

    found = list_clones(session.settings(config_path))
    if output == "json":
        emit_json({"backups": [b.to_dict() for b in found], "ok": True})
        return
    echo(render.clone_list_text(found))


@clone.command()
@name_argument
@config_option
@lock_option
@output_option
def restore(name: str, config_path: str | None, lock_timeout: float, output: str) -> None:
    """Replace Baselinr's tables with the clones of backup NAME."""
    session = current(output)
    from baselinr.backup.snowflake_clone import restore_clone

    result = restore_clone(session.settings(config_path), name, lock_timeout=lock_timeout)
    if output == "json":
        emit_json({**result.to_dict(), "ok": True})
        return
    echo(render.clone_restored_text(result))


@clone.command()
@name_argument
@config_option
@lock_option
@output_option
def drop(name: str, config_path: str | None, lock_timeout: float, output: str) -> None:
    """Drop the clones of backup NAME."""
    session = current(output)
    from baselinr.backup.snowflake_clone import drop_clone

    result = drop_clone(session.settings(config_path), name, lock_timeout=lock_timeout)
    if output == "json":
        emit_json({**result.to_dict(), "ok": True})
        return
    echo(render.clone_dropped_text(result))
