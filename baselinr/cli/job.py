"""``baselinr job migrate|validate|backup``: the commands the operator's Kubernetes Jobs run.

Registered on the ``cli`` group at the end of ``baselinr.cli.app``; the
operator (``baselinr_operator.jobs``) builds Jobs whose container runs them.
Each command does one step through the library (``MigrationManager``,
``baselinr.backup.api``), prints its result as JSON on stdout, and writes the
same JSON, shortened to fit Kubernetes' 4096-byte termination message, to
``--result-file`` (default ``/dev/termination-log``), where the operator
reads it back from the Pod status. Exit codes are the engine's (0 ok,
1 invalid, 2 usage or config, 3 unreachable or lock timeout, 4 migration
failed); the result file is written in every case, and never holds a
password.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

import click

from baselinr.cli.options import MAX_VERSION, Seconds
from baselinr.errors import EXIT_INVALID, BaselinrError, ConfigError

RESULT_LIMIT = 4000  # Kubernetes keeps at most 4096 bytes of a termination message
RESULT_VERSION = 1

config_option = click.option(
    "--config",
    "-c",
    "config_path",
    envvar="BASELINR_CONFIG",
    metavar="PATH",
    help="Baselinr config.yml, usually mounted from a Secret. Env: BASELINR_CONFIG.",
)
result_option = click.option(
    "--result-file",
    envvar="BASELINR_RESULT_FILE",
    default="/dev/termination-log",
    show_default=True,
    metavar="PATH",
    help="Where to write the JSON result (the container's terminationMessagePath). Env: BASELINR_RESULT_FILE.",
)
migrations_option = click.option(
    "--migrations",
    "migrations_package",
    envvar="BASELINR_MIGRATIONS_PACKAGE",
    default=None,
    metavar="PACKAGE",
    hidden=True,
    help="Import path of the versions package (default: Baselinr's own).",
)
lock_option = click.option(
    "--lock-timeout", type=Seconds(), default=300.0, show_default=True, metavar="SECONDS", help="How long to wait for the lock."
)


def fit(data: dict[str, Any], limit: int = RESULT_LIMIT) -> str:
    """``data`` as compact JSON of at most ``limit`` bytes: long messages are cut, long lists shortened."""
    text = json.dumps(data, default=str, separators=(",", ":"), ensure_ascii=False)
    if len(text.encode()) <= limit:
        return text
    short = dict(data)
    for width, items in ((400, 10), (200, 5), (100, 2), (60, 1)):
        for key in ("errors", "warnings"):
            values = [str(v) for v in short.get(key) or []]
            if values:
                kept = [_cut(v, width) for v in values[:items]]
                if len(values) > items:
                    kept.append(f"... and {len(values) - items} more")
                short[key] = kept
        if short.get("error"):
            short["error"] = _cut(str(data["error"]), width * 4)
        text = json.dumps(short, default=str, separators=(",", ":"), ensure_ascii=False)
        if len(text.encode()) <= limit:
            return text
    minimal = {k: short.get(k) for k in ("version", "command", "ok", "exit_code", "current_version", "code_version")}
    minimal["error"] = _cut(str(short.get("error") or "result too long"), 200)
    return json.dumps(minimal, default=str, separators=(",", ":"), ensure_ascii=False)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _settings(config_path: str | None, secrets: list[str]) -> Any:
    if not config_path:
        raise ConfigError("No config file given.", hint="Pass --config config.yml or set BASELINR_CONFIG.")
    from baselinr.config import load_config

    settings = load_config(config_path)
    secrets[:] = list(settings.storage.connection.secrets)
    return settings


def _manager(settings: Any, migrations_package: str | None, lock_timeout: float = 300.0) -> Any:
    from baselinr.storage.migrations.chain import DEFAULT_PACKAGE
    from baselinr.storage.migrations.manager import MigrationManager

    return MigrationManager.from_settings(
        settings, lock_timeout=lock_timeout, migrations_package=migrations_package or DEFAULT_PACKAGE
    )


def _finish(command: str, result_file: str, work: Callable[[dict[str, Any], list[str]], int]) -> None:
    """Run ``work`` (which fills ``data``), then write and print the result and exit with its code."""
    from baselinr.cli.app import _SECRETS, _redact

    started = time.monotonic()
    data: dict[str, Any] = {"version": RESULT_VERSION, "command": command}
    secrets: list[str] = []
    try:
        code = work(data, secrets)
    except BaselinrError as exc:
        code = exc.exit_code
        data.update(error=str(exc), error_type=type(exc).__name__)
    except Exception as exc:  # noqa: BLE001 - reported in the result like any failure
        code = EXIT_INVALID
        first = str(exc).splitlines()[0] if str(exc) else ""
        data.update(error=f"Unexpected error: {type(exc).__name__}: {first}", error_type=type(exc).__name__)
    data.update(ok=code == 0, exit_code=code, seconds=round(time.monotonic() - started, 3))
    _SECRETS[:] = secrets
    text = _redact(fit(data))
    try:
        with open(result_file, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        print(f"Cannot write the result to {result_file}: {exc.strerror}", file=sys.stderr)
    click.echo(text)
    if data.get("error"):
        print(_redact(str(data["error"])), file=sys.stderr)
    sys.exit(code)


@click.group()
def job() -> None:
    """Steps run by the Kubernetes operator's Jobs; each writes a JSON result to --result-file."""


