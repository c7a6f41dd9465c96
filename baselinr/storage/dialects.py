"""One class per storage dialect: DDL spelling, statement splitting, locking.

The migration manager asks ``dialect_for(name)`` and never branches on a
dialect's name itself. Each class knows whether its DDL is transactional,
how to split a script (``SplitRules``), how to spell the model's types and
DDL, how to take the single-runner lock, and how to tune a new SQLAlchemy
engine (e.g. SQLite's ``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import os
import random
import re
import socket
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar

from baselinr.errors import LockTimeout
from baselinr.storage.migrations.results import Blocker
from baselinr.storage.model import NOW, Column, Index, SqlType, Table
from baselinr.storage.splitter import GENERIC, SplitRules

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from baselinr.config import ConnectionSettings

LOCK_NAME = "baselinr_schema_migration"
CONNECT_TIMEOUT = 10  # seconds: TCP connect and, on MySQL, the server's greeting
# A table being rebuilt (RebuildTable) exists under its name plus this suffix until renamed.
REBUILD_SUFFIX = "__rebuild"
_PG_NO_TRANSACTION = re.compile(
    r"^\s*((CREATE|DROP)\s+(UNIQUE\s+)?INDEX\s+CONCURRENTLY|REINDEX\b.*\bCONCURRENTLY|VACUUM\b|"
    r"CREATE\s+DATABASE|DROP\s+DATABASE|ALTER\s+SYSTEM)",
    re.IGNORECASE | re.DOTALL,
)


@functools.lru_cache(maxsize=1)
def runner_id() -> str:
    """Who is running: shown as the lock holder and stored as ``applied_by``."""
    try:
        import getpass

        user = getpass.getuser()
    except (ImportError, KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}:{os.getpid()}"


class Dialect:
    """What every dialect provides; subclasses override the differences."""

    name: ClassVar[str] = "generic"
    transactional_ddl: ClassVar[bool] = False
    # True when lock() excludes every other runner for the whole run; SQLite
    # serialises per migration instead, so each one re-checks its version.
    exclusive_lock: ClassVar[bool] = True
    supports_indexes: ClassVar[bool] = True
    split_rules: ClassVar[SplitRules] = GENERIC
    types: ClassVar[dict[str, str]] = {
        "string": "VARCHAR({length})",
        "text": "TEXT",
        "integer": "INTEGER",
        "bigint": "BIGINT",
        "float": "FLOAT",
        "decimal": "DECIMAL({precision}, {scale})",
        "timestamp": "TIMESTAMP",
        "boolean": "BOOLEAN",
        "json": "TEXT",
    }
    now: ClassVar[str] = "CURRENT_TIMESTAMP"
    # Lists the tables of the current schema over a bare driver connection (see dbapi_connect).
    table_names_sql: ClassVar[str | None] = None
    # Whether a table's column order can be made what the model says (Table.positional).
    orders_columns: ClassVar[bool] = True

    # --- DDL rendering -----------------------------------------------------

    def quote(self, ident: str) -> str:
        # Baselinr's names are plain lower-case identifiers; quoting them
        # would make them case-sensitive on PostgreSQL and Snowflake.
        return ident

    def render_type(self, t: SqlType) -> str:
        return self.types[t.family].format(length=t.length, precision=t.precision, scale=t.scale)

    def render_column(self, c: Column, *, inline_pk: bool = False) -> str:
        if c.autoincrement:
            return f"{self.quote(c.name)} {self.autoincrement_column(c)}"
        parts = [self.quote(c.name), self.render_type(c.type)]
        if c.default is not None:
            parts.append("DEFAULT " + (self.now if c.default == NOW else c.default))
        if not c.nullable:
            parts.append("NOT NULL")
        return " ".join(parts)

    def autoincrement_column(self, c: Column) -> str:
        return "INTEGER PRIMARY KEY AUTO_INCREMENT"

    def render_create_table(self, t: Table) -> str:
        lines = [self.render_column(c) for c in t.columns]
        auto = any(c.autoincrement for c in t.columns)
        if t.primary_key and not auto:
            lines.append(f"PRIMARY KEY ({', '.join(self.quote(c) for c in t.primary_key)})")
        for cols in t.unique:
            lines.append(f"UNIQUE ({', '.join(self.quote(c) for c in cols)})")
        body = ",\n    ".join(lines)
        return f"CREATE TABLE {self.quote(t.name)} (\n    {body}\n)"

    def render_create_index(self, i: Index) -> str:
        unique = "UNIQUE " if i.unique else ""
        return f"CREATE {unique}INDEX {self.quote(i.name)} ON {self.quote(i.table)} ({', '.join(i.columns)})"

    def render_drop_index(self, i: Index) -> str:
        return f"DROP INDEX {self.quote(i.name)}"

    def render_index_on_live(self, i: Index, lengths: dict[str, int | None]) -> str:
        """``CREATE INDEX`` for a table another tool created, whose columns
        (``lengths``: lower-case name to character length) may be wider than the model's."""
        return self.render_create_index(i)

    def render_add_column(self, table: str, c: Column) -> str:
        return f"ALTER TABLE {self.quote(table)} ADD COLUMN {self.render_column(c)}"

    def render_rebuild(self, old: Table, new: Table) -> list[str]:
        """Statements that recreate ``old`` as ``new`` under the same name, keeping every row:
        a new table under a temporary name, the rows copied by column name, the old table
        dropped, the new one renamed, then its indexes."""
        tmp = replace(new, name=f"{new.name}{REBUILD_SUFFIX}", indexes=())
        q = self.quote
        shared = [c for c in new.columns if old.column(c.name) is not None]
        values = []
        for c in shared:
            was = old.column(c.name)
            if was is not None and was.nullable and not c.nullable and c.default is not None and c.default != NOW:
                values.append(f"COALESCE({q(c.name)}, {c.default})")  # NULLs take the default of a column now NOT NULL
            else:
                values.append(q(c.name))
        return [
            self.render_create_table(tmp),
            f"INSERT INTO {q(tmp.name)} ({', '.join(q(c.name) for c in shared)}) SELECT {', '.join(values)} FROM {q(old.name)}",
            f"DROP TABLE {q(old.name)}",
            self.render_rename_table(tmp.name, new.name),
            *self.after_rebuild(tmp, new),
            *(self.render_create_index(i) for i in new.indexes if self.supports_indexes),
        ]

    def render_rename_table(self, old: str, new: str) -> str:
        return f"ALTER TABLE {self.quote(old)} RENAME TO {self.quote(new)}"

    def after_rebuild(self, tmp: Table, new: Table) -> list[str]:
        """What a rebuilt table needs once renamed (PostgreSQL: its sequence and key names)."""
        return []

    # --- reflection ----------------------------------------------------------

    def unique_keys(self, insp: Any, table: str) -> set[tuple[str, ...]]:
        """The column lists (lower-case) of every UNIQUE constraint or unique index on ``table``."""
        keys = {_lower(u.get("column_names")) for u in insp.get_unique_constraints(table)}
        return keys | {_lower(i.get("column_names")) for i in insp.get_indexes(table) if i.get("unique")}

    def declared_families(self, conn: Connection, table: str) -> dict[str, str]:
        """Model families of columns whose declared type the inspector misreads (lower-case names)."""
        return {}

    # --- engine and transactions ------------------------------------------

    def dbapi_connect(
        self, settings: ConnectionSettings, *, create: bool = False, lock_timeout: float | None = None
    ) -> tuple[Any, type[Exception]] | None:
        """A bare driver connection and the driver's error class, for work that need not
        import SQLAlchemy (``status``, a SQL-only ``apply``); ``None`` where the dialect
        has no such path (or, unless ``create``, where the database does not exist yet).
        ``lock_timeout``: the run's, where the driver's connection carries it (SQLite)."""
        return None

    def prepare_dbapi(self, dbapi_conn: Any) -> None:
        """Set up a bare driver connection the way the engine's connect hook sets up its own."""

    def begin_sql(self, write: bool) -> str | None:
        """The statement that opens a transaction (a writer's or a reader's) where the
        driver does not open one itself; ``None``: the driver does."""
        return None

    def engine_options(self, lock_timeout: float) -> dict[str, Any]:
        return {}

    def final_connect_args(self, connect_args: dict[str, Any]) -> dict[str, Any]:
        """The driver's connect arguments once the user's ``extra_params`` are merged in."""
        return connect_args

    def configure_engine(self, engine: Engine) -> None:
        """Hook for per-dialect event listeners."""

    # --- the single-runner lock -------------------------------------------

    def is_lock_error(self, exc: BaseException) -> bool:
        """True if ``exc`` means another runner holds the lock."""
        return False

    def is_authentication_error(self, exc: BaseException) -> bool:
        """True if the driver's connect error ``exc`` means the credentials were refused."""
        return False

    def needs_autocommit(self, statement: str) -> bool:
        """True for a statement the database refuses inside a transaction."""
        return False

    @classmethod
    def is_missing_object(cls, exc: BaseException) -> bool:
        """True if ``exc`` (a driver error) says a table or column does not exist,
        as opposed to a permission problem or a file that is not a database."""
        return False

    @contextmanager
    def lock(self, conn: Connection, timeout: float) -> Iterator[None]:
        """Hold the migration lock on ``conn`` (a dedicated connection) for the block."""
        yield

    # --- tracked (non-transactional) migrations ---------------------------

    # Queries whose rows describe the live schema (tables, columns, indexes);
    # empty where a dialect has no tracked migrations to resume.
    schema_queries: ClassVar[tuple[str, ...]] = ()
    # Opens a transaction on an autocommit connection, so a DML statement and
    # its progress row commit together (DDL still commits on its own).
    begin_tracked: ClassVar[str | None] = None

    def schema_checksum(self, conn: Connection) -> str | None:
        """SHA-256 of the live schema, or ``None`` if the dialect cannot tell."""
        if not self.schema_queries:
            return None
        digest = hashlib.sha256()
        for sql in self.schema_queries:
            for row in conn.exec_driver_sql(sql).fetchall():
                digest.update(repr(tuple(str(v).lower() if v is not None else None for v in row)).encode())
            digest.update(b"\0")
        return digest.hexdigest()

    @contextmanager
    def tracked_transaction(self, conn: Connection) -> Iterator[None]:
        """One statement of a tracked migration and its progress row."""
        if self.begin_tracked is None:
            yield
            return
        conn.exec_driver_sql(self.begin_tracked)
        try:
            yield
        except BaseException:
            with contextlib.suppress(Exception):
                conn.exec_driver_sql("ROLLBACK")
            raise
        conn.exec_driver_sql("COMMIT")

    # --- the DDL lock guard (see migrations/guard.py) ----------------------

    # False where a tracked migration's statements must run unguarded (PostgreSQL:
    # only CONCURRENTLY and the like run there; a lock timeout would leave an invalid index).
    guards_tracked: ClassVar[bool] = True

    def guard_statements(
        self, conn: Connection, lock_timeout: float, statement_timeout: float | None, *, in_transaction: bool
    ) -> tuple[list[str], list[str]]:
        """The statements that bound a migration's lock waits (``lock_timeout`` seconds, 0: no
        bound) and each statement's run time, and those that lift the bounds again afterwards;
        ``([], [])`` where the dialect has no such guard."""
        return [], []

    def lock_wait_seconds(self, seconds: float) -> float:
        """The lock wait the server can be told, for a wish of ``seconds`` (> 0)."""
        return seconds

    def session_id(self, conn: Connection) -> int | None:
        """The server's id of ``conn``'s session, which a second connection can look up."""
        return None

    def is_lock_wait_timeout(self, exc: BaseException) -> bool:
        """True if ``exc`` (a driver error) says a statement gave up waiting for a lock."""
        return False

    def blockers(self, conn: Connection, session: int, min_age: float) -> list[Blocker]:
        """The sessions that block ``session``'s lock request; when it waits no longer, those
        whose transaction has been open for ``min_age`` seconds or more (likely holders)."""
        return []

    def _poll(self, try_once: Any, timeout: float, holder: Any) -> None:
        """Poll ``try_once()`` with backoff and jitter until ``timeout``."""
        deadline = time.monotonic() + max(timeout, 0.0)
        delay = 0.05
        while True:
            if try_once():
                return
            if time.monotonic() >= deadline:
                who = holder() or "another runner"
                raise LockTimeout(
                    f"Timed out after {timeout:g}s waiting for the migration lock held by {who}.",
                    hint="Wait for it to finish, or raise --lock-timeout.",
                )
            time.sleep(min(delay * (0.5 + random.random()), max(deadline - time.monotonic(), 0.01)))
            delay = min(delay * 2, 2.0)


