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

Round trips: where the dialect ``batches_statements`` (PostgreSQL), the
connection sends BEGIN, COMMIT and ROLLBACK itself and lets them travel with
the engine's own statements, as one multi-statement query: BEGIN goes with the
first statement of the transaction, statements handed to ``defer`` (their
result is not read) go with the next send, at the latest the COMMIT. A
transaction in which nothing was sent sends nothing at all. A migration's own
statement (``execution_options={AS_WRITTEN: True}``, see
``connection.run_statement``) is always sent by itself, exactly as written,
so the server's error for it (its text, its position) is the one it would
give without any of this; anything waiting goes first, in a send of its own.
A failure in a batched send is one of the engine's statements or the COMMIT:
the transaction is rolled back before the error is raised.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from baselinr.storage.dialects import Dialect

# The execution option that marks a migration's own statement: never batched with another.
AS_WRITTEN = "baselinr_as_written"


def defer(conn: Any, statement: str, parameters: Any = None) -> None:
    """Run one of the engine's statements whose result is not read: with the next send on
    a bare connection that batches (inside a transaction), else at once."""
    later = getattr(conn, "defer", None)
    if later is not None:
        later(statement, parameters)
    else:
        conn.exec_driver_sql(statement, parameters)


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
        self._batch = dialect.batches_statements
        self._queue: list[str | bytes] = []  # the engine's statements that go with the next send
        self._begin_queued = False  # this transaction's BEGIN is in the queue: the server has not seen it
        module = sys.modules[type(raw).__module__.split(".")[0]]
        server = getattr(raw, "get_server_info", None)  # PyMySQL
        mariadb = server is not None and "MariaDB" in str(server())
        self.dialect = DriverInfo(str(getattr(module, "paramstyle", "qmark")), mariadb, dialect.dbapi_server_version(raw))
        dialect.prepare_dbapi(raw)
        if self._batch:
            self._driver_autocommit()  # BEGIN and COMMIT are ours to send (and to batch)

    # --- the protocol -------------------------------------------------------

    def exec_driver_sql(
        self, statement: str, parameters: Any = None, execution_options: Mapping[str, Any] | None = None
    ) -> Rows:
        self._autobegin()
        alone = bool(execution_options and execution_options.get(AS_WRITTEN))
        return self._execute(statement, parameters, alone=alone)

    def defer(self, statement: str, parameters: Any = None) -> None:
        """``statement`` (the engine's, its result not read) goes with the next send, at the
        latest the COMMIT; its error is raised there. At once outside a transaction, or where
        the dialect does not batch."""
        if not (self._batch and self._in_tx):
            self.exec_driver_sql(statement, parameters)
            return
        cur = self.raw.cursor()
        try:
            self._queue.append(cur.mogrify(statement, () if parameters is None else parameters))
        finally:
            cur.close()

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
            self._driver_autocommit()
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
        if not self._batch:
            self._in_tx = False
            self._call(self.raw.commit)
            return
        if not self._in_tx:
            return
        queue, untouched = self._take()
        self._in_tx = False
        if untouched and not queue[1:]:
            return  # nothing was sent in this transaction: nothing to commit
        try:
            self._send([*queue, "COMMIT"])
        except self.driver_error:
            self._abandon()
            raise

    def rollback(self) -> None:
        if not self._batch:
            self._in_tx = False
            self._call(self.raw.rollback)
            return
        was = self._in_tx
        _, untouched = self._take()
        self._in_tx = False
        if was and not untouched and not getattr(self.raw, "closed", 0):  # a server gone took it along
            self._send(["ROLLBACK"])

    def close(self) -> None:
        try:
            if self._in_tx:
                self.rollback()
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
        if sql is None:  # drivers that open transactions themselves need nothing
            return
        if self._batch:
            self._queue.append(sql)
            self._begin_queued = True
        else:
            self._execute(sql, None)

    def _driver_autocommit(self) -> None:
        setting = getattr(self.raw, "autocommit", None)
        if callable(setting):  # PyMySQL
            setting(True)
        elif setting is not None:  # psycopg2; sqlite3 (isolation_level None) commits each statement already
            self.raw.autocommit = True

    def _take(self) -> tuple[list[str | bytes], bool]:
        """Empty the queue: what it held, and whether this transaction's BEGIN was still in it."""
        queue, untouched = self._queue, self._begin_queued
        self._queue, self._begin_queued = [], False
        return queue, untouched

    @contextmanager
    def _cursor(self) -> Iterator[Any]:
        """A driver cursor: a driver error in the block is marked (``_mark``), the cursor closed after."""
        cur = self.raw.cursor()
        try:
            yield cur
        except self.driver_error as exc:
            self._mark(exc)
            raise
        finally:
            try:
                cur.close()
            except Exception:  # noqa: BLE001 - the statement's own error matters, not the close
                pass

    def _execute(self, statement: str, parameters: Any, *, alone: bool = False) -> Rows:
        with self._cursor() as cur:
            if self._queue and not alone:
                queue, _ = self._take()
                cur.execute(self._joined(cur, [*queue, cur.mogrify(statement, () if parameters is None else parameters)]))
            else:
                if self._queue:
                    queue, _ = self._take()
                    cur.execute(self._joined(cur, queue))
                cur.execute(statement, () if parameters is None else parameters)
            keys = [d[0] for d in cur.description] if cur.description else []
            rows = [tuple(r) for r in cur.fetchall()] if cur.description else []
        return Rows(rows, keys)

    @staticmethod
    def _joined(cur: Any, parts: Sequence[str | bytes]) -> bytes:
        """One multi-statement query of ``parts`` (statements with their parameters rendered)."""
        return b"; ".join(p if isinstance(p, bytes) else cur.mogrify(p) for p in parts)

    def _send(self, parts: Sequence[str | bytes]) -> None:
        with self._cursor() as cur:
            cur.execute(self._joined(cur, parts))

    def _abandon(self) -> None:
        """After a failed COMMIT send: end what is left of the transaction (nothing if the
        server is gone, or if the COMMIT itself ran and ended it)."""
        try:
            self._send(["ROLLBACK"])
        except self.driver_error:
            pass

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
