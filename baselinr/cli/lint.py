"""``baselinr migrate lint``: report hazards in pending migrations (or files).

Thin: lints FILES offline (``baselinr.lint.sources``), or the pending
migrations of the database in ``--config`` (``baselinr.lint.review``), and
prints the report as text, JSON or Markdown (``baselinr.cli.render.lint``). Exit 0 when no unacknowledged
error-level finding remains, 1 otherwise, 2 for a usage error. Registered
on the ``migrate`` group by ``baselinr.cli.app``.
"""

from __future__ import annotations

import sys

import click

from baselinr.cli.options import VERSION, config_option, markdown_output_option, migrations_option
from baselinr.cli.session import current
from baselinr.errors import EXIT_INVALID, EXIT_OK, UsageError
from baselinr.storage.dialects import DIALECT_NAMES as DIALECTS


@click.command("lint")
@config_option
@click.option("--target", "-t", type=VERSION, default=None, help="Lint pending migrations up to this version (with --config).")
@markdown_output_option
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
    from baselinr.cli.render import echo, emit_json
    from baselinr.cli.render.lint import lint_markdown, lint_text
    from baselinr.lint import lint as run_lint
    from baselinr.lint.review import lint_pending
    from baselinr.lint.sources import model_before_files, units_from_files

    session = current(output)
    source = click.get_current_context().get_parameter_source("config_path")
    if files and source == click.core.ParameterSource.ENVIRONMENT:
        config_path = None  # BASELINR_CONFIG set in the shell: FILES given on the line win
    if files and config_path:
        raise UsageError("Give --config (lint the database's pending migrations) or FILES, not both.")
    if files:
        if target is not None:
            raise UsageError("--target applies to --config; FILES are linted as given.")
        name = dialect or "postgres"
        units = units_from_files(files, name)
        report = run_lint(units, name, model_before_files(units, name, migrations_package))
    else:
        if dialect is not None:
            raise UsageError("--dialect applies to FILES; with --config the database's dialect is used.")
        report = lint_pending(session.manager(config_path, migrations_package=migrations_package), target)
    if output == "json":
        emit_json(report.to_dict())
    else:
        echo(lint_markdown(report) if output == "markdown" else lint_text(report))
    sys.exit(EXIT_OK if report.ok else EXIT_INVALID)