class SQLiteDialect(Dialect):
    name = "sqlite"
    transactional_ddl = True
    exclusive_lock = False
    split_rules = SplitRules(backticks=True, brackets=True)
    types: ClassVar[dict[str, str]] = {**Dialect.types, "float": "REAL", "decimal": "NUMERIC({precision}, {scale})"}
    table_names_sql = "SELECT name FROM sqlite_master WHERE type = 'table'"

    def autoincrement_column(self, c: Column) -> str:
        # INTEGER PRIMARY KEY is the rowid alias; SERIAL would leave ids NULL.
        return "INTEGER PRIMARY KEY AUTOINCREMENT"

    # PostgreSQL's serial pseudo-types, which Baselinr's profiler also writes on
    # SQLite: there they get NUMERIC affinity, yet the column is an integer in intent.
    _SERIAL_TYPES = frozenset({"SERIAL", "BIGSERIAL", "SMALLSERIAL"})

    def unique_keys(self, insp: Any, table: str) -> set[tuple[str, ...]]:
        # An inline UNIQUE (...) shows only as an automatic index, and the
        # inspector misses the constraint when its column list spans lines.
        auto = insp.get_indexes(table, include_auto_indexes=True)
        return super().unique_keys(insp, table) | {_lower(i.get("column_names")) for i in auto if i.get("unique")}

    def declared_families(self, conn: Connection, table: str) -> dict[str, str]:
        rows = conn.exec_driver_sql(f"PRAGMA table_info({self.quote(table)})").fetchall()
        return {str(r[1]).lower(): "integer" for r in rows if str(r[2]).strip().upper() in self._SERIAL_TYPES}

    def engine_options(self, lock_timeout: float) -> dict[str, Any]:
        # The busy timeout is the lock wait: BEGIN IMMEDIATE retries until it.
        return {"connect_args": {"timeout": max(lock_timeout, 0.0)}}

    def is_lock_error(self, exc: BaseException) -> bool:
        return "database is locked" in str(getattr(exc, "orig", exc))

    @classmethod
    def is_missing_object(cls, exc: BaseException) -> bool:
        text = str(getattr(exc, "orig", None) or exc)
        return text.startswith(("no such table", "no such column"))

    def dbapi_connect(
        self, settings: ConnectionSettings, *, create: bool = False, lock_timeout: float | None = None
    ) -> tuple[Any, type[Exception]] | None:
        import sqlite3

        path = settings.filepath or settings.database
        if path != ":memory:" and not os.path.exists(path) and not create:
            return None  # let SQLAlchemy create it, as it would
        # The busy timeout and the user's driver options, as the engine passes them (a wrong
        # option fails here as there).
        timeout = 10.0 if lock_timeout is None else self.engine_options(lock_timeout)["connect_args"]["timeout"]
        return sqlite3.connect(path, **{"timeout": timeout, **settings.extra_params.get("connect_args", {})}), sqlite3.Error

    def prepare_dbapi(self, dbapi_conn: Any) -> None:
        # Let us issue BEGIN ourselves, so DDL is transactional and the
        # write lock is taken up front (BEGIN IMMEDIATE).
        dbapi_conn.isolation_level = None
        try:
            dbapi_conn.execute("SELECT concat('a', 'b')")
        except Exception:  # noqa: BLE001 - SQLite before 3.44 lacks CONCAT
            dbapi_conn.create_function(
                "concat", -1, lambda *a: "".join("" if v is None else str(v) for v in a), deterministic=True
            )

    def begin_sql(self, write: bool) -> str | None:
        # Writers take the write lock up front, readers stay deferred.
        return "BEGIN IMMEDIATE" if write else "BEGIN"

    def configure_engine(self, engine: Engine) -> None:
        from sqlalchemy import event

        @event.listens_for(engine, "connect")
        def _connect(dbapi_conn: Any, _record: Any) -> None:
            self.prepare_dbapi(dbapi_conn)

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            conn.exec_driver_sql(self.begin_sql(bool(conn.get_execution_options().get("baselinr_write"))) or "BEGIN")


