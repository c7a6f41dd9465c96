"""Options shared by every ``baselinr`` command group (migrate, backup, job).

Each option is declared once here, so every group spells ``--config``,
``--output``, ``--lock-timeout``, ``--ddl-lock-timeout``, ``--migrations``,
``--dest``, ``--keep`` and ``--result-file`` the same way. Where the operator's Jobs
(``baselinr.cli.job``) need another default or help text, the same
declaration is made a second decorator with those values (``job_*``), never
spelled out again. A command module imports the decorators it needs:

    @migrate.command()
    @config_option
    @output_option
    def status(config_path: str | None, output: str) -> None: ...
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import click

# Versions are stored in an INTEGER column; a target beyond it is a typo.
MAX_VERSION = 2**31 - 1
MAX_LOCK_TIMEOUT = 86400.0

Decorator = Callable[[Any], Any]


class Seconds(click.ParamType[float]):
    """A finite number of seconds, 0..``MAX_LOCK_TIMEOUT``: ``nan`` or ``inf`` would wait forever."""

    name = "seconds"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        try:
            seconds = float(value)
        except (TypeError, ValueError, OverflowError):
            self.fail(f"{str(value)[:40]!r} is not a number of seconds", param, ctx)
        if not math.isfinite(seconds) or not 0 <= seconds <= MAX_LOCK_TIMEOUT:
            self.fail(f"{str(value)[:40]} is not between 0 and {MAX_LOCK_TIMEOUT:g} seconds", param, ctx)
        return seconds


VERSION = click.IntRange(min=0, max=MAX_VERSION)


def _config(help_text: str, envvar: str | None = "BASELINR_CONFIG") -> Decorator:
    return click.option("--config", "-c", "config_path", envvar=envvar, metavar="PATH", help=help_text)


config_option = _config("Baselinr config.yml (its storage.connection is used). Env: BASELINR_CONFIG.")
job_config_option = _config("Baselinr config.yml, usually mounted from a Secret. Env: BASELINR_CONFIG.")
# migrate test: BASELINR_CONFIG names the real database, so the scratch one is only ever named on the line.
scratch_config_option = _config(
    "A config.yml whose storage.connection is an empty scratch database (BASELINR_CONFIG is not read).", envvar=None
)


def _output(*formats: str, help_text: str = "Output format.") -> Decorator:
    return click.option("--output", "-o", type=click.Choice(list(formats)), default="text", show_default=True, help=help_text)


output_option = _output("text", "json")
# For the commands whose report a CI job can post as a pull-request comment.
markdown_output_option = _output(
    "text", "json", "markdown", help_text="Output format (markdown: a document for a pull-request comment)."
)


def _lock(default: float, help_text: str) -> Decorator:
    return click.option("--lock-timeout", type=Seconds(), default=default, show_default=True, metavar="SECONDS", help=help_text)


lock_option = _lock(60.0, "How long to wait for another runner's migration lock (0 to 86400).")
job_lock_option = _lock(300.0, "How long to wait for the lock.")

ddl_lock_options = (
    click.option(
        "--ddl-lock-timeout",
        type=Seconds(),
        default=2.0,
        show_default=True,
        metavar="SECONDS",
        help="How long each migration's DDL may wait for a table lock before it backs off and tries again "
        "(0 to 86400; 0: as long as the server would). A migration's own lock_timeout wins.",
    ),
    click.option(
        "--ddl-lock-tries",
        type=click.IntRange(1, 100),
        default=None,
        metavar="N",
        help="How many times a migration is tried when its DDL times out waiting for a lock (1 to 100). "
        "Default: again and again, with backoff, for up to 10 minutes.",
    ),
)


def ddl_lock_option(fn: Any) -> Any:
    """``--ddl-lock-timeout`` and ``--ddl-lock-tries``, for the commands that run migrations."""
    for option in reversed(ddl_lock_options):
        fn = option(fn)
    return fn


def _migrations(envvar: str | None) -> Decorator:
    return click.option(
        "--migrations",
        "migrations_package",
        envvar=envvar,
        default=None,
        metavar="PACKAGE",
        hidden=True,
        help="Import path of the versions package (default: Baselinr's own).",
    )


migrations_option = _migrations(None)
# A Job's container may name the package in its environment instead.
job_migrations_option = _migrations("BASELINR_MIGRATIONS_PACKAGE")


def _dest(required: bool, help_text: str) -> Decorator:
    return click.option("--dest", "-d", envvar="BASELINR_BACKUP_DEST", required=required, metavar="DIR", help=help_text)


dest_option = _dest(
    False,
    "Directory (local or a mounted volume), or s3://BUCKET/PREFIX, that holds the backups. Env: BASELINR_BACKUP_DEST.",
)
job_dest_option = _dest(True, "Directory or s3://BUCKET/PREFIX for backups.")


def object_store_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--endpoint-url``, ``--region``, ``--sse``, ``--sse-kms-key-id`` and ``--s3-part-size-mb``, handed to the
    command as one ``object_store`` argument (used only when the destination is ``s3://``). Credentials are
    never options: they come from the AWS chain (environment, profile, web identity, container role)."""
    import functools

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from baselinr.backup.s3 import MIB, ObjectStoreOptions

        kwargs["object_store"] = ObjectStoreOptions(
            endpoint_url=kwargs.pop("endpoint_url") or None,
            region=kwargs.pop("region") or None,
            sse=kwargs.pop("sse") or None,
            sse_kms_key_id=kwargs.pop("sse_kms_key_id") or None,
            part_size=kwargs.pop("part_size_mb") * MIB,
        )
        return command(*args, **kwargs)

    for decorator in reversed(
        [
            click.option(
                "--endpoint-url",
                metavar="URL",
                default=None,
                help="S3-compatible endpoint (path-style addressing). Env: AWS_ENDPOINT_URL. Default: AWS S3.",
            ),
            click.option("--region", metavar="REGION", default=None, help="S3 region. Env: AWS_REGION."),
            click.option(
                "--sse",
                type=click.Choice(["AES256", "aws:kms", "aws:kms:dsse"]),
                envvar="BASELINR_S3_SSE",
                default=None,
                help="Server-side encryption of every object written. Env: BASELINR_S3_SSE.",
            ),
            click.option(
                "--sse-kms-key-id",
                metavar="KEY",
                envvar="BASELINR_S3_SSE_KMS_KEY_ID",
                default=None,
                help="KMS key for --sse aws:kms. Env: BASELINR_S3_SSE_KMS_KEY_ID.",
            ),
            click.option(
                "--s3-part-size-mb",
                "part_size_mb",
                type=click.IntRange(min=5, max=5120),
                envvar="BASELINR_S3_PART_SIZE_MB",
                default=16,
                show_default=True,
                help="Multipart upload part size; one part per upload is held in memory. Env: BASELINR_S3_PART_SIZE_MB.",
            ),
        ]
    ):
        wrapper = decorator(wrapper)
    return wrapper


def _keep(required: bool, help_text: str) -> Decorator:
    return click.option("--keep", type=click.IntRange(min=1), required=required, default=None, metavar="N", help=help_text)


keep_option = _keep(False, "Then keep only the newest N backups of this database.")
job_keep_option = _keep(False, "Then keep only the newest N backups.")
prune_keep_option = _keep(True, "How many of each database's newest backups to keep.")

result_option = click.option(
    "--result-file",
    envvar="BASELINR_RESULT_FILE",
    default="/dev/termination-log",
    show_default=True,
    metavar="PATH",
    help="Where to write the JSON result (the container's terminationMessagePath). Env: BASELINR_RESULT_FILE.",
)
