"""PostgreSQL: transactional DDL, advisory locks, ``search_path`` for a schema.

Registered in the package's ``__init__``. Statements PostgreSQL refuses in a
transaction (``CREATE INDEX CONCURRENTLY`` and the like) make a migration run
tracked; the lock is a transaction-scoped advisory lock keyed by the schema, held
by a transaction kept open for the run (``pgpooler.py``), so that it holds through
PgBouncer in session or transaction pooling and ends with its runner.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar

from baselinr.storage.dialects.base import CONNECT_TIMEOUT, LOCK_NAME, Dialect, _squash, runner_id
from baselinr.storage.migrations.results import Blocker
from baselinr.storage.model import Column, Table
from baselinr.storage.splitter import SplitRules

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from baselinr.config import ConnectionSettings
    from baselinr.storage.dialects.base import Reconnect

_PG_NO_TRANSACTION = re.compile(
    r"^\s*((CREATE|DROP)\s+(UNIQUE\s+)?INDEX\s+CONCURRENTLY|REINDEX\b.*\bCONCURRENTLY|VACUUM\b|"
    r"CREATE\s+DATABASE|DROP\s+DATABASE|ALTER\s+SYSTEM)",
    re.IGNORECASE | re.DOTALL,
)


_CONCURRENT_INDEX = re.compile(r"^(\s*(?:CREATE|DROP)\s+(?:UNIQUE\s+)?INDEX)\s+CONCURRENTLY\b", re.IGNORECASE)


class PostgresDialect(Dialect):
    name = "postgres"
    aliases = ("postgresql",)
    default_port = 5432
    default_user = "postgres"
    driver = "postgresql+psycopg2"
    sqlglot_name = "postgres"
    transactional_ddl = True
    guards_tracked = False
    split_rules = SplitRules(escape_string_prefix=True, dollar_quotes=True, nested_comments=True)
    types: ClassVar[dict[str, str]] = {**Dialect.types, "float": "DOUBLE PRECISION", "decimal": "NUMERIC({precision}, {scale})"}
    table_names_sql = "SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = current_schema()"

    def __init__(self, schema: str | None = None) -> None:
        self.schema = schema

    @classmethod
    def for_schema(cls, schema: str | None) -> Dialect:
        return cls(schema)

    def autoincrement_column(self, c: Column) -> str:
        return ("BIGSERIAL" if c.type.family == "bigint" else "SERIAL") + " PRIMARY KEY"

    def engine_options(self, lock_timeout: float) -> dict[str, Any]:
        args: dict[str, Any] = {"application_name": f"baselinr-migrate {runner_id()}"[:63], "connect_timeout": CONNECT_TIMEOUT}
        if self.schema:
            args["options"] = search_path_option(self.schema)
        return {"connect_args": args}

    def dbapi_connect(
        self, settings: ConnectionSettings, *, create: bool = False, lock_timeout: float | None = None
    ) -> tuple[Any, type[Exception]] | None:
        import psycopg2

        args = {**self.engine_options(0)["connect_args"], **settings.extra_params.get("connect_args", {})}
        conn = psycopg2.connect(
            host=settings.host or "localhost",
            port=settings.port or self.default_port,
            user=settings.username or self.default_user,
            password=settings.password,
            dbname=settings.database,
            **args,
        )
        return conn, psycopg2.Error

    # The bare driver's connection sends BEGIN and COMMIT itself (psycopg2 in autocommit), so
    # that they share a round trip with the engine's own statements: BEGIN with a migration's
    # SET LOCAL, COMMIT with its version row. A migration's statements are still sent alone.
    batches_statements = True

    def begin_sql(self, write: bool) -> str | None:
        return "BEGIN" if self.batches_statements else None  # else psycopg2 opens it

    def needs_autocommit(self, statement: str) -> bool:
        return bool(_PG_NO_TRANSACTION.search(statement))

    def for_fresh_schema(self, statement: str) -> str | None:
        # On tables just created and still empty, CONCURRENTLY buys nothing and cannot run in the
        # restore's transaction: the plain index is the same index. VACUUM, REINDEX and the like
        # change no schema.
        if not self.needs_autocommit(statement):
            return statement
        plain, n = _CONCURRENT_INDEX.subn(r"\1", statement, count=1)
        return plain if n else None

    def dbapi_server_version(self, dbapi_conn: Any) -> tuple[int, ...] | None:
        # psycopg2: 150004 for 15.4, 90624 for 9.6.24.
        v = int(dbapi_conn.server_version)
        return (v // 10000, v % 10000) if v >= 100000 else (v // 10000, v // 100 % 100, v % 100)

    def set_dbapi_isolation(self, dbapi_conn: Any, level: str | None, *, readonly: bool) -> None:
        dbapi_conn.set_session(isolation_level=level, readonly=readonly)

    def refused_setting(self, exc: BaseException, settings: ConnectionSettings) -> str | None:
        # PgBouncer refuses libpq's ``options`` start-up parameter, which carries ``schema``.
        if settings.schema and "unsupported startup parameter: options" in str(exc):
            return (
                "A pooler in front of PostgreSQL (PgBouncer) refuses the search_path that storage.connection.schema "
                "sets: leave schema out and set it for the role instead (ALTER ROLE ... IN DATABASE ... "
                "SET search_path = ...), or connect to PostgreSQL directly."
            )
        return None

    def is_authentication_error(self, exc: BaseException) -> bool:
        # invalid_password / invalid_authorization_specification; libpq gives no
        # SQLSTATE for a refused connection, only the server's FATAL text.
        text = str(exc)
        return getattr(exc, "pgcode", None) in ("28P01", "28000") or "password authentication failed" in text or (
            "no pg_hba.conf entry" in text
        )

    schema_queries = (
        "SELECT table_name, column_name, data_type, is_nullable, column_default FROM information_schema.columns "
        "WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position",
        # Valid indexes only: a CREATE INDEX CONCURRENTLY killed midway leaves an
        # invalid one, which must not count as the statement having taken effect.
        "SELECT t.relname, i.relname, pg_get_indexdef(x.indexrelid) FROM pg_index x "
        "JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid "
        "JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = current_schema() AND x.indisvalid "
        "ORDER BY 1, 2",
    )

    @classmethod
    def is_missing_object(cls, exc: BaseException) -> bool:
        # undefined_table, undefined_column
        return getattr(getattr(exc, "orig", None) or exc, "pgcode", None) in ("42P01", "42703")

    @classmethod
    def is_missing_table(cls, exc: BaseException) -> bool:
        return getattr(getattr(exc, "orig", None) or exc, "pgcode", None) == "42P01"

    def after_rebuild(self, tmp: Table, new: Table) -> list[str]:
        # The keys and the serial sequence were named after the temporary table:
        # give them the names a CREATE TABLE of ``new`` would have, and move the
        # sequence past the ids that were copied in.
        statements = [
            "DO $$\nDECLARE r record;\nBEGIN\n"
            f"  FOR r IN SELECT conname FROM pg_constraint WHERE conrelid = '{new.name}'::regclass\n"
            f"      AND starts_with(conname, '{tmp.name}') LOOP\n"
            f"    EXECUTE format('ALTER TABLE {new.name} RENAME CONSTRAINT %I TO %I', r.conname,\n"
            f"      '{new.name}' || substr(r.conname, {len(tmp.name) + 1}));\n"
            "  END LOOP;\nEND $$"
        ]
        for c in new.columns:
            if c.autoincrement:
                statements += [
                    f"ALTER SEQUENCE {tmp.name}_{c.name}_seq RENAME TO {new.name}_{c.name}_seq",
                    f"SELECT setval(pg_get_serial_sequence('{new.name}', '{c.name}'), "
                    f"COALESCE((SELECT MAX({c.name}) FROM {new.name}), 0) + 1, false)",
                ]
        return statements

    def guard_statements(
        self, conn: Connection, lock_timeout: float, statement_timeout: float | None, *, in_transaction: bool
    ) -> tuple[list[str], list[str]]:
        if not in_transaction:
            return [], []
        # SET LOCAL: the bounds end with the migration's transaction, commit or rollback.
        sets = []
        if lock_timeout > 0:
            sets.append(f"SET LOCAL lock_timeout = '{max(1, round(lock_timeout * 1000))}ms'")
        if statement_timeout:
            sets.append(f"SET LOCAL statement_timeout = '{max(1, round(statement_timeout * 1000))}ms'")
        return sets, []

    session_moves = True  # PgBouncer in transaction pooling

    def session_id(self, conn: Connection) -> int | None:
        return int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())

    def is_lock_wait_timeout(self, exc: BaseException) -> bool:
        return getattr(getattr(exc, "orig", None) or exc, "pgcode", None) == "55P03"  # lock_not_available

    _ACTIVITY = (
        "SELECT a.pid, a.usename, a.application_name, a.query_start, a.xact_start, a.state, left(a.query, 200) "
        "FROM pg_stat_activity a "
    )

    def blockers(self, conn: Connection, session: int, min_age: float) -> list[Blocker]:
        # Numbers only, written in: the same text on SQLAlchemy's and the bare driver's connection.
        pid, age = int(session), float(min_age)
        rows = conn.exec_driver_sql(
            self._ACTIVITY + f"WHERE a.pid = ANY(pg_blocking_pids({pid})) ORDER BY a.xact_start"
        ).fetchall()
        if not rows:
            rows = conn.exec_driver_sql(
                self._ACTIVITY + f"WHERE a.datname = current_database() AND a.pid NOT IN (pg_backend_pid(), {pid}) "
                f"AND a.xact_start <= now() - make_interval(secs => {age!r}) "
                # Not the runner's own lock, held by a transaction open for the whole run.
                "AND a.pid NOT IN (SELECT l.pid FROM pg_locks l WHERE l.locktype = 'advisory' AND l.classid = 0 "
                f"AND l.objid = {self.lock_key}) ORDER BY a.xact_start LIMIT 5"
            ).fetchall()
        return [
            Blocker(int(r[0]), r[1], r[2] or None, _when(r[3]), _when(r[4]), r[5], _squash(r[6])) for r in rows
        ]

    @property
    def lock_key(self) -> int:
        return zlib.crc32(f"{LOCK_NAME}:{self.schema or 'public'}".encode())

    @contextmanager
    def lock(self, conn: Connection, timeout: float, reconnect: Reconnect | None = None) -> Iterator[None]:
        # A transaction-scoped advisory lock, held by a transaction left open on a dedicated
        # connection for the whole run (see pgpooler.py): a session-level one stays granted to
        # whichever server connection a transaction pooler gave that statement, after we end.
        from baselinr.storage.dialects.pgpooler import hold_lock

        with hold_lock(self, conn, timeout, reconnect):
            yield


def _when(value: Any) -> str | None:
    """A server timestamp as text, to the second."""
    if value is None:
        return None
    return value.isoformat(sep=" ", timespec="seconds") if hasattr(value, "isoformat") else str(value)


def search_path_option(schema: str) -> str:
    """libpq ``options`` setting ``search_path`` to exactly ``schema``.

    The value is one identifier, never more settings: a plain identifier is
    passed as before (PostgreSQL folds its case); any other name is double-quoted (so ``public -c x=1`` is a
    schema of that name), and libpq's option separators (space, backslash)
    are backslash-escaped."""
    ident = schema if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", schema) else '"' + schema.replace('"', '""') + '"'
    escaped = ident.replace("\\", "\\\\").replace(" ", "\\ ")
    return f"-c search_path={escaped}"
