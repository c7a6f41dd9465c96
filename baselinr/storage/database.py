"""The database service: one storage database's engine, dialect, connections and lock.

Used by the migration layers (runner, validation, adoption), the
``MigrationManager`` facade and the backup modules. It owns the one way to
take the single-runner lock (``locked``), and the bare-driver path: reads of
the history and the table names for ``status``, and the connections of a
SQL-only ``apply`` or ``rollback`` (``connect(bare=True)``, see ``dbapi.py``),
none of which imports SQLAlchemy, most of their start-up time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, ExitStack, contextmanager
from typing import TYPE_CHECKING, Any

from baselinr.config import ConnectionSettings, Settings
from baselinr.storage.connection import connect_error, create_engine, open_connection
from baselinr.storage.dbapi import DbapiConnection
from baselinr.storage.dialects import Dialect, dialect_for
from baselinr.storage.migrations import history
from baselinr.storage.migrations.results import HistoryRow

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

# ``quick_history`` could not use the bare driver: take the SQLAlchemy path.
NO_QUICK_PATH: Any = object()
# A lock retry as the journal recorded it: (version, run id, detail).
Retry = tuple[int, "str | None", "str | None"]


class Database:
    """One storage database: settings, table names, the engine (made on first use) and the lock."""

    def __init__(
        self,
        settings: ConnectionSettings,
        *,
        table_names: Mapping[str, str] | None = None,
        lock_timeout: float = 60.0,
    ) -> None:
        self.settings = settings
        self.lock_timeout = lock_timeout
        self._names = dict(table_names or {})
        self._engine: Engine | None = None
        self._dialect: Dialect | None = None

    @classmethod
    def from_settings(cls, settings: Settings, *, lock_timeout: float = 60.0) -> Database:
        """The storage database of a loaded config, with its runs and results table names."""
        names = {"baselinr_runs": settings.storage.runs_table, "baselinr_results": settings.storage.results_table}
        return cls(settings.storage.connection, table_names=names, lock_timeout=lock_timeout)

    def names(self, logical: str) -> str:
        """The physical name of a logical Baselinr table (the config may rename two of them)."""
        return self._names.get(logical, logical)

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine, _ = create_engine(self.settings, lock_timeout=self.lock_timeout, dialect=self.dialect)
        return self._engine

    @property
    def has_engine(self) -> bool:
        """Whether SQLAlchemy's engine was made already (then the bare-driver shortcuts are not worth it)."""
        return self._engine is not None

    @property
    def dialect(self) -> Dialect:
        """The dialect (made without the engine: it renders and parses without SQLAlchemy)."""
        if self._dialect is None:
            self._dialect = dialect_for(self.settings.type, self.settings.schema)
        return self._dialect

    @property
    def bare_available(self) -> bool:
        """Whether ``connect(bare=True)`` can serve this database (the driver's connection
        honours every setting of the config)."""
        if set(self.settings.extra_params) - {"connect_args"}:
            return False
        return type(self.dialect).dbapi_connect is not Dialect.dbapi_connect

    def connect(self, *, bare: bool = False) -> AbstractContextManager[Connection]:
        """A new connection, connect errors turned into one clear line: SQLAlchemy's, or with
        ``bare`` the driver's behind the same few methods (``dbapi.DbapiConnection``)."""
        if bare:
            return self._connect_bare()  # type: ignore[return-value]
        return open_connection(self.engine, self.settings)

    def connector(self, *, bare: bool) -> Callable[[], AbstractContextManager[Connection]]:
        return lambda: self.connect(bare=bare)

    @contextmanager
    def _connect_bare(self) -> Iterator[DbapiConnection]:
        try:
            opened = self.dialect.dbapi_connect(self.settings, create=True, lock_timeout=self.lock_timeout)
        except Exception as exc:  # noqa: BLE001 - the driver's connect error, whatever its class
            raise connect_error(exc, self.settings) from None
        if opened is None:
            raise AssertionError(f"{self.dialect.name} has no bare-driver connection")  # bare_available said it has
        raw, error = opened
        try:
            conn = DbapiConnection(raw, error, self.dialect)
        except BaseException:
            raw.close()
            raise
        with conn:
            yield conn

    @contextmanager
    def locked(self, *, bare: bool = False, conn: Any = None) -> Iterator[None]:
        """Hold the single-runner lock, on a connection of its own, for the block: ``conn``
        (the caller's, used for nothing else while the lock is held) or a new one."""
        with ExitStack() as stack:
            lock_conn = conn if conn is not None else stack.enter_context(self.connect(bare=bare))
            stack.enter_context(self.dialect.lock(lock_conn, self.lock_timeout, self.connector(bare=bare)))
            yield

    def open_bare(self) -> DbapiConnection | Any | None:
        """A bare driver connection in autocommit, for an ``apply`` to read the history on
        before it decides whether it has anything to do, and then to hold the lock on
        (``locked(conn=...)``): one connection for both. ``None`` where the database does
        not exist yet (a SQLite file); ``NO_QUICK_PATH`` where only SQLAlchemy can connect.
        The caller closes it."""
        opened = self._bare(lock_timeout=self.lock_timeout)
        if opened is None or opened is NO_QUICK_PATH:
            return opened
        raw, error = opened
        try:
            conn = DbapiConnection(raw, error, self.dialect)
            conn.execution_options(isolation_level="AUTOCOMMIT")
        except BaseException:
            raw.close()
            raise
        return conn

    def read_history(self) -> list[HistoryRow] | None:
        """The version table's rows (``None``: no table), with the bare driver where it can."""
        return self._read(retries=False)[0]

    def read_history_and_retries(self) -> tuple[list[HistoryRow] | None, list[Retry]]:
        """The history, and the lock retries the journal recorded (what ``status`` shows)."""
        return self._read(retries=True)

    def _read(self, *, retries: bool) -> tuple[list[HistoryRow] | None, list[Retry]]:
        from baselinr.storage.migrations import journal

        if self._engine is None:
            quick = self.quick_history(retries=retries)
            if quick is not NO_QUICK_PATH:
                return quick if retries else (quick, [])  # type: ignore[no-any-return]
        with self.connect() as conn:
            rows = history.read_history(conn)
            recorded = journal.read_retries(conn) if retries and rows else []
            if conn.in_transaction():
                conn.rollback()
            return rows, recorded

    def _bare(self, lock_timeout: float | None = None) -> tuple[Any, type[Exception]] | Any | None:
        """A bare driver connection and its error class; ``None`` where the database
        does not exist yet; ``NO_QUICK_PATH`` where only SQLAlchemy can connect.
        Not when the config sets engine options: only SQLAlchemy can apply (or refuse) them."""
        if set(self.settings.extra_params) - {"connect_args"}:
            return NO_QUICK_PATH
        try:
            opened = self.dialect.dbapi_connect(self.settings, lock_timeout=lock_timeout)
        except ModuleNotFoundError:
            return NO_QUICK_PATH
        except Exception as exc:  # noqa: BLE001 - the driver's connect error, whatever its class
            raise connect_error(exc, self.settings) from None
        return opened

    def quick_history(self, *, absent: Any = NO_QUICK_PATH, retries: bool = False) -> Any:
        """Read the history with the bare driver; ``NO_QUICK_PATH`` where it cannot, and
        ``absent`` for a database that does not exist yet (a SQLite file). With ``retries``:
        the history and the journal's lock retries, as a pair."""
        opened = self._bare()
        if opened is None:
            return (absent, []) if retries and absent is not NO_QUICK_PATH else absent
        if opened is NO_QUICK_PATH:
            return NO_QUICK_PATH
        conn, error = opened
        try:
            rows = history.read_history_dbapi(conn, error)
            if not retries:
                return rows
            from baselinr.storage.migrations import journal

            return rows, (journal.read_retries_dbapi(conn, error) if rows else [])
        finally:
            conn.close()

    def bare_table_names(self) -> set[str] | Any | None:
        """The lower-case table names, read with the bare driver: ``None`` for a SQLite file
        that does not exist yet; ``NO_QUICK_PATH`` where the bare driver cannot tell."""
        sql = self.dialect.table_names_sql
        if self._engine is not None or sql is None:
            return NO_QUICK_PATH
        try:
            opened = self._bare()
        except Exception:  # noqa: BLE001 - the SQLAlchemy path reports the real error
            return NO_QUICK_PATH
        if opened is None or opened is NO_QUICK_PATH:
            return opened if opened is None else NO_QUICK_PATH
        conn, _ = opened
        try:
            cur = conn.cursor()
            cur.execute(sql)
            tables = {str(r[0]).lower() for r in cur.fetchall()}
            cur.close()
        finally:
            conn.close()
        return tables

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