class PostgresDialect(Dialect):
    name = "postgres"
    transactional_ddl = True
    guards_tracked = False
    split_rules = SplitRules(escape_string_prefix=True, dollar_quotes=True, nested_comments=True)
    types: ClassVar[dict[str, str]] = {**Dialect.types, "float": "DOUBLE PRECISION", "decimal": "NUMERIC({precision}, {scale})"}
    table_names_sql = "SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = current_schema()"

    def __init__(self, schema: str | None = None) -> None:
        self.schema = schema

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
            port=settings.port or 5432,
            user=settings.username or "postgres",
            password=settings.password,
            dbname=settings.database,
            **args,
        )
        return conn, psycopg2.Error

    def needs_autocommit(self, statement: str) -> bool:
        return bool(_PG_NO_TRANSACTION.search(statement))

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
                f"AND a.xact_start <= now() - make_interval(secs => {age!r}) ORDER BY a.xact_start LIMIT 5"
            ).fetchall()
        return [
            Blocker(int(r[0]), r[1], r[2] or None, _when(r[3]), _when(r[4]), r[5], _squash(r[6])) for r in rows
        ]

    @property
    def lock_key(self) -> int:
        return zlib.crc32(f"{LOCK_NAME}:{self.schema or 'public'}".encode())

    @contextmanager
    def lock(self, conn: Connection, timeout: float) -> Iterator[None]:
        # Session-level lock on a dedicated connection: a transaction-scoped
        # lock would deadlock with CREATE INDEX CONCURRENTLY, and a blocking
        # pg_advisory_lock ignores our timeout.
        conn.execution_options(isolation_level="AUTOCOMMIT")
        key = self.lock_key

        def try_once() -> bool:
            return bool(conn.exec_driver_sql(f"SELECT pg_try_advisory_lock({key})").scalar())

        def holder() -> str | None:
            row = conn.exec_driver_sql(
                "SELECT a.pid, a.application_name, a.client_addr FROM pg_locks l "
                "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
                f"AND l.granted AND l.classid = 0 AND l.objid = {key}"
            ).first()
            return f"PostgreSQL backend {row[0]} ({row[1] or 'no name'})" if row else None

        self._poll(try_once, timeout, holder)
        with _release(lambda: conn.exec_driver_sql(f"SELECT pg_advisory_unlock({key})")):
            yield


