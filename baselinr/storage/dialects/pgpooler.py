"""PostgreSQL's single-runner lock, as it holds whatever sits between us and the server.

Called by ``PostgresDialect.lock``. Many databases are reached only through
PgBouncer, and a session-level advisory lock does not survive that: in
transaction pooling each transaction may run on another server connection,
so the lock is granted to whichever one ran ``pg_try_advisory_lock``, other
runners' transactions then run on that very connection (and "hold" it too),
and it stays granted after we end, until the pooler closes that connection.

The lock is therefore transaction-scoped, held by a transaction kept open on a
dedicated connection for the whole run:

* Taking it: ``BEGIN`` and ``pg_try_advisory_xact_lock`` (one round trip); when
  another runner holds it, ``ROLLBACK``, close the connection and poll again
  with backoff on a new one: a waiting runner holds no server connection of the
  pooler between tries (in session pooling, a client's connection keeps one),
  so a small pool still serves the runner that holds the lock.
* A pooler never hands a connection that is inside a transaction to another
  client, in session or transaction pooling: the lock stays with our runner.
* It ends with the transaction: ``ROLLBACK`` at the end of the run; a runner
  that dies (even by SIGKILL) closes its connection, and the server, or the
  pooler (which never reuses a server connection its client left inside a
  transaction), ends the transaction, so no lock outlives its runner.
* The transaction runs in READ COMMITTED and reads nothing after taking the
  lock, so it holds no snapshot: ``CREATE INDEX CONCURRENTLY`` on another
  connection does not wait for it, and it holds back no vacuum. Its
  ``idle_in_transaction_session_timeout`` is turned off (for this transaction
  only), so the server does not end it while the migrations run elsewhere.
* Statement pooling cannot keep a transaction open: PgBouncer closes the
  connection once the ``BEGIN`` has run, which is reported as one line naming the mode.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any

from baselinr.errors import ConfigError
from baselinr.storage.dialects.base import Reconnect, _release

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from baselinr.storage.dialects.postgres import PostgresDialect

# One round trip: the transaction, its idle bound lifted, the lock tried.
TAKE = (
    "BEGIN ISOLATION LEVEL READ COMMITTED; SET LOCAL idle_in_transaction_session_timeout = 0; "
    "SELECT pg_try_advisory_xact_lock(%(k)s)"
)
HOLDER = (
    "SELECT a.pid, a.application_name, a.client_addr FROM pg_locks l "
    "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
    "AND l.granted AND l.classid = 0 AND l.objid = %(k)s"
)
# What libpq says when the other end closed the socket without a word from the server
# (a server shutting down sends its reason first): what PgBouncer does in statement pooling.
_CLOSED = "server closed the connection unexpectedly"

STATEMENT_POOLING = (
    "The connection closed when the migration lock opened a transaction, as PgBouncer does in "
    "statement pooling (pool_mode = statement): migrations need transactions."
)
STATEMENT_POOLING_HINT = (
    "Point storage.connection at a pooler in transaction or session pooling, or at PostgreSQL itself."
)


def take(conn: Connection, params: dict[str, Any]) -> bool:
    """Open the lock's transaction on ``conn`` (in autocommit) and try the lock in it; statement
    pooling, which cannot keep a transaction open, is refused here."""
    try:
        return bool(conn.exec_driver_sql(TAKE, params).scalar())
    except Exception as exc:
        if getattr(exc, "connection_invalidated", False) and _CLOSED in str(getattr(exc, "orig", None) or exc):
            raise ConfigError(STATEMENT_POOLING, hint=STATEMENT_POOLING_HINT) from None
        raise


class _Attempts:
    """Tries to take the lock: first on the caller's connection, then, where ``reconnect`` is
    given, each time on a new one, closing the last (the caller's too) before the wait."""

    def __init__(self, conn: Connection, reconnect: Reconnect | None, params: dict[str, Any]) -> None:
        conn.execution_options(isolation_level="AUTOCOMMIT")
        self.conn: Connection | None = conn
        self.opened: AbstractContextManager[Connection] | None = None  # the one we opened, if any
        self.reconnect = reconnect
        self.params = params

    def _connection(self) -> Connection:
        if self.conn is None:
            assert self.reconnect is not None
            self.opened = self.reconnect()
            self.conn = self.opened.__enter__()
            self.conn.execution_options(isolation_level="AUTOCOMMIT")
        return self.conn

    def try_once(self) -> bool:
        conn = self._connection()
        if take(conn, self.params):
            return True
        conn.exec_driver_sql("ROLLBACK")
        if self.reconnect is not None:
            # Wait holding no connection: in session pooling each one keeps a server connection
            # of a small pool, which the runner that holds the lock may need for its migrations.
            self.close()
        return False

    def held_by(self) -> str | None:
        conn = self._connection()
        try:
            row: Any = conn.exec_driver_sql(HOLDER, self.params).first()
        finally:
            if self.reconnect is not None:
                self.close()
        return f"PostgreSQL backend {row[0]} ({row[1] or 'no name'})" if row else None

    def release(self) -> None:
        try:
            if self.conn is not None:
                self.conn.exec_driver_sql("ROLLBACK")
        finally:
            if self.opened is not None:
                self.close()

    def close(self) -> None:
        conn, opened, self.conn, self.opened = self.conn, self.opened, None, None
        if opened is not None:
            opened.__exit__(None, None, None)
        elif conn is not None:
            conn.close()  # the caller's: closing it again when its block ends does nothing


@contextmanager
def hold_lock(dialect: PostgresDialect, conn: Connection, timeout: float, reconnect: Reconnect | None) -> Iterator[None]:
    """Hold ``dialect``'s migration lock for the block, on ``conn`` (a connection used for nothing
    else) or, when it is not free at first and ``reconnect`` is given, on a new one of those."""
    attempts = _Attempts(conn, reconnect, {"k": dialect.lock_key})
    try:
        dialect._poll(attempts.try_once, timeout, attempts.held_by)
    except BaseException:
        if attempts.opened is not None:
            attempts.close()
        raise
    with _release(attempts.release):
        yield
