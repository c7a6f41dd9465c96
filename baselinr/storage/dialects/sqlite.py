"""SQLite: transactional DDL, a file path for a database, ``BEGIN IMMEDIATE`` as the lock.

Registered in the package's ``__init__``. There is no lock server: writers
serialise on the database file, per migration, so ``exclusive_lock`` is off
and each migration re-checks the version it starts from.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, ClassVar

from baselinr.errors import ConfigError
from baselinr.storage.dialects.base import Dialect, _lower
from baselinr.storage.model import Column
from baselinr.storage.splitter import SplitRules

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Connection, Engine

    from baselinr.config import ConnectionSettings


class SQLiteDialect(Dialect):
    name = "sqlite"
    aliases = ("sqlite3",)
    sqlglot_name = "sqlite"
    transactional_ddl = True
    exclusive_lock = False
    split_rules = SplitRules(backticks=True, brackets=True)
    types: ClassVar[dict[str, str]] = {**Dialect.types, "float": "REAL", "decimal": "NUMERIC({precision}, {scale})"}
    table_names_sql = "SELECT name FROM sqlite_master WHERE type = 'table'"

    @classmethod
    def check_config(cls, values: dict[str, Any], where: str) -> None:
        if not values.get("database") and not values.get("filepath"):
            raise ConfigError(f"{where}.filepath (or database) is required for sqlite")
        values.setdefault("database", values.get("filepath", ""))

    @classmethod
    def url(cls, settings: ConnectionSettings) -> URL:
        from sqlalchemy.engine import URL

        return URL.create("sqlite", database=settings.filepath or settings.database)

    @classmethod
    def describe(cls, settings: ConnectionSettings) -> str:
        # The absolute path: a relative one names a different file in every working directory.
        path = settings.filepath or settings.database
        if path == ":memory:" or path.startswith("file:"):
            return f"sqlite:{path}"
        return f"sqlite:{os.path.abspath(path)}"

    @classmethod
    def storage_problem(cls, settings: ConnectionSettings, exc: BaseException) -> tuple[str, str] | None:
        text = str(getattr(exc, "orig", None) or exc).lower()
        if "readonly database" not in text and "unable to open database file" not in text:
            return None
        given = settings.filepath or settings.database
        if given == ":memory:" or given.startswith("file:"):
            return None
        path = os.path.abspath(given)
        folder = os.path.dirname(path)
        where = "storage.connection.filepath" if settings.filepath else "storage.connection.database"
        if not os.path.isdir(folder):
            return (
                f"SQLite database {path}: its directory {folder} does not exist",
                f"Create it (mkdir -p {folder}), or point {where} at an existing directory.",
            )
        if os.path.isdir(path):
            return f"SQLite database {path} is a directory, not a file", f"Point {where} at a file."
        if os.path.exists(path) and not os.access(path, os.R_OK | os.W_OK):
            return (
                f"SQLite database {path} is read-only for this user (mode {_mode(path)})",
                f"Give this user read and write permission on it (e.g. chmod u+rw {path}), or run as its owner.",
            )
        if not os.access(folder, os.W_OK | os.X_OK):
            return (
                f"SQLite database {path}: this user cannot write to its directory {folder} (mode {_mode(folder)}), "
                "where SQLite creates the database and its journal",
                f"Give this user write permission on the directory (e.g. chmod u+w {folder}), or move the database.",
            )
        return None

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

    @classmethod
    def is_missing_table(cls, exc: BaseException) -> bool:
        return str(getattr(exc, "orig", None) or exc).startswith("no such table")

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
            # An AUTOCOMMIT connection (a tracked migration's) gets no BEGIN: nothing would commit it.
            options = conn.get_execution_options()
            if options.get("isolation_level") == "AUTOCOMMIT":
                return
            conn.exec_driver_sql(self.begin_sql(bool(options.get("baselinr_write"))) or "BEGIN")


def _mode(path: str) -> str:
    """``0444, owner uid 0``: what a permission message shows of a file or directory."""
    st = os.stat(path)
    return f"{st.st_mode & 0o777:04o}, owner uid {st.st_uid}"
