"""The base ``Dialect``: what every storage dialect provides, and the defaults.

One subclass per dialect (``sqlite``, ``postgres``, ``mysql``, ``snowflake``)
overrides the differences; the package's ``__init__`` keeps the one registry
of them by name. Callers ask ``dialect_for(name)`` (or ``dialect_class``) and
never branch on a dialect's name themselves. A dialect knows what a config of
its type needs and where it points (URL, default port and user, the redacted
description), whether its DDL is transactional, how to split a script
(``SplitRules``), how to spell the model's types and DDL, how to read back
what reflection misreads, how to take the single-runner lock, and how to tune
a new SQLAlchemy engine (e.g. SQLite's ``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar

from baselinr.errors import ConfigError, LockTimeout
from baselinr.storage.migrations.results import Blocker
from baselinr.storage.model import NOW, Column, Index, SqlType, Table
from baselinr.storage.splitter import GENERIC, SplitRules

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Connection, Engine

    from baselinr.config import ConnectionSettings

LOCK_NAME = "baselinr_schema_migration"
# Opens a new connection like the one the lock was given (see Dialect.lock).
Reconnect = Callable[[], "AbstractContextManager[Connection]"]
CONNECT_TIMEOUT = 10  # seconds: TCP connect and, on MySQL, the server's greeting
# A table being rebuilt (RebuildTable) exists under its name plus this suffix until renamed.
REBUILD_SUFFIX = "__rebuild"


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
    # Whether the bare driver's connection may send several of the engine's own statements
    # (its BEGIN and COMMIT included) in one round trip: a multi-statement query, as
    # PostgreSQL's simple query protocol takes it (see dbapi.DbapiConnection).
    batches_statements: ClassVar[bool] = False

    # --- settings: what a config of this type needs, and where it points --

    # Other spellings of ``name`` accepted as a config ``type``.
    aliases: ClassVar[tuple[str, ...]] = ()
    # Used when the config leaves ``port`` / ``username`` out (server dialects).
    default_port: ClassVar[int | None] = None
    default_user: ClassVar[str | None] = None
    # The SQLAlchemy driver, and the URL's query, of a server dialect.
    driver: ClassVar[str] = ""
    url_query: ClassVar[dict[str, str]] = {}
    # The name sqlglot parses this dialect's SQL by (the linter).
    sqlglot_name: ClassVar[str] = ""

    @classmethod
    def check_config(cls, values: dict[str, Any], where: str) -> None:
        """Refuse parsed ``storage.connection`` ``values`` (at ``where``) this dialect
        cannot connect with, as a ``ConfigError``; may fill in a derived value."""
        if not values.get("database"):
            raise ConfigError(f"{where}.database is required for {cls.name}")

    @classmethod
    def url(cls, settings: ConnectionSettings) -> URL:
        """The SQLAlchemy URL of ``settings``; credentials are escaped by ``URL.create``."""
        from sqlalchemy.engine import URL

        return URL.create(
            cls.driver,
            username=settings.username or cls.default_user,
            password=settings.password,
            host=settings.host or "localhost",
            port=settings.port or cls.default_port,
            database=settings.database,
            query=cls.url_query,
        )

    @classmethod
    def describe(cls, settings: ConnectionSettings) -> str:
        """A one-line, password-free description of ``settings`` for messages."""
        host = settings.host or "localhost"
        port = settings.port or cls.default_port
        user = settings.username or cls.default_user
        return f"{cls.name}://{user}@{host}:{port}/{settings.database}"

    @classmethod
    def secret_connect_args(cls, settings: ConnectionSettings) -> dict[str, Any]:
        """Driver arguments from ``settings`` that must not travel in the URL (secrets)."""
        return {}

    @classmethod
    def for_schema(cls, schema: str | None) -> Dialect:
        """The dialect object for a config whose ``schema`` is given (or not)."""
        return cls()

    # --- DDL rendering -----------------------------------------------------

    def quote(self, ident: str) -> str:
        # Baselinr's names are plain lower-case identifiers; quoting them
        # would make them case-sensitive on PostgreSQL and Snowflake.
        return ident

    def render_type(self, t: SqlType) -> str:
        spelled = self.types[t.family]
        if t.family == "decimal" and t.precision is None:
            return spelled.split("(")[0]  # DECIMAL with the server's default precision, as a SQL migration wrote it
        return spelled.format(length=t.length, precision=t.precision, scale=t.scale)

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

    @classmethod
    def family_of(cls, live_type: Any) -> tuple[str, int | None] | None:
        """The model family (and string length) of a reflected type that is none of
        SQLAlchemy's generic types, or ``None`` if this dialect does not know it."""
        return None

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

    def dbapi_server_version(self, dbapi_conn: Any) -> tuple[int, ...] | None:
        """The server's version from a bare driver connection, as SQLAlchemy's ``server_version_info`` gives it."""
        return None

    def set_dbapi_isolation(self, dbapi_conn: Any, level: str | None, *, readonly: bool) -> None:
        """Isolation level (and read-only) of a bare driver connection's next transactions."""
        raise NotImplementedError(f"{self.name}: no isolation settings on the bare driver")

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

    def refused_setting(self, exc: BaseException, settings: ConnectionSettings) -> str | None:
        """What to do when the connect error ``exc`` says a setting of the config cannot reach the
        server (e.g. a pooler in front of it refuses it); ``None`` for any other error."""
        return None

    def is_authentication_error(self, exc: BaseException) -> bool:
        """True if the driver's connect error ``exc`` means the credentials were refused."""
        return False

    @classmethod
    def storage_problem(cls, settings: ConnectionSettings, exc: BaseException) -> tuple[str, str] | None:
        """What is wrong with where the database lives, when ``exc`` says it cannot be opened or
        written (a file database: its path or its permissions), as (message, what to do);
        ``None`` when ``exc`` says something else or the dialect has no such place."""
        return None

    def needs_autocommit(self, statement: str) -> bool:
        """True for a statement the database refuses inside a transaction."""
        return False

    def for_fresh_schema(self, statement: str) -> str | None:
        """``statement`` as it can run inside one transaction that builds an empty schema (a
        restore), or ``None`` when it changes no schema there and is left out."""
        return statement

    @classmethod
    def is_missing_object(cls, exc: BaseException) -> bool:
        """True if ``exc`` (a driver error) says a table or column does not exist,
        as opposed to a permission problem or a file that is not a database."""
        return False

    @classmethod
    def is_missing_table(cls, exc: BaseException) -> bool:
        """True if ``exc`` says the table itself does not exist (not one of its columns);
        False also where the dialect cannot tell the two apart."""
        return False

    @contextmanager
    def lock(self, conn: Connection, timeout: float, reconnect: Reconnect | None = None) -> Iterator[None]:
        """Hold the migration lock on ``conn`` (a dedicated connection) for the block. Where
        ``reconnect`` is given, a dialect may close ``conn`` and hold the lock on a new
        connection of ``reconnect()`` instead (PostgreSQL does, to wait holding none)."""
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
        import hashlib  # only tracked migrations hash the schema: not imported for every run

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

    # True where a connection's transactions may each run on another server session (PostgreSQL
    # behind a transaction pooler): the DDL lock guard then reads the session in each one.
    session_moves: ClassVar[bool] = False

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

    @contextmanager
    def _server_lock(
        self,
        conn: Connection,
        timeout: float,
        *,
        take: str,
        holder: str,
        release: str,
        params: dict[str, Any] | Callable[[], dict[str, Any]],
        who: Callable[[Any], str],
    ) -> Iterator[None]:
        """Hold a lock the server keeps for ``conn``'s session: query ``take`` (true once
        granted) until ``timeout``, naming the holder by ``who(row)`` of query ``holder``;
        query ``release`` after the block. All three take ``params`` in the driver's own
        ``%(name)s`` style: the same text on SQLAlchemy's connection and the bare driver's;
        a callable ``params`` is asked once the connection is in autocommit."""
        conn.execution_options(isolation_level="AUTOCOMMIT")
        if callable(params):
            params = params()

        def held_by() -> str | None:
            row = conn.exec_driver_sql(holder, params).first()
            return who(row) if row else None

        self._poll(lambda: bool(conn.exec_driver_sql(take, params).scalar()), timeout, held_by)
        with _release(lambda: conn.exec_driver_sql(release, params)):
            yield

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


def _squash(query: Any) -> str | None:
    """A session's query on one line (it is shown in a one-line message)."""
    return " ".join(str(query).split())[:200] if query else None


def _lower(columns: Any) -> tuple[str, ...]:
    return tuple(str(c).lower() for c in columns or [] if c)