@job.command()
@config_option
@click.option(
    "--target", "-t", type=click.IntRange(min=1, max=MAX_VERSION), required=True, help="Version to bring the database to."
)
@click.option("--allow-downgrade", is_flag=True, help="Roll back when the database is above --target.")
@lock_option
@result_option
@migrations_option
def migrate(
    config_path: str | None,
    target: int,
    allow_downgrade: bool,
    lock_timeout: float,
    result_file: str,
    migrations_package: str | None,
) -> None:
    """Apply (or, with --allow-downgrade, roll back) to --target, then validate."""

    def work(data: dict[str, Any], secrets: list[str]) -> int:
        from baselinr.storage.migrations.reconcile import decide, reconcile

        data["target_version"] = target
        mgr = _manager(_settings(config_path, secrets), migrations_package, lock_timeout)
        try:
            before = mgr.status()
            data.update(database=before.database, code_version=before.code_version, from_version=before.database_version)
            data["current_version"] = before.database_version
            decision = decide(before, target, allow_downgrade=allow_downgrade)
            result = reconcile(mgr, decision, on_retry=_log_retry)
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
@config_option
@result_option
@migrations_option
def validate(config_path: str | None, result_file: str, migrations_package: str | None) -> None:
    """Validate the schema (history, checksums, live tables) and change nothing."""

    def work(data: dict[str, Any], secrets: list[str]) -> int:
        mgr = _manager(_settings(config_path, secrets), migrations_package)
        try:
            data["database"] = mgr.settings.describe()
            _validated(mgr, data)
            return 0 if data["valid"] else EXIT_INVALID
        finally:
            mgr.close()

    _finish("validate", result_file, work)


@job.command()
@config_option
@click.option("--dest", "-d", envvar="BASELINR_BACKUP_DEST", required=True, metavar="DIR", help="Directory for backups.")
@click.option("--keep", type=click.IntRange(min=1), default=None, metavar="N", help="Then keep only the newest N backups.")
@result_option
@migrations_option
def backup(config_path: str | None, dest: str, keep: int | None, result_file: str, migrations_package: str | None) -> None:
    """Back up Baselinr's tables to --dest; a database without them yet is reported as skipped."""

    def work(data: dict[str, Any], secrets: list[str]) -> int:
        from baselinr.backup.api import create_backup

        settings = _settings(config_path, secrets)
        data["database"] = settings.storage.connection.describe()
        if not _has_tables(settings, migrations_package):
            data.update(skipped=True, reason="The database has no Baselinr tables yet: nothing to back up.")
            data["current_version"] = None
            return 0
        from baselinr.storage.migrations.chain import DEFAULT_PACKAGE

        result = create_backup(settings, dest, keep=keep, migrations_package=migrations_package or DEFAULT_PACKAGE)
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


def _has_tables(settings: Any, migrations_package: str | None) -> bool:
    from baselinr.backup.tables import baselinr_tables
    from baselinr.storage.connection import open_connection

    mgr = _manager(settings, migrations_package)
    try:
        with open_connection(mgr.engine, mgr.settings) as conn:
            return bool(baselinr_tables(conn, extra=(settings.storage.runs_table, settings.storage.results_table)))
    finally:
        mgr.close()


def _log_retry(retry: Any) -> None:
    """A lock timeout of a migration's DDL, in the Job's log as it happens (stdout holds the result)."""
    from baselinr.cli.app import _redact
    from baselinr.cli.render import retry_line

    print(_redact(retry_line(retry).strip()), file=sys.stderr, flush=True)


def _validated(mgr: Any, data: dict[str, Any]) -> None:
    v = mgr.validate()
    data.update(valid=v.valid, errors=list(v.errors), warnings=list(v.warnings), code_version=v.code_version)
    data["current_version"] = v.version


def _current_after_failure(mgr: Any, data: dict[str, Any]) -> None:
    """Best effort: where the database stands after a failed step (unknown if it cannot be reached)."""
    try:
        data["current_version"] = mgr.status().database_version
    except BaselinrError:
        pass
