"""``baselinr migrate lint``: report hazards in pending migrations (or files).

Thin: builds units with ``baselinr.lint.sources`` (FILES offline, or the
plan of the database in ``--config``), calls ``baselinr.lint.lint`` and
prints the report as text, JSON or Markdown. Exit 0 when no unacknowledged
error-level finding remains, 1 otherwise, 2 for a usage error. Registered
on the ``migrate`` group by ``baselinr.cli.app``.
"""

from __future__ import annotations

import sys

import click

from baselinr.cli.options import VERSION, config_option, migrations_option
from baselinr.errors import EXIT_INVALID, EXIT_OK, UsageError
from baselinr.storage.dialects import DIALECT_NAMES as DIALECTS


@click.command("lint")
@config_option
@click.option("--target", "-t", type=VERSION, default=None, help="Lint pending migrations up to this version (with --config).")
@click.option(
    "--output",
    "-o",
    type=click.Choice(["text", "json", "markdown"]),
    default="text",
    show_default=True,
    help="Output format (markdown: a table for a pull-request comment).",
)
@click.option("--dialect", type=click.Choice(DIALECTS), default=None, help="Dialect of FILES (default: postgres).")
@migrations_option
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False))
def lint(
    config_path: str | None,
    target: int | None,
    output: str,
    dialect: str | None,
    migrations_package: str | None,
    files: tuple[str, ...],
) -> None:
    """Find destructive and locking hazards in pending migrations, or in FILES (.sql or migration .py)."""
    from baselinr.cli.app import _OUTPUT, _manager
    from baselinr.cli.lint_render import lint_markdown, lint_text
    from baselinr.cli.render import emit_json
    from baselinr.lint import lint as run_lint
    from baselinr.lint.rules import BIG_TABLES
    from baselinr.lint.sources import units_from_files, units_from_manager

    _OUTPUT["format"] = "json" if output == "json" else "text"  # errors as JSON too with --output json
    source = click.get_current_context().get_parameter_source("config_path")
    if files and source == click.core.ParameterSource.ENVIRONMENT:
        config_path = None  # BASELINR_CONFIG set in the shell: FILES given on the line win
    if files and config_path:
        raise UsageError("Give --config (lint the database's pending migrations) or FILES, not both.")
    if files:
        if target is not None:
            raise UsageError("--target applies to --config; FILES are linted as given.")
        name = dialect or "postgres"
        report = run_lint(units_from_files(files, name), name)
    else:
        if dialect is not None:
            raise UsageError("--dialect applies to FILES; with --config the database's dialect is used.")
        mgr = _manager(config_path, "json" if output == "json" else "text", migrations_package=migrations_package)
        units, history = units_from_manager(mgr, target)
        report = run_lint(units, mgr.dialect.name, history, big_tables=[mgr.names(t) for t in BIG_TABLES])
    if output == "json":
        emit_json(report.to_dict())
    else:
        click.echo("\n".join(lint_markdown(report) if output == "markdown" else lint_text(report)))
    sys.exit(EXIT_OK if report.ok else EXIT_INVALID)
