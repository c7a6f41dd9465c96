"""Click commands: ``baselinr migrate status|apply|validate|rollback|new|repair|baseline``.

The root group ``cli`` and the ``migrate`` group live here, and so does the
registration of the commands kept in their own modules (``backup``,
``job``, ``migrate lint``, ``migrate move``, ``migrate test``): one ``name: "module:attribute"``
entry each in their group's ``lazy`` mapping (``baselinr.cli.lazy``), so a
command module is imported only when its command is run, completed or shown
in help, never for ``baselinr migrate status``.
Each command gets this invocation's ``Session`` (``baselinr.cli.session``)
from click's context, which builds the ``MigrationManager`` from
``--config``; the command calls one method and hands the result to
``baselinr.cli.render`` (the guide's text, Markdown for ``apply --dry-run``
and ``validate``), or prints it as JSON. Exit codes: 0 ok, 1 invalid or
behind, 2 usage or config, 3 database unreachable or lock timeout,
4 migration failed.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from baselinr.cli.lazy import LazyGroup
from baselinr.cli.options import (
    VERSION,
    config_option,
    ddl_lock_option,
    lock_option,
    markdown_output_option,
    migrations_option,
    output_option,
)
from baselinr.cli.render import echo, emit_json
from baselinr.cli.render import migrate as render
from baselinr.cli.session import current
from baselinr.errors import EXIT_INVALID, EXIT_OK, UsageError


def _retry_printer(output: str) -> Any:
    """Prints one line per lock timeout of a migration's DDL, as it happens (text output only)."""

    def show(retry: Any) -> None:
        if output == "text":
            click.echo(render.retry_line(retry))

    return show


def _progress_printer(output: str) -> Any:
    """Prints one line per committed batch of a migration's backfill (text output only)."""

    def show(progress: Any) -> None:
        if output == "text":
            click.echo(render.progress_line(progress))

    return show


def _reporters(output: str) -> dict[str, Any]:
    """What ``apply`` and ``rollback`` print while they run: each step, lock retry and backfill batch."""
    return {"on_step": _step_printer(output), "on_retry": _retry_printer(output), "on_progress": _progress_printer(output)}


def _step_printer(output: str) -> Any:
    """Prints one line as each migration starts (text output only)."""

    def announce(step: Any) -> None:
        if output == "text":
            click.echo(render.step_line(step))

    return announce


@click.group(
    cls=LazyGroup,
    lazy={"backup": "baselinr.cli.backup:backup", "job": "baselinr.cli.job:job"},
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    envvar="BASELINR_LOG_FORMAT",
    help="json: every line on stderr (errors, warnings, the engine's log) is one JSON object with level, message, "
    "resource, trace_id and span_id.",
)
@click.version_option(package_name="baselinr", prog_name="baselinr", message="%(prog)s %(version)s")
def cli(debug: bool, log_format: str) -> None:
    """Baselinr's schema toolkit: migrations and backups of its storage tables."""


@cli.group(
    cls=LazyGroup,
    lazy={"lint": "baselinr.cli.lint:lint", "move": "baselinr.cli.move:move", "test": "baselinr.cli.selftest:selftest"},
)
def migrate() -> None:
    """Check, apply and validate Baselinr's storage schema migrations."""


@migrate.command()
@config_option
@output_option
@migrations_option
def status(config_path: str | None, output: str, migrations_package: str | None) -> None:
    """Show the database's schema version against the code's."""
    session = current(output)
    settings = session.settings(config_path)
    mgr = session.manager(config_path, migrations_package=migrations_package, settings=settings)
    result = mgr.status()
    note = render.profiler_learning_note(settings.storage.connection.type, settings.storage.enable_expectation_learning)
    if output == "json":
        emit_json({**result.to_dict(), "ok": result.ok, **({"warnings": note} if note else {})})
    else:
        lines = ["", *render.status_text(result)]
        if result.state == "unadopted":
            lines += render.unadopted_text(result)
        echo(lines + (["", *note] if note else []))
    sys.exit(EXIT_OK if result.ok else EXIT_INVALID)


@migrate.command()
@config_option
@click.option("--target", "-t", type=VERSION, default=None, help="Version to migrate to (default: the latest).")
@click.option("--dry-run", is_flag=True, help="Print what would run (versions and SQL) and change nothing.")
@click.option("--resume", is_flag=True, help="Continue a non-transactional migration that failed midway.")
@lock_option
@ddl_lock_option
@markdown_output_option
@migrations_option
def apply(
    config_path: str | None,
    target: int | None,
    dry_run: bool,
    resume: bool,
    lock_timeout: float,
    ddl_lock_timeout: float,
    ddl_lock_tries: int | None,
    output: str,
    migrations_package: str | None,
) -> None:
    """Apply migrations up to --target (--dry-run: show the plan, its lint findings and its rollback)."""
    session = current(output)
    if output == "markdown" and not dry_run:
        raise UsageError("--output markdown shows a plan: use it with --dry-run.")
    mgr = session.manager(
        config_path,
        lock_timeout=lock_timeout,
        migrations_package=migrations_package,
        ddl_lock_timeout=ddl_lock_timeout,
        ddl_lock_tries=ddl_lock_tries,
    )
    result = mgr.apply(
        target,
        dry_run=dry_run,
        resume=resume,
        **_reporters(output),
    )
    if not dry_run:
        if output == "json":
            emit_json({**result.to_dict(), "ok": True})
        else:
            # The database last, so that the lines the guide shows stay together as it shows them.
            echo([*render.applied_text(result), render.database_line(mgr.settings.describe())])
        return
    from baselinr.lint.review import review

    reviewed = review(mgr, result.plan)
    if output == "json":
        emit_json({**result.to_dict(), **reviewed.to_dict(), "ok": True})
    elif output == "markdown":
        from baselinr.cli.render.markdown import plan_markdown

        echo(plan_markdown(result, reviewed))
    else:
        echo(render.apply_text(result, database=mgr.settings.describe()) + render.dry_run_lint_text(reviewed.lint))


