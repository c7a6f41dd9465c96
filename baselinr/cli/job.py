"""``baselinr job migrate|validate|backup``: the commands the operator's Kubernetes Jobs run.

Registered on the ``cli`` group by ``baselinr.cli.app``; the operator
(``baselinr_operator.jobs``) builds Jobs whose container runs them. Each
command does one step through the library (``MigrationManager``, whether to
apply, roll back or refuse from ``baselinr.storage.migrations.reconcile``,
``baselinr.backup.api``), prints its result as JSON on stdout (shaped by
``baselinr.cli.render.job``), and writes the
same JSON, shortened to fit Kubernetes' 4096-byte termination message, to
``--result-file`` (default ``/dev/termination-log``), where the operator
reads it back from the Pod status. Exit codes are the engine's (0 ok,
1 invalid, 2 usage or config, 3 unreachable or lock timeout, 4 migration
failed); the result file is written in every case, and never holds a
password.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from baselinr.cli.options import (
    MAX_VERSION,
    job_config_option,
    job_dest_option,
    job_keep_option,
    job_lock_option,
    job_migrations_option,
    object_store_options,
    result_option,
)
from baselinr.cli.render.job import fit
from baselinr.cli.session import Session, current
from baselinr.errors import EXIT_INVALID, BaselinrError, ConfigError

if TYPE_CHECKING:
    from baselinr.backup.s3 import ObjectStoreOptions
    from baselinr.config import Settings
    from baselinr.storage.migrations.manager import MigrationManager
    from baselinr.storage.migrations.results import LockRetry

__all__ = ("fit", "job")

RESULT_VERSION = 1


def _manager(
    session: Session, settings: Settings, migrations_package: str | None, lock_timeout: float = 300.0
) -> MigrationManager:
    return session.manager(None, settings=settings, lock_timeout=lock_timeout, migrations_package=migrations_package)


Work = Callable[[Session, dict[str, Any]], int]

def _settings(session: Session, config_path: str | None) -> Settings:
    """The Job's config; a file missing from its mounted Secret names the Secret and key it should come from."""
    from baselinr.config import CONFIG_SOURCE_ENV

    source = os.environ.get(CONFIG_SOURCE_ENV)
    if source and config_path and not os.path.exists(config_path):
        raise ConfigError(
            f"Config file not found: {config_path} ({source}): the Secret or that key does not exist.",
            hint="Create it, or point spec.configSecretRef at the Secret and key that hold config.yml, "
            "then set the baselinr.io/retry annotation.",
        )
    return session.settings(config_path)


