"""Open the storage database: a SQLAlchemy engine plus its dialect object.

Called by the database service (``database.py``). Connection failures become one
``DatabaseUnavailable`` line that names the database without its password.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from baselinr import tracing
from baselinr.config import ConnectionSettings
from baselinr.errors import AuthenticationFailed, BaselinrError, ConfigError, DatabaseUnavailable
from baselinr.errors import redact as redact_secrets
from baselinr.storage.dbapi import AS_WRITTEN
from baselinr.storage.dialects import Dialect, dialect_for

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine


def create_engine(
    settings: ConnectionSettings, *, lock_timeout: float = 60.0, dialect: Dialect | None = None
) -> tuple[Engine, Dialect]:
    """Build (but do not yet open) an engine for ``settings`` (configuring ``dialect``, if given)."""
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    dialect = dialect or dialect_for(settings.type, settings.schema)
    options = dialect.engine_options(lock_timeout)
    extra = dict(settings.extra_params)
    if "connect_args" in extra:
        options["connect_args"] = {**options.get("connect_args", {}), **extra.pop("connect_args")}
    options.update(extra)
    secret_args = settings.connect_args()
    if secret_args:
        options["connect_args"] = {**options.get("connect_args", {}), **secret_args}
    options["connect_args"] = dialect.final_connect_args(dict(options.get("connect_args", {})))
    options.setdefault("poolclass", NullPool)
    try:
        engine = sqlalchemy.create_engine(settings.url(), **options)
    except ModuleNotFoundError as exc:
        raise DatabaseUnavailable(
            f"The driver for {settings.type} is not installed ({exc.name}).",
            hint="Install baselinr with its database extras.",
        ) from None
    except (TypeError, ValueError, sqlalchemy.exc.ArgumentError) as exc:
        raise ConfigError(
            f"Invalid connection settings for {settings.describe()}: {redact(first_line(exc), settings)}",
            hint="Check storage.connection.extra_params.",
        ) from None
    dialect.configure_engine(engine)
    return engine, dialect


@contextmanager
def open_connection(engine: Engine, settings: ConnectionSettings) -> Iterator[Connection]:
    """``engine.connect()`` with connection failures turned into one clear line."""
    from sqlalchemy import exc

    try:
        conn = engine.connect()
    except (exc.DBAPIError, TypeError, ValueError) as err:
        raise connect_error(err, settings) from None
    with conn:
        yield conn


def connect_error(err: BaseException, settings: ConnectionSettings) -> BaselinrError:
    """What a failed connect means: a driver option the driver refuses (from
    ``extra_params``), or a setting the server (or a pooler in front of it) refuses, is a
    config error (exit 2); anything else is unreachable (3)."""
    orig = getattr(err, "orig", None) or err
    refused_option = isinstance(orig, (TypeError, ValueError)) or type(orig).__name__ == "ProgrammingError"
    if refused_option:
        return ConfigError(
            f"Invalid connection settings for {settings.describe()}: {redact(first_line(orig), settings)}",
            hint="Check storage.connection.extra_params.",
        )
    hint = dialect_for(settings.type).refused_setting(orig, settings)
    if hint is not None:
        return ConfigError(f"Cannot connect to {settings.describe()}: {redact(first_line(orig), settings)}", hint=hint)
    return unavailable(err, settings)


def unavailable(err: BaseException, settings: ConnectionSettings) -> DatabaseUnavailable:
    orig = getattr(err, "orig", None) or err
    detail = first_line(orig)
    if dialect_for(settings.type).is_authentication_error(orig):
        said = redact(detail, settings).rstrip(".")
        return AuthenticationFailed(
            f"Cannot connect to {settings.describe()}: the server refused the credentials: {said}.",
            hint="Check storage.connection's username and password (or key); retrying with the same ones will not help.",
        )
    problem = dialect_for(settings.type).storage_problem(settings, orig)
    if problem is not None:
        return DatabaseUnavailable(problem[0], hint=problem[1])
    return DatabaseUnavailable(
        f"Cannot connect to {settings.describe()}: {redact(detail, settings)}",
        hint="Check storage.connection in the config and that the server is running.",
    )


def first_line(err: object) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else err.__class__.__name__


def redact(text: str, settings: ConnectionSettings) -> str:
    """``text`` without ``settings``' secrets, where they stand as values (``errors.redact``)."""
    return redact_secrets(text, settings.secrets)


def run_statement(conn: Connection, statement: str) -> None:
    """Execute one statement of a migration exactly as written.

    Drivers with a ``format``/``pyformat`` paramstyle (psycopg2, PyMySQL, the
    Snowflake connector) treat ``%`` as a placeholder even with no
    parameters, so ``LIKE 'a%'`` or PL/pgSQL's ``format('%I', …)`` would
    fail; doubling it makes the driver send the text unchanged. Marked
    ``AS_WRITTEN``: the bare driver's connection sends it by itself, never
    batched with the engine's own statements (``dbapi.py``).
    """
    with tracing.statement(statement):
        if conn.dialect.paramstyle in ("format", "pyformat"):
            statement = statement.replace("%", "%%")
        conn.exec_driver_sql(statement, None, {AS_WRITTEN: True})