@migrate.command()
@config_option
@click.option("--target", "-t", type=VERSION, required=True, help="Version to roll back to.")
@click.option("--dry-run", is_flag=True, help="Print what would run and change nothing.")
@click.option("--resume", is_flag=True, help="Continue a non-transactional rollback that was interrupted or failed.")
@lock_option
@ddl_lock_option
@output_option
@migrations_option
def rollback(
    config_path: str | None,
    target: int,
    dry_run: bool,
    resume: bool,
    lock_timeout: float,
    ddl_lock_timeout: float,
    ddl_lock_tries: int | None,
    output: str,
    migrations_package: str | None,
) -> None:
    """Run down migrations, newest first, down to --target."""
    mgr = current(output).manager(
        config_path,
        lock_timeout=lock_timeout,
        migrations_package=migrations_package,
        ddl_lock_timeout=ddl_lock_timeout,
        ddl_lock_tries=ddl_lock_tries,
    )
    result = mgr.rollback(
        target,
        dry_run=dry_run,
        resume=resume,
        **_reporters(output),
    )
    if output == "json":
        emit_json({**result.to_dict(), "ok": True})
    elif dry_run:
        echo(render.apply_text(result))
    else:
        echo(render.rolled_back_text(result))


@migrate.command()
@config_option
@markdown_output_option
@migrations_option
def validate(config_path: str | None, output: str, migrations_package: str | None) -> None:
    """Check the version history, checksums and live tables against the code."""
    mgr = current(output).manager(config_path, migrations_package=migrations_package)
    result = mgr.validate()
    if output == "json":
        emit_json({**result.to_dict(), "ok": result.valid})
    elif output == "markdown":
        from baselinr.cli.render.markdown import validate_markdown

        echo(validate_markdown(result))
    else:
        echo(render.validate_text(result))
    sys.exit(EXIT_OK if result.valid else EXIT_INVALID)


@migrate.command()
@config_option
@click.option("--dry-run", is_flag=True, help="Show what would be cleared.")
@lock_option
@output_option
@migrations_option
def repair(config_path: str | None, dry_run: bool, lock_timeout: float, output: str, migrations_package: str | None) -> None:
    """Clear failed or interrupted migration records after fixing the schema by hand; record each
    migration file's checksum where the recorded one differs (noting the old value); and adopt a
    database Baselinr's profiler stamped: create what its versions lack (never touching data) and record them."""
    session = current(output)
    settings = session.settings(config_path)
    mgr = session.manager(config_path, lock_timeout=lock_timeout, migrations_package=migrations_package, settings=settings)
    result = mgr.repair(dry_run=dry_run)
    note = render.profiler_learning_note(settings.storage.connection.type, settings.storage.enable_expectation_learning)
    if output == "json":
        emit_json({**result.to_dict(), "ok": True, **({"warnings": note} if note else {})})
    else:
        echo(render.repair_text(result) + note)


@migrate.command()
@config_option
@click.option("--version", "-v", "version", type=VERSION, required=True, help="The version the schema already matches.")
@click.option("--force", is_flag=True, help="Record it even if the live schema differs from that version's model.")
@click.option("--dry-run", is_flag=True, help="Check and show what would be recorded; change nothing.")
@lock_option
@output_option
@migrations_option
def baseline(
    config_path: str | None,
    version: int,
    force: bool,
    dry_run: bool,
    lock_timeout: float,
    output: str,
    migrations_package: str | None,
) -> None:
    """Record versions 1..--version as applied on a database whose schema already matches it."""
    mgr = current(output).manager(config_path, lock_timeout=lock_timeout, migrations_package=migrations_package)
    result = mgr.baseline(version, force=force, dry_run=dry_run)
    if output == "json":
        emit_json({**result.to_dict(), "ok": True})
    else:
        echo(render.baseline_text(result))


@migrate.command("new")
@click.argument("description")
@output_option
@migrations_option
def new(description: str, output: str, migrations_package: str | None) -> None:
    """Write the next migration file, register it and bump the code version."""
    from baselinr.storage.migrations.chain import DEFAULT_PACKAGE
    from baselinr.storage.migrations.scaffold import new_migration

    current(output)
    created = new_migration(description, migrations_package or DEFAULT_PACKAGE)
    if output == "json":
        emit_json({**created.to_dict(), "lint_command": render.lint_command(created.path), "ok": True})
    else:
        echo(render.new_text(created))
