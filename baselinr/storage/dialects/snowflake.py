"""Snowflake: DDL commits at once, no secondary indexes, a lease row as the lock.

Registered in the package's ``__init__``. Also what only Snowflake's config
needs (account, warehouse, key-pair authentication) and the types its
connector reflects that are none of SQLAlchemy's (``VARIANT``, ``TIMESTAMP_TZ``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from baselinr.errors import ConfigError
from baselinr.storage.dialects.base import LOCK_NAME, Dialect, runner_id
from baselinr.storage.model import Column
from baselinr.storage.splitter import SplitRules

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Connection

    from baselinr.config import ConnectionSettings
    from baselinr.storage.dialects.base import Reconnect


class SnowflakeDialect(Dialect):
    """Snowflake: VARIANT for JSON, TIMESTAMP_TZ, no secondary indexes, a lease-row lock.

    DDL commits implicitly, so every migration runs tracked (statement by
    statement, progress recorded). Identifiers are written unquoted, so
    Snowflake stores them upper-case and resolves them case-insensitively,
    the way Baselinr's own tables are created.
    """

    name = "snowflake"
    sqlglot_name = "snowflake"
    transactional_ddl = False
    exclusive_lock = True
    supports_indexes = False
    orders_columns = False  # no column reorder, and a rebuild would restart AUTOINCREMENT ids
    split_rules = SplitRules(dollar_quotes=True)
    types: ClassVar[dict[str, str]] = {
        **Dialect.types,
        "text": "VARCHAR",
        "decimal": "NUMBER({precision}, {scale})",
        "timestamp": "TIMESTAMP_TZ",
        "json": "VARIANT",
    }
    now = "CURRENT_TIMESTAMP()"

    def __init__(self, lease_seconds: int | None = None) -> None:
        from baselinr.storage.snowflake import DEFAULT_LEASE_SECONDS

        self.lease_seconds = lease_seconds or DEFAULT_LEASE_SECONDS

    @classmethod
    def check_config(cls, values: dict[str, Any], where: str) -> None:
        super().check_config(values, where)
        for key in ("account", "username"):
            if not values.get(key):
                raise ConfigError(f"{where}.{key} is required for snowflake")
        key_path = values.get("private_key_path")
        if key_path:
            path = Path(os.path.expanduser(key_path))
            if not path.is_file():
                raise ConfigError(f"{where}.private_key_path: no such file: {key_path}")
            if not os.access(path, os.R_OK):
                raise ConfigError(f"{where}.private_key_path: cannot read {key_path}")
        elif not values.get("password") and "authenticator" not in values.get("extra_params", {}).get("connect_args", {}):
            raise ConfigError(
                f"{where}: snowflake needs a password or a private_key_path",
                hint="Set storage.connection.password, or private_key_path for key-pair authentication.",
            )
        if not values.get("warehouse"):
            raise ConfigError(
                f"{where}.warehouse is required for snowflake",
                hint="Name the virtual warehouse that runs the migrations (storage.connection.warehouse).",
            )

    @classmethod
    def url(cls, settings: ConnectionSettings) -> URL:
        from sqlalchemy.engine import URL

        query = {k: v for k, v in (("warehouse", settings.warehouse), ("role", settings.role)) if v}
        if settings.private_key_path:
            # Key-pair authentication: the connector reads the PEM file itself.
            query.update(private_key_file=settings.private_key_path, authenticator="SNOWFLAKE_JWT")
        return URL.create(
            "snowflake",
            username=settings.username,
            password=settings.password,
            host=settings.account,
            database=f"{settings.database}/{settings.schema or 'PUBLIC'}",
            query=query,
        )

    @classmethod
    def describe(cls, settings: ConnectionSettings) -> str:
        return f"snowflake://{settings.username or ''}@{settings.account}/{settings.database}"

    @classmethod
    def secret_connect_args(cls, settings: ConnectionSettings) -> dict[str, Any]:
        if settings.private_key_passphrase:
            return {"private_key_file_pwd": settings.private_key_passphrase}
        return {}

    @staticmethod
    def is_variant(live_type: Any) -> bool:
        """True for a reflected ``VARIANT`` column type, which holds JSON."""
        return "VARIANT" in type(live_type).__name__.upper()

    @classmethod
    def family_of(cls, live_type: Any) -> tuple[str, int | None] | None:
        # The connector's own types (VARIANT, OBJECT, TIMESTAMP_TZ, ...) subclass none of SQLAlchemy's.
        if cls.is_variant(live_type) or "OBJECT" in type(live_type).__name__.upper():
            return "json", None
        if "TIMESTAMP" in type(live_type).__name__.upper():
            return "timestamp", None
        return None

    def autoincrement_column(self, c: Column) -> str:
        return "INTEGER AUTOINCREMENT PRIMARY KEY"

    def is_authentication_error(self, exc: BaseException) -> bool:
        return getattr(exc, "errno", None) == 390100 or "Incorrect username or password" in str(exc)

    # No secondary indexes; DML is not wrapped: a transaction left open by a
    # killed runner would hold its table.
    schema_queries = (
        "SELECT table_name, column_name, data_type, is_nullable, column_default FROM information_schema.columns "
        "WHERE table_schema = CURRENT_SCHEMA() ORDER BY table_name, ordinal_position",
    )

    @classmethod
    def is_missing_object(cls, exc: BaseException) -> bool:
        # "does not exist or not authorized", "invalid identifier": Snowflake
        # does not tell a missing table from one we may not see.
        return getattr(getattr(exc, "orig", None) or exc, "errno", None) in (2003, 904)

    def engine_options(self, lock_timeout: float) -> dict[str, Any]:
        # Without a bound the connector retries an unknown account for minutes.
        return {"connect_args": {"login_timeout": 30, "session_parameters": {"CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False}}}

    # The DDL lock guard: LOCK_TIMEOUT and STATEMENT_TIMEOUT_IN_SECONDS are session parameters in whole
    # seconds, set on the tracked run's own connection (a session of its own: the engine does not pool).
    # Where the server does not know them (an emulator), the run goes unguarded, as before.
    _guard_parameters: bool | None = None

    def guard_statements(
        self, conn: Connection, lock_timeout: float, statement_timeout: float | None, *, in_transaction: bool
    ) -> tuple[list[str], list[str]]:
        wanted = {}
        if lock_timeout > 0:
            wanted["LOCK_TIMEOUT"] = max(1, math.ceil(lock_timeout))
        if statement_timeout:
            wanted["STATEMENT_TIMEOUT_IN_SECONDS"] = max(1, math.ceil(statement_timeout))
        if not wanted or not self._knows_guard_parameters(conn):
            return [], []
        return (
            ["ALTER SESSION SET " + ", ".join(f"{k} = {v}" for k, v in wanted.items())],
            ["ALTER SESSION UNSET " + ", ".join(wanted)],
        )

    def _knows_guard_parameters(self, conn: Connection) -> bool:
        if self._guard_parameters is None:
            try:
                self._guard_parameters = bool(conn.exec_driver_sql("SHOW PARAMETERS LIKE 'LOCK_TIMEOUT' IN SESSION").fetchall())
            except Exception:  # noqa: BLE001 - a server without SHOW PARAMETERS has no such parameter either
                self._guard_parameters = False
            if not self._guard_parameters:
                import logging  # this warning is the module's only log line: not imported for every run

                logging.getLogger(__name__).warning(
                    "the server has no LOCK_TIMEOUT session parameter: DDL runs without the lock guard"
                )
        return self._guard_parameters

    def lock_wait_seconds(self, seconds: float) -> float:
        return float(max(1, math.ceil(seconds)))  # whole seconds only

    def is_lock_wait_timeout(self, exc: BaseException) -> bool:
        # 000625: "Statement ... has locked table ... and this lock has not yet been released. Your statement
        # ... was aborted ..." (after LOCK_TIMEOUT, or with too many waiters): another transaction holds it.
        return getattr(getattr(exc, "orig", None) or exc, "errno", None) == 625

    @contextmanager
    def lock(self, conn: Connection, timeout: float, reconnect: Reconnect | None = None) -> Iterator[None]:
        from baselinr.storage.snowflake import Lease, hold

        conn.execution_options(isolation_level="AUTOCOMMIT")
        lease = Lease(conn, LOCK_NAME, runner_id(), lease_seconds=self.lease_seconds)
        with hold(lease, lambda take, holder: self._poll(take, timeout, holder)):
            yield
