"""A bare DBAPI connection behind the few SQLAlchemy ``Connection`` methods the engine uses.

The runner, the history module and the dialects' lock, guard and progress
helpers talk to a connection through a small protocol: ``exec_driver_sql``
(with the driver's own paramstyle), ``begin`` / ``commit`` / ``rollback`` /
``in_transaction``, ``execution_options(isolation_level=..., postgresql_readonly=...,
baselinr_write=True)`` and ``dialect.paramstyle`` / ``server_version_info``. A SQLAlchemy connection
satisfies it; ``DbapiConnection`` gives a psycopg2, PyMySQL or sqlite3
connection the same behaviour, so a SQL-only ``apply`` runs on the bare
driver without importing SQLAlchemy (most of its start-up time). The
semantics follow SQLAlchemy's: a transaction begins on the first statement
unless the connection is in autocommit; parameters are always passed to the
driver (so ``%`` in a statement is doubled the same way on both paths); a
driver error that lost the connection is marked ``connection_invalidated``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from baselinr.storage.dialects import Dialect


class Rows:
    """The fetched result of one statement (what the engine reads of SQLAlchemy's ``Result``)."""

    def __init__(self, rows: list[tuple[Any, ...]], keys: Sequence[str]) -> None:
        self._rows = rows
        self._keys = list(keys)

    def fetchall(self) -> list[tuple[Any, ...]]:
        return list(self._rows)

    def first(self) -> tuple[Any, ...] | None:
        return self._rows[0] if self._rows else None

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None

    def scalar_one(self) -> Any:
        if len(self._rows) != 1:
            raise LookupError(f"expected one row, got {len(self._rows)}")
        return self._rows[0][0]

    def keys(self) -> list[str]:
        return list(self._keys)


class DriverInfo:
    """What the engine asks of ``conn.dialect``: the driver's paramstyle, MariaDB or not, the server's version."""

    def __init__(self, paramstyle: str, is_mariadb: bool, server_version_info: tuple[int, ...] | None = None) -> None:
        self.paramstyle = paramstyle
        self.is_mariadb = is_mariadb
        self.server_version_info = server_version_info


class DbapiConnection:
    """A bare driver connection with SQLAlchemy's transaction and execution semantics."""

    def __init__(self, raw: Any, error: type[Exception], dialect: Dialect) -> None:
        self.raw = raw
        self.driver_error = error
        self._dialect = dialect
        self._autocommit = False
        self._write = False
        self._in_tx = False
        module = sys.modules[type(raw).__module__.split(".")[0]]
        server = getattr(raw, "get_server_info", None)  # PyMySQL
        mariadb = server is not None and "MariaDB" in str(server())
        self.dialect = DriverInfo(str(getattr(module, "paramstyle", "qmark")), mariadb, dialect.dbapi_server_version(raw))
        dialect.prepare_dbapi(raw)

    # --- the protocol -------------------------------------------------------

    def exec_driver_sql(self, statement: str, parameters: Any = None) -> Rows:
        self._autobegin()
        return self._execute(statement, parameters)

    def execution_options(
        self,
        *,
        isolation_level: str | None = None,
        postgresql_readonly: bool | None = None,
        baselinr_write: bool | None = None,
    ) -> DbapiConnection:
        if baselinr_write is not None:
            self._write = baselinr_write
        if isolation_level not in (None, "AUTOCOMMIT") or postgresql_readonly is not None:
            if self._in_tx:
                self.rollback()
            self._dialect.set_dbapi_isolation(self.raw, isolation_level, readonly=bool(postgresql_readonly))
        if isolation_level == "AUTOCOMMIT":
            if self._in_tx:
                self.rollback()
            self._autocommit = True
            setting = getattr(self.raw, "autocommit", None)
            if callable(setting):  # PyMySQL
                setting(True)
            elif setting is not None:  # psycopg2; sqlite3 (isolation_level None) commits each statement already
                self.raw.autocommit = True
        return self

    @contextmanager
    def begin(self) -> Iterator[DbapiConnection]:
        """One transaction: committed when the block ends, rolled back when it raises."""
        self._autobegin()
        try:
            yield self
        except BaseException:
            if self._in_tx:
                self.rollback()
            raise
        if self._in_tx:
            self.commit()

    def in_transaction(self) -> bool:
        return self._in_tx

    def commit(self) -> None:
        self._in_tx = False
        self._call(self.raw.commit)

    def rollback(self) -> None:
        self._in_tx = False
        self._call(self.raw.rollback)

    def close(self) -> None:
        try:
            if self._in_tx:
                self.raw.rollback()
        except Exception:  # noqa: BLE001 - closing a connection the server dropped
            pass
        finally:
            self._in_tx = False
            self.raw.close()

    def __enter__(self) -> DbapiConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- internals ------------------------------------------------------------

    def _autobegin(self) -> None:
        if self._autocommit or self._in_tx:
            return
        self._in_tx = True
        sql = self._dialect.begin_sql(self._write)
        if sql is not None:  # drivers that open transactions themselves need nothing
            self._execute(sql, None)

    def _execute(self, statement: str, parameters: Any) -> Rows:
        cur = self.raw.cursor()
        try:
            cur.execute(statement, () if parameters is None else parameters)
            keys = [d[0] for d in cur.description] if cur.description else []
            rows = [tuple(r) for r in cur.fetchall()] if cur.description else []
        except self.driver_error as exc:
            self._mark(exc)
            raise
        finally:
            try:
                cur.close()
            except Exception:  # noqa: BLE001 - the statement's own error matters, not the close
                pass
        return Rows(rows, keys)

    def _call(self, fn: Any) -> None:
        try:
            fn()
        except self.driver_error as exc:
            self._mark(exc)
            raise

    def _mark(self, exc: BaseException) -> None:
        """Flag an error after which the connection is gone, as SQLAlchemy does: psycopg2 sets
        ``closed``, PyMySQL clears ``open``."""
        if getattr(self.raw, "closed", 0) or getattr(self.raw, "open", True) is False:
            exc.connection_invalidated = True  # type: ignore[attr-defined]