@contextmanager
def _release(unlock: Callable[[], object]) -> Iterator[None]:
    """Run the block, then ``unlock()``. When the block failed, its error is the
    one to report: if the release fails too (the server died, taking the
    session and its lock with it) that second error is dropped."""
    try:
        yield
    except BaseException:
        try:
            unlock()
        except Exception:  # noqa: BLE001 - the block's own error is re-raised below
            pass
        raise
    unlock()


def search_path_option(schema: str) -> str:
    """libpq ``options`` setting ``search_path`` to exactly ``schema``.

    The value is one identifier, never more settings: a plain identifier is
    passed as before (PostgreSQL folds its case); any other name is double-quoted (so ``public -c x=1`` is a
    schema of that name), and libpq's option separators (space, backslash)
    are backslash-escaped."""
    ident = schema if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", schema) else '"' + schema.replace('"', '""') + '"'
    escaped = ident.replace("\\", "\\\\").replace(" ", "\\ ")
    return f"-c search_path={escaped}"


class MySQLDialect(Dialect):
    name = "mysql"
    transactional_ddl = False
    split_rules = SplitRules(backslash_escapes=True, hash_comments=True, backticks=True, delimiter_command=True)
    types: ClassVar[dict[str, str]] = {
        **Dialect.types,
        "float": "DOUBLE",
        "timestamp": "DATETIME(6)",
        "json": "MEDIUMTEXT",
    }
    now = "CURRENT_TIMESTAMP(6)"
    table_names_sql = "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()"

    def render_drop_index(self, i: Index) -> str:
        return f"DROP INDEX {self.quote(i.name)} ON {self.quote(i.table)}"

    # InnoDB's key limit, and utf8mb4's bytes per character.
    MAX_KEY_BYTES = 3072
    BYTES_PER_CHAR = 4

    def render_index_on_live(self, i: Index, lengths: dict[str, int | None]) -> str:
        # Baselinr's profiler makes name columns VARCHAR(255): four of them exceed
        # InnoDB's key limit (its own CREATE INDEX fails there). Index a prefix of
        # each, as long as the limit allows: the index still serves its lookups.
        wide = [c for c in i.column_names if (lengths.get(c.lower()) or 0) > 0]
        need = sum((lengths.get(c.lower()) or 0) * self.BYTES_PER_CHAR for c in wide)
        if need <= self.MAX_KEY_BYTES:
            return self.render_create_index(i)
        other = 8 * (len(i.column_names) - len(wide))
        prefix = (self.MAX_KEY_BYTES - other) // (self.BYTES_PER_CHAR * len(wide))
        columns = []
        for spelled, name in zip(i.columns, i.column_names, strict=True):
            length = lengths.get(name.lower()) or 0
            columns.append(spelled.replace(name, f"{name}({prefix})", 1) if length > prefix else spelled)
        unique = "UNIQUE " if i.unique else ""
        return f"CREATE {unique}INDEX {self.quote(i.name)} ON {self.quote(i.table)} ({', '.join(columns)})"

    schema_queries = (
        "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME, ORDINAL_POSITION",
        "SELECT TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX, COLUMN_NAME, NON_UNIQUE FROM information_schema.STATISTICS "
        "WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX",
    )
    begin_tracked = "START TRANSACTION"

    def is_authentication_error(self, exc: BaseException) -> bool:
        args: tuple[Any, ...] = tuple(getattr(exc, "args", ()))
        return bool(args) and args[0] == 1045  # ER_ACCESS_DENIED_ERROR

    @classmethod
    def is_missing_object(cls, exc: BaseException) -> bool:
        # ER_NO_SUCH_TABLE, ER_BAD_FIELD_ERROR
        args: tuple[Any, ...] = tuple(getattr(getattr(exc, "orig", None) or exc, "args", ()))
        return bool(args) and args[0] in (1146, 1054)

    def __init__(self) -> None:
        # PyMySQL's connect_timeout covers only the TCP connect; without a read
        # timeout it waits forever for the greeting of a port that answers but
        # is not MySQL. The handshake gets the same bound; queries afterwards
        # get the user's read/write timeouts (none by default: DDL may be slow).
        self._query_timeouts: dict[str, float | None] = {"read_timeout": None, "write_timeout": None}

    def render_rebuild(self, old: Table, new: Table) -> list[str]:
        # Only the column order differs: MySQL moves a column in place, keeping rows,
        # ids and indexes, with no window where the table is missing.
        same_columns = {c.name: c for c in old.columns} == {c.name: c for c in new.columns}
        if not same_columns or (old.primary_key, old.unique, old.indexes) != (new.primary_key, new.unique, new.indexes):
            return super().render_rebuild(old, new)
        # Move the fewest columns: those off the longest run already in the new order.
        stay = _longest_increasing([[c.name for c in old.columns].index(c.name) for c in new.columns])
        statements = []
        for position, c in enumerate(new.columns):
            if position not in stay:
                where = f"AFTER {self.quote(new.columns[position - 1].name)}" if position else "FIRST"
                statements.append(f"ALTER TABLE {self.quote(new.name)} MODIFY COLUMN {self._column_in_place(c)} {where}")
        return statements

    def _column_in_place(self, c: Column) -> str:
        if c.autoincrement:
            return f"{self.quote(c.name)} INTEGER NOT NULL AUTO_INCREMENT"
        return self.render_column(c)

    def render_rename_table(self, old: str, new: str) -> str:
        return f"RENAME TABLE {self.quote(old)} TO {self.quote(new)}"

    def engine_options(self, lock_timeout: float) -> dict[str, Any]:
        return {"connect_args": {"connect_timeout": CONNECT_TIMEOUT}}

    def final_connect_args(self, connect_args: dict[str, Any]) -> dict[str, Any]:
        """``connect_args`` with the handshake bounded by ``connect_timeout``."""
        bound = connect_args.get("connect_timeout", CONNECT_TIMEOUT)
        for key in self._query_timeouts:
            self._query_timeouts[key] = connect_args.get(key)
        return {
            **connect_args,
            "read_timeout": connect_args.get("read_timeout") or bound,
            "write_timeout": connect_args.get("write_timeout") or bound,
        }

    def after_handshake(self, dbapi_conn: Any) -> None:
        """Back to the query timeouts the user asked for (PyMySQL re-arms the socket from these)."""
        dbapi_conn._read_timeout = self._query_timeouts["read_timeout"]
        dbapi_conn._write_timeout = self._query_timeouts["write_timeout"]

    def configure_engine(self, engine: Engine) -> None:
        from sqlalchemy import event

        @event.listens_for(engine, "connect")
        def _connect(dbapi_conn: Any, _record: Any) -> None:
            self.after_handshake(dbapi_conn)

    def dbapi_connect(
        self, settings: ConnectionSettings, *, create: bool = False, lock_timeout: float | None = None
    ) -> tuple[Any, type[Exception]] | None:
        import pymysql

        args = self.final_connect_args(
            {**self.engine_options(0)["connect_args"], **settings.extra_params.get("connect_args", {})}
        )
        conn = pymysql.connect(
            host=settings.host or "localhost",
            port=settings.port or 3306,
            user=settings.username or "root",
            password=settings.password or "",
            database=settings.database,
            charset="utf8mb4",
            **args,
        )
        self.after_handshake(conn)
        return conn, pymysql.Error

    def guard_statements(
        self, conn: Connection, lock_timeout: float, statement_timeout: float | None, *, in_transaction: bool
    ) -> tuple[list[str], list[str]]:
        # Whole seconds: metadata locks (DDL) and InnoDB row locks (a Python step's DML).
        sets, resets = [], []
        if lock_timeout > 0:
            seconds = max(1, math.ceil(lock_timeout))
            sets.append(f"SET SESSION lock_wait_timeout = {seconds}, innodb_lock_wait_timeout = {seconds}")
            resets.append("SET SESSION lock_wait_timeout = DEFAULT, innodb_lock_wait_timeout = DEFAULT")
        if statement_timeout:
            if getattr(conn.dialect, "is_mariadb", False):
                sets.append(f"SET SESSION max_statement_time = {statement_timeout:.3f}")
                resets.append("SET SESSION max_statement_time = DEFAULT")
            else:  # MySQL bounds SELECTs only
                sets.append(f"SET SESSION max_execution_time = {max(1, round(statement_timeout * 1000))}")
                resets.append("SET SESSION max_execution_time = DEFAULT")
        return sets, resets

    def lock_wait_seconds(self, seconds: float) -> float:
        return float(max(1, math.ceil(seconds)))  # whole seconds only

    def session_id(self, conn: Connection) -> int | None:
        return int(conn.exec_driver_sql("SELECT CONNECTION_ID()").scalar_one())

    def is_lock_wait_timeout(self, exc: BaseException) -> bool:
        args: tuple[Any, ...] = tuple(getattr(getattr(exc, "orig", None) or exc, "args", ()))
        return bool(args) and args[0] == 1205  # ER_LOCK_WAIT_TIMEOUT: metadata and row locks alike

    _SESSION = (
        "SELECT DISTINCT p.ID, p.USER, p.HOST, DATE_FORMAT(NOW() - INTERVAL p.TIME SECOND, '%%Y-%%m-%%d %%H:%%i:%%s'), {trx}, "
        "p.STATE, LEFT(p.INFO, 200) FROM information_schema.PROCESSLIST p "
    )

    def blockers(self, conn: Connection, session: int, min_age: float) -> list[Blocker]:
        # INNODB_TRX keeps whole seconds: round down, or a blocker younger than the next second is missed.
        # Numbers only, written in; '%' doubled: the driver formats the text (as on SQLAlchemy's path).
        params = {"s": int(session), "age": math.floor(min_age)}
        # MariaDB's metadata_lock_info plugin names the holders of metadata locks, where it is loaded.
        holders = (
            self._SESSION.format(trx="NULL")
            + "JOIN information_schema.METADATA_LOCK_INFO m ON m.THREAD_ID = p.ID "
            "WHERE m.TABLE_SCHEMA = DATABASE() AND p.ID NOT IN (CONNECTION_ID(), {s}) ORDER BY p.TIME DESC LIMIT 5"
        )
        # Otherwise: the sessions with a transaction open for that long, which keep their metadata locks.
        open_transactions = (
            self._SESSION.format(trx="DATE_FORMAT(t.trx_started, '%%Y-%%m-%%d %%H:%%i:%%s')")
            + "JOIN information_schema.INNODB_TRX t ON t.trx_mysql_thread_id = p.ID "
            "WHERE p.ID NOT IN (CONNECTION_ID(), {s}) AND p.DB = DATABASE() AND t.trx_started <= NOW() - INTERVAL {age} SECOND "
            "ORDER BY t.trx_started LIMIT 5"
        )
        rows: list[Any] = []
        for sql in (holders, open_transactions):
            try:
                rows = list(conn.exec_driver_sql(sql.format(**params)).fetchall())
            except Exception:  # noqa: BLE001 - the plugin is not loaded: the next source
                if conn.in_transaction():
                    conn.rollback()
                continue
            if rows:
                break
        return [Blocker(int(r[0]), r[1], r[2], r[3], r[4], r[5], _squash(r[6])) for r in rows]

    @contextmanager
    def lock(self, conn: Connection, timeout: float) -> Iterator[None]:
        conn.execution_options(isolation_level="AUTOCOMMIT")
        # The connected database's name (the URL's), asked of the server: the same on either connection.
        name = {"n": f"{LOCK_NAME}.{conn.exec_driver_sql('SELECT DATABASE()').scalar()}"[:64]}

        def try_once() -> bool:
            # GET_LOCK returns NULL on error (e.g. killed): treat as not held.
            return conn.exec_driver_sql("SELECT GET_LOCK(%(n)s, 0)", name).scalar() == 1

        def holder() -> str | None:
            row = conn.exec_driver_sql(
                "SELECT p.ID, p.USER, p.HOST FROM information_schema.PROCESSLIST p WHERE p.ID = IS_USED_LOCK(%(n)s)", name
            ).first()
            return f"MySQL connection {row[0]} ({row[1]}@{row[2]})" if row else None

        self._poll(try_once, timeout, holder)
        with _release(lambda: conn.exec_driver_sql("SELECT RELEASE_LOCK(%(n)s)", name)):
            yield


