"""``baselinr migrate move``: move the storage database to another database, of any dialect.

Thin: reads both configs (``--config``, the source; ``--to``, the target;
the passwords of both are redacted from every line), calls
``baselinr.backup.api.move_database`` and prints its result as text
(``baselinr.cli.render.move``) or JSON. Progress goes to stderr, and only
when stderr is a terminal and the output is text. Registered on the
``migrate`` group by ``baselinr.cli.app``. Exit codes: 0 moved and
verified, 1 moved but the target differs from the source (or a damaged
temporary backup), 2 refused (a value the target cannot keep, a target that
holds Baselinr tables or an unfinished move, bad arguments or config),
3 a database unreachable or the lock timed out, 4 the restore failed.
"""

from __future__ import annotations

import click

from baselinr.cli.options import config_option, lock_option, migrations_option, output_option


@click.command("move")
@config_option
@click.option(
    "--to",
    "to_path",
    required=True,
    metavar="TARGET.yml",
    help="The config.yml of the target database (its storage.connection); it must hold no Baselinr tables.",
)
@click.option("--replace", is_flag=True, help="Drop the target's Baselinr tables (or what an unfinished move left) first.")
@click.option(
    "--work-dir",
    default=None,
    metavar="DIR",
    help="Where the temporary backup of the source is written (default: the system's temporary directory).",
)
@click.option(
    "--exclude-table",
    "exclude_tables",
    multiple=True,
    metavar="TABLE",
    help="Leave out a baselinr_* table that no migration made (as backup create does). Repeatable.",
)
@click.option(
    "--exclude-column",
    "exclude_columns",
    multiple=True,
    metavar="TABLE.COLUMN",
    help="Leave out a column that no migration made (as backup create does). Repeatable.",
)
@lock_option
@output_option
@migrations_option
def move(
    config_path: str | None,
    to_path: str,
    replace: bool,
    work_dir: str | None,
    exclude_tables: tuple[str, ...],
    exclude_columns: tuple[str, ...],
    lock_timeout: float,
    output: str,
    migrations_package: str | None,
) -> None:
    """Move every Baselinr table of --config's database into --to's (any dialect): back up, restore, verify."""
    from baselinr.backup.api import move_database
    from baselinr.cli.backup import _progress
    from baselinr.cli.render import echo, emit_json
    from baselinr.cli.render.move import moved_text
    from baselinr.cli.session import current
    from baselinr.storage.migrations.chain import DEFAULT_PACKAGE

    session = current(output)
    source = session.settings(config_path)
    secrets, warnings = session.secrets, session.warnings
    target = session.settings(to_path)
    session.secrets, session.warnings = secrets + session.secrets, warnings + session.warnings
    with _progress(output) as progress:
        result = move_database(
            source,
            target,
            replace=replace,
            work_dir=work_dir,
            migrations_package=migrations_package or DEFAULT_PACKAGE,
            lock_timeout=lock_timeout,
            progress=progress,
            exclude_tables=exclude_tables,
            exclude_columns=exclude_columns,
        )
    if output == "json":
        emit_json({**result.to_dict(), "ok": True})
        return
    echo(moved_text(result))
