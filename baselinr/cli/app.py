"""Click commands: ``baselinr migrate status|apply|validate|rollback|new|repair|baseline``.

Each command builds a ``MigrationManager`` from ``--config``, calls one
method and renders its result as the guide's text or, with ``--output
json``, as JSON. Exit codes: 0 ok, 1 invalid or behind, 2 usage or config,
3 database unreachable or lock timeout, 4 migration failed.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from baselinr.cli.options import VERSION, config_option, ddl_lock_option, lock_option, migrations_option, output_option
from baselinr.errors import EXIT_INVALID, EXIT_OK, BaselinrError, ConfigError

_SECRETS: list[str] = []
_OUTPUT = {"format": "text"}


def _redact(text: str) -> str:
    for s in _SECRETS:
        text = text.replace(s, "***")
    return text


def _one_line(text: str) -> str:
    """``text`` on one line: control characters (a value's ``\\r``, ``\\n``) are shown escaped."""
    return "".join(c if c.isprintable() or c == " " else c.encode("unicode_escape").decode("ascii") for c in text)


def reset(*, json_output: bool) -> None:
    """Forget the previous invocation's secrets and format (``main`` may run many times in one process)."""
    _SECRETS[:] = []
    _OUTPUT["format"] = "json" if json_output else "text"


def report_error(exc: BaselinrError) -> None:
    """Print an error as one line on stderr (and as JSON with --output json)."""
    from baselinr.cli.render import emit_json, markers

    message = _one_line(_redact(str(exc)))
    if _OUTPUT["format"] == "json":
        emit_json({"ok": False, "error": message, "exit_code": exc.exit_code, "error_type": type(exc).__name__})
    print(f"{markers(sys.stderr)['error']} {message}", file=sys.stderr)


def _shown(version: int | None) -> str:
    """A database version for a message: a fresh database is at 0, not "None"."""
    return "0 (no version recorded)" if version is None else str(version)


def out(lines: list[str]) -> None:
    click.echo("\n".join(lines))


def _manager(
    config_path: str | None,
    output: str,
    lock_timeout: float = 60.0,
    migrations_package: str | None = None,
    **guard: Any,
) -> Any:
    _OUTPUT["format"] = output
    if not config_path:
        raise ConfigError("No config file given.", hint="Pass --config config.yml or set BASELINR_CONFIG.")
    from baselinr.config import load_config
    from baselinr.storage.migrations.chain import DEFAULT_PACKAGE
    from baselinr.storage.migrations.manager import MigrationManager

    settings = load_config(config_path)
    _SECRETS[:] = list(settings.storage.connection.secrets)
    return MigrationManager.from_settings(
        settings, lock_timeout=lock_timeout, migrations_package=migrations_package or DEFAULT_PACKAGE, **guard
    )


def _retry_printer(output: str) -> Any:
    """Prints one line per lock timeout of a migration's DDL, as it happens (text output only)."""
    from baselinr.cli.render import retry_line

    def show(retry: Any) -> None:
        if output == "text":
            click.echo(retry_line(retry))

    return show


def _progress_printer(output: str) -> Any:
    """Prints one line per committed batch of a migration's backfill (text output only)."""
    from baselinr.cli.render import progress_line

    def show(progress: Any) -> None:
        if output == "text":
            click.echo(progress_line(progress))

    return show


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.version_option(package_name="baselinr", prog_name="baselinr", message="%(prog)s %(version)s")
def cli(debug: bool) -> None:
    """Baselinr's schema toolkit: migrations and backups of its storage tables."""


@cli.group()
def migrate() -> None:
    """Check, apply and validate Baselinr's storage schema migrations."""


@migrate.command()
@config_option
@output_option
@migrations_option
def status(config_path: str | None, output: str, migrations_package: str | None) -> None:
    """Show the database's schema version against the code's."""
    from baselinr.cli.render import emit_json, status_text, unadopted_text

    mgr = _manager(config_path, output, migrations_package=migrations_package)
    result = mgr.status()
    if output == "json":
        emit_json({**result.to_dict(), "ok": result.ok})
    else:
        lines = ["", *status_text(result)]
        if result.state == "unadopted":
            lines += unadopted_text(result)
        out(lines)
    sys.exit(EXIT_OK if result.ok else EXIT_INVALID)


@migrate.command()
@config_option
@click.option("--target", "-t", type=VERSION, default=None, help="Version to migrate to (default: the latest).")
@click.option("--dry-run", is_flag=True, help="Print what would run (versions and SQL) and change nothing.")
@click.option("--resume", is_flag=True, help="Continue a non-transactional migration that failed midway.")
@lock_option
@ddl_lock_option
@output_option
@migrations_option
def apply(
    config_path: str | None,
    target: int | None,
    dry_run: bool,
    resume: bool,
    lock_timeout: float,
    ddl_lock_timeout: float,
    ddl_lock_tries: int,
    output: str,
    migrations_package: str | None,
) -> None:
    """Apply migrations up to --target."""
    from baselinr.cli.render import apply_text, emit_json, markers

    mgr = _manager(
        config_path, output, lock_timeout, migrations_package, ddl_lock_timeout=ddl_lock_timeout, ddl_lock_tries=ddl_lock_tries
    )
    m = markers()

    def announce(step: Any) -> None:
        if output == "text":
            click.echo(f"Applying migration v{step.version}: {step.description}")

    result = mgr.apply(
        target,
        dry_run=dry_run,
        resume=resume,
        on_step=announce,
        on_retry=_retry_printer(output),
        on_progress=_progress_printer(output),
    )
    if output == "json":
        emit_json({**result.to_dict(), "ok": True})
        return
    if dry_run:
        out(apply_text(result))
        return
    skipped = [s for s in result.steps if s.skipped]
    for s in skipped:
        click.echo(f"   v{s.version} was applied meanwhile by another runner")
    if not result.steps:
        click.echo(f"{m['ok']} Already at version {_shown(result.to_version)}; nothing to apply")
    else:
        click.echo(f"{m['ok']} Successfully migrated to version {result.to_version}")


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
    ddl_lock_tries: int,
    output: str,
    migrations_package: str | None,
) -> None:
    """Run down migrations, newest first, down to --target."""
    from baselinr.cli.render import apply_text, emit_json, markers

    mgr = _manager(
        config_path, output, lock_timeout, migrations_package, ddl_lock_timeout=ddl_lock_timeout, ddl_lock_tries=ddl_lock_tries
    )

    def announce(step: Any) -> None:
        if output == "text":
            click.echo(f"Rolling back migration v{step.version}: {step.description}")

    result = mgr.rollback(
        target,
        dry_run=dry_run,
        resume=resume,
        on_step=announce,
        on_retry=_retry_printer(output),
        on_progress=_progress_printer(output),
    )
    if output == "json":
        emit_json({**result.to_dict(), "ok": True})
    elif dry_run:
        out(apply_text(result))
    elif not result.steps:
        click.echo(f"{markers()['ok']} Already at version {_shown(result.to_version)}; nothing to roll back")
    else:
        click.echo(f"{markers()['ok']} Successfully rolled back to version {result.to_version}")


