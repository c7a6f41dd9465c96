"""MySQL and MariaDB: DDL commits at once, ``GET_LOCK`` as the lock, InnoDB's key limit.

Registered in the package's ``__init__``. Every migration runs tracked
(statement by statement, progress recorded), since MySQL commits each DDL
statement on its own; the DDL lock guard sets the session's lock wait
timeouts in whole seconds.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar

from baselinr.storage.dialects.base import CONNECT_TIMEOUT, LOCK_NAME, Dialect, _squash
from baselinr.storage.migrations.results import Blocker
from baselinr.storage.model import Column, Index, Table
from baselinr.storage.splitter import SplitRules

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from baselinr.config import ConnectionSettings
    from baselinr.storage.dialects.base import Reconnect


class MySQLDialect(Dialect):
    name = "mysql"
    aliases = ("mariadb",)
    default_port = 3306
    default_user = "root"
    driver = "mysql+pymysql"
    url_query: ClassVar[dict[str, str]] = {"charset": "utf8mb4"}
    sqlglot_name = "mysql"
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

    @classmethod
    def is_missing_table(cls, exc: BaseException) -> bool:
        args: tuple[Any, ...] = tuple(getattr(getattr(exc, "orig", None) or exc, "args", ()))
        return bool(args) and args[0] == 1146

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
            port=settings.port or self.default_port,
            user=settings.username or self.default_user,
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
        # MySQL 8: performance_schema's metadata locks (MariaDB leaves the table empty unless
        # performance_schema is on). Written from MySQL's manual: no MySQL 8 server runs in the tests.
        granted = (
            self._SESSION.format(trx="NULL")
            + "JOIN performance_schema.threads t ON t.PROCESSLIST_ID = p.ID "
            "JOIN performance_schema.metadata_locks m ON m.OWNER_THREAD_ID = t.THREAD_ID "
            "WHERE m.OBJECT_TYPE = 'TABLE' AND m.OBJECT_SCHEMA = DATABASE() AND m.LOCK_STATUS = 'GRANTED' "
            "AND p.ID NOT IN (CONNECTION_ID(), {s}) ORDER BY p.TIME DESC LIMIT 5"
        )
        # Otherwise: the sessions with a transaction open for that long, which keep their metadata locks.
        open_transactions = (
            self._SESSION.format(trx="DATE_FORMAT(t.trx_started, '%%Y-%%m-%%d %%H:%%i:%%s')")
            + "JOIN information_schema.INNODB_TRX t ON t.trx_mysql_thread_id = p.ID "
            "WHERE p.ID NOT IN (CONNECTION_ID(), {s}) AND p.DB = DATABASE() AND t.trx_started <= NOW() - INTERVAL {age} SECOND "
            "ORDER BY t.trx_started LIMIT 5"
        )
        rows: list[Any] = []
        for sql in (holders, granted, open_transactions):
            try:
                rows = list(conn.exec_driver_sql(sql.format(**params)).fetchall())
            except Exception:  # noqa: BLE001 - the plugin is not loaded (or no such table): the next source
                if conn.in_transaction():
                    conn.rollback()
                continue
            if rows:
                break
        return [Blocker(int(r[0]), r[1], r[2], r[3], r[4], r[5], _squash(r[6])) for r in rows]

    @contextmanager
    def lock(self, conn: Connection, timeout: float, reconnect: Reconnect | None = None) -> Iterator[None]:
        # GET_LOCK returns NULL on error (e.g. killed): treated as not held.
        with self._server_lock(
            conn,
            timeout,
            take="SELECT GET_LOCK(%(n)s, 0)",
            holder="SELECT p.ID, p.USER, p.HOST FROM information_schema.PROCESSLIST p WHERE p.ID = IS_USED_LOCK(%(n)s)",
            release="SELECT RELEASE_LOCK(%(n)s)",
            # The connected database's name, asked of the server (once in autocommit): the same on either connection.
            params=lambda: {"n": f"{LOCK_NAME}.{conn.exec_driver_sql('SELECT DATABASE()').scalar()}"[:64]},
            who=lambda row: f"MySQL connection {row[0]} ({row[1]}@{row[2]})",
        ):
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
