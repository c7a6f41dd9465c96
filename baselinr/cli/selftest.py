"""``baselinr migrate test``: every migration up, down and up again on a scratch database.

Thin: picks the database (``--database URL``, the connection of
``--config`` given on the command line, never ``BASELINR_CONFIG``'s, or a
temporary SQLite file), calls
``baselinr.storage.migrations.selftest.run_selftest`` and prints its result
as text (each version as it finishes), JSON or Markdown. Exit 0 when every
version matched, 1 on any mismatch, 2 for a usage error or a database that
is not empty, 3 when the database cannot be reached. Registered on the
``migrate`` group by ``baselinr.cli.app``.
"""

from __future__ import annotations

import sys
from contextlib import ExitStack

import click

from baselinr.cli.options import VERSION, markdown_output_option, migrations_option, scratch_config_option
from baselinr.errors import EXIT_INVALID, EXIT_OK, UsageError


@click.command("test")
@click.option(
    "--database",
    "database_url",
    default=None,
    metavar="URL",
    help="An empty scratch database (postgresql://, mysql://, sqlite:///, snowflake://); default: a temporary SQLite file.",
)
@scratch_config_option
@click.option("--target", "-t", type=VERSION, default=None, help="Test versions 1..N (default: all).")
@markdown_output_option
@migrations_option
def selftest(
    database_url: str | None, config_path: str | None, target: int | None, output: str, migrations_package: str | None
) -> None:
    """Run each migration up, down and up again on an empty scratch database, comparing the schema each time."""
    from baselinr.cli.render import emit_json
    from baselinr.cli.render.selftest import header, selftest_markdown, summary, version_lines
    from baselinr.cli.session import current
    from baselinr.storage.migrations import scratch
    from baselinr.storage.migrations.chain import DEFAULT_PACKAGE
    from baselinr.storage.migrations.selftest import VersionOutcome, run_selftest

    session = current(output)
    if database_url and config_path:
        raise UsageError("Give --database or --config (the scratch database to test on), not both.")
    if target == 0:
        raise UsageError("--target must be 1 or more.")
    names = None
    with ExitStack() as stack:
        if database_url:
            connection = scratch.settings_from_url(database_url)
            session.secrets = tuple(connection.secrets)
        elif config_path:
            settings = session.settings(config_path)
            connection = settings.storage.connection
            names = {"baselinr_runs": settings.storage.runs_table, "baselinr_results": settings.storage.results_table}
        else:
            connection = scratch.sqlite_scratch(stack.enter_context(scratch.temporary_directory()))
        live = output == "text"
        if live:
            click.echo(header(connection.describe()))

        def show(outcome: VersionOutcome) -> None:
            if live:
                click.echo("\n".join(version_lines(outcome)))

        result = run_selftest(
            connection,
            target=target,
            table_names=names,
            migrations_package=migrations_package or DEFAULT_PACKAGE,
            on_version=show,
        )
    if output == "json":
        emit_json(result.to_dict())
    elif output == "markdown":
        click.echo("\n".join(selftest_markdown(result)))
    else:
        click.echo("\n".join(["", *summary(result)]))
    sys.exit(EXIT_OK if result.ok else EXIT_INVALID)