@migrate.command()
@config_option
@output_option
@migrations_option
def validate(config_path: str | None, output: str, migrations_package: str | None) -> None:
    """Check the version history, checksums and live tables against the code."""
    from baselinr.cli.render import emit_json, validate_text

    mgr = _manager(config_path, output, migrations_package=migrations_package)
    result = mgr.validate()
    if output == "json":
        emit_json({**result.to_dict(), "ok": result.valid})
    else:
        out(validate_text(result))
    sys.exit(EXIT_OK if result.valid else EXIT_INVALID)


@migrate.command()
@config_option
@click.option("--dry-run", is_flag=True, help="Show what would be cleared.")
@lock_option
@output_option
@migrations_option
def repair(config_path: str | None, dry_run: bool, lock_timeout: float, output: str, migrations_package: str | None) -> None:
    """Clear failed or interrupted migration records after fixing the schema by hand, and adopt a
    database Baselinr's profiler stamped: create what its versions lack (never touching data) and record them."""
    from baselinr.cli.render import emit_json, markers

    mgr = _manager(config_path, output, lock_timeout, migrations_package)
    result = mgr.repair(dry_run=dry_run)
    if output == "json":
        emit_json({**result.to_dict(), "ok": True})
        return
    m = markers()
    if not result.removed and not result.adopted:
        click.echo(f"{m['ok']} Nothing to repair: no failed or interrupted migration is recorded")
        return
    verb = "Would clear" if dry_run else "Cleared"
    for row in result.removed:
        click.echo(f"{verb} the {row.status} record of v{row.version}: {row.description}")
    for step in result.adopted:
        what = ", ".join(step.created) if step.created else "nothing to create"
        if step.found:
            what += f" (kept as found: {', '.join(step.found)})"
        click.echo(f"{'Would adopt' if dry_run else 'Adopted'} v{step.version}: {what}")
        if dry_run:
            for stmt in step.statements:
                click.echo("    " + stmt.replace("\n", "\n    ") + ";")
    if dry_run:
        click.echo("[DRY RUN] Nothing was changed")
    elif result.adopted:
        top = result.adopted[-1].version
        click.echo(f"{m['ok']} Adopted: versions 1..{top} are recorded; run 'baselinr migrate apply' to continue")
    else:
        click.echo(f"{m['ok']} Repaired; run 'baselinr migrate apply' to apply them again")


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
    from baselinr.cli.render import emit_json, markers

    mgr = _manager(config_path, output, lock_timeout, migrations_package)
    result = mgr.baseline(version, force=force, dry_run=dry_run)
    if output == "json":
        emit_json({**result.to_dict(), "ok": True})
        return
    m = markers()
    for difference in result.differences:
        click.echo(f"{m['warn']} {difference}")
    if dry_run:
        click.echo(f"[DRY RUN] Would record versions 1..{version} as applied")
    else:
        click.echo(f"{m['ok']} Baselined at version {version}" + (" (forced)" if result.differences else ""))


@migrate.command("new")
@click.argument("description")
@output_option
@migrations_option
def new(description: str, output: str, migrations_package: str | None) -> None:
    """Write the next migration file, register it and bump the code version."""
    from baselinr.cli.render import emit_json, markers
    from baselinr.storage.migrations.chain import DEFAULT_PACKAGE
    from baselinr.storage.migrations.scaffold import new_migration

    _OUTPUT["format"] = output
    created = new_migration(description, migrations_package or DEFAULT_PACKAGE)
    if output == "json":
        emit_json({**created.to_dict(), "ok": True})
        return
    click.echo(f"{markers()['ok']} Created v{created.version}: {os.path.relpath(created.path)}")
    click.echo(f"   registered in {os.path.relpath(created.registered_in)}")
    if created.version_file:
        click.echo(f"   CURRENT_SCHEMA_VERSION = {created.version} in {os.path.relpath(created.version_file)}")
    click.echo("Next: write its up_sql, then: baselinr migrate apply --dry-run")


from baselinr.cli.backup import backup  # noqa: E402 - registered last; its imports stay lazy

cli.add_command(backup)

from baselinr.cli.job import job  # noqa: E402 - the operator's Job steps; their imports stay lazy

cli.add_command(job)

from baselinr.cli.lint import lint  # noqa: E402 - migrate lint lives in its own module

migrate.add_command(lint)