class SnowflakeDialect(Dialect):
    """Snowflake: VARIANT for JSON, TIMESTAMP_TZ, no secondary indexes, a lease-row lock.

    DDL commits implicitly, so every migration runs tracked (statement by
    statement, progress recorded). Identifiers are written unquoted, so
    Snowflake stores them upper-case and resolves them case-insensitively,
    the way Baselinr's own tables are created.
    """

    name = "snowflake"
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

    @contextmanager
    def lock(self, conn: Connection, timeout: float) -> Iterator[None]:
        from baselinr.storage.snowflake import Lease, hold

        conn.execution_options(isolation_level="AUTOCOMMIT")
        lease = Lease(conn, LOCK_NAME, runner_id(), lease_seconds=self.lease_seconds)
        with hold(lease, lambda take, holder: self._poll(take, timeout, holder)):
            yield


def _longest_increasing(values: list[int]) -> set[int]:
    """Positions of one longest strictly increasing subsequence of ``values``."""
    best: list[list[int]] = []
    for i, v in enumerate(values):
        longest: list[int] = []
        for j, run in enumerate(best):
            if values[j] < v and len(run) > len(longest):
                longest = run
        best.append([*longest, i])
    chosen: list[int] = []
    for run in best:
        if len(run) > len(chosen):
            chosen = run
    return set(chosen)


def _when(value: Any) -> str | None:
    """A server timestamp as text, to the second."""
    if value is None:
        return None
    return value.isoformat(sep=" ", timespec="seconds") if hasattr(value, "isoformat") else str(value)


def _squash(query: Any) -> str | None:
    """A session's query on one line (it is shown in a one-line message)."""
    return " ".join(str(query).split())[:200] if query else None


def _lower(columns: Any) -> tuple[str, ...]:
    return tuple(str(c).lower() for c in columns or [] if c)


_DIALECTS: dict[str, type[Dialect]] = {
    "sqlite": SQLiteDialect,
    "postgres": PostgresDialect,
    "mysql": MySQLDialect,
    "snowflake": SnowflakeDialect,
}


def dialect_for(name: str, schema: str | None = None) -> Dialect:
    """The dialect object for a config ``type``."""
    cls = _DIALECTS[name]
    if cls is PostgresDialect:
        return PostgresDialect(schema)
    return cls()


def is_missing_object(exc: BaseException) -> bool:
    """True if some dialect reads driver error ``exc`` as "no such table or column"."""
    return any(cls.is_missing_object(exc) for cls in _DIALECTS.values())