def _finish(command: str, result_file: str, work: Work) -> None:
    """Run ``work`` (which fills ``data``), then write and print the result and exit with its code."""
    session = current()
    started = time.monotonic()
    data: dict[str, Any] = {"version": RESULT_VERSION, "command": command}
    try:
        code = work(session, data)
    except BaselinrError as exc:
        code = exc.exit_code
        data.update(error=str(exc), error_type=type(exc).__name__)
    except Exception as exc:  # noqa: BLE001 - reported in the result like any failure
        code = EXIT_INVALID
        first = str(exc).splitlines()[0] if str(exc) else ""
        data.update(error=f"Unexpected error: {type(exc).__name__}: {first}", error_type=type(exc).__name__)
    data.update(ok=code == 0, exit_code=code, seconds=round(time.monotonic() - started, 3))
    text = session.redact(fit(data))
    try:
        with open(result_file, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        session.say("error", f"Cannot write the result to {result_file}: {exc.strerror}")
    click.echo(text)
    if data.get("error"):
        session.say("error", session.redact(str(data["error"])))
    sys.exit(code)


@click.group()
def job() -> None:
    """Steps run by the Kubernetes operator's Jobs; each writes a JSON result to --result-file."""


@job.command()
@job_config_option
@click.option(
    "--target", "-t", type=click.IntRange(min=1, max=MAX_VERSION), required=True, help="Version to bring the database to."
)
@click.option("--allow-downgrade", is_flag=True, help="Roll back when the database is above --target.")
@job_lock_option
@result_option
@job_migrations_option
def migrate(
    config_path: str | None,
    target: int,
    allow_downgrade: bool,
    lock_timeout: float,
    result_file: str,
    migrations_package: str | None,
) -> None:
    """Apply (or, with --allow-downgrade, roll back) to --target, then validate."""

    def work(session: Session, data: dict[str, Any]) -> int:
        from baselinr.storage.migrations.reconcile import decide, reconcile

        data["target_version"] = target
        mgr = _manager(session, _settings(session, config_path), migrations_package, lock_timeout)
        try:
            before = mgr.status()
            data.update(database=before.database, code_version=before.code_version, from_version=before.database_version)
            data["current_version"] = before.database_version
            decision = decide(before, target, allow_downgrade=allow_downgrade)
            result = reconcile(mgr, decision, on_retry=_retry_logger(session))
            data["applied"] = [s.version for s in result.steps if not s.skipped]
            data["lock_retries"] = sum(len(s.retries) for s in result.steps)
            data["direction"] = result.plan.direction
            data["current_version"] = result.to_version
            _validated(mgr, data)
            return 0 if data["valid"] else EXIT_INVALID
        except BaselinrError:
            _current_after_failure(mgr, data)
            raise
        finally:
            mgr.close()

    _finish("migrate", result_file, work)


@job.command()
@job_config_option
@result_option
@job_migrations_option
def validate(config_path: str | None, result_file: str, migrations_package: str | None) -> None:
    """Validate the schema (history, checksums, live tables) and change nothing."""

    def work(session: Session, data: dict[str, Any]) -> int:
        mgr = _manager(session, _settings(session, config_path), migrations_package)
        try:
            data["database"] = mgr.settings.describe()
            _validated(mgr, data)
            return 0 if data["valid"] else EXIT_INVALID
        finally:
            mgr.close()

    _finish("validate", result_file, work)


@job.command()
@job_config_option
@job_dest_option
@job_keep_option
@object_store_options
@result_option
@job_migrations_option
def backup(
    config_path: str | None,
    dest: str,
    keep: int | None,
    result_file: str,
    migrations_package: str | None,
    object_store: ObjectStoreOptions,
) -> None:
    """Back up Baselinr's tables to --dest; a database without them yet is reported as skipped."""

    def work(session: Session, data: dict[str, Any]) -> int:
        from baselinr.backup.api import create_backup

        settings = _settings(session, config_path)
        data["database"] = settings.storage.connection.describe()
        if not _has_tables(session, settings, migrations_package):
            data.update(skipped=True, reason="The database has no Baselinr tables yet: nothing to back up.")
            data["current_version"] = None
            return 0
        from baselinr.storage.migrations.chain import DEFAULT_PACKAGE

        result = create_backup(
            settings, dest, keep=keep, migrations_package=migrations_package or DEFAULT_PACKAGE, object_store=object_store
        )
        data.update(
            skipped=False,
            name=result.name,
            location=result.path,
            current_version=result.schema_version,
            rows=result.rows,
            bytes=result.bytes,
            warnings=list(result.warnings),
            pruned=list(result.pruned),
        )
        return 0

    _finish("backup", result_file, work)


def _has_tables(session: Session, settings: Settings, migrations_package: str | None) -> bool:
    from baselinr.backup.tables import baselinr_tables
    from baselinr.storage.connection import open_connection

    mgr = _manager(session, settings, migrations_package)
    try:
        with open_connection(mgr.engine, mgr.settings) as conn:
            return bool(baselinr_tables(conn, extra=(settings.storage.runs_table, settings.storage.results_table)))
    finally:
        mgr.close()


def _retry_logger(session: Session) -> Callable[[LockRetry], None]:
    """Each lock timeout of a migration's DDL, in the Job's log as it happens (stdout holds the result)."""
    from baselinr.cli.render.migrate import retry_line

    def log(retry: LockRetry) -> None:
        session.say("warning", session.redact(retry_line(retry).strip()))

    return log


def _validated(mgr: MigrationManager, data: dict[str, Any]) -> None:
    v = mgr.validate()
    data.update(valid=v.valid, errors=list(v.errors), warnings=list(v.warnings), code_version=v.code_version)
    data["current_version"] = v.version


def _current_after_failure(mgr: MigrationManager, data: dict[str, Any]) -> None:
    """Best effort: where the database stands after a failed step (unknown if it cannot be reached)."""
    try:
        data["current_version"] = mgr.status().database_version
    except BaselinrError:
        pass
