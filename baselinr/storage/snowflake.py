"""The Snowflake migration lock: a lease row with an owner and an expiry.

Used by ``SnowflakeDialect.lock`` (``baselinr.storage.dialects``). Snowflake
has no advisory locks and commits DDL implicitly, so one runner at a time is
enforced with a row in ``_baselinr_migration_lock``:

* The table is created together with its single row by one
  ``CREATE TABLE IF NOT EXISTS … AS SELECT`` (Snowflake does not enforce
  primary keys, so two runners racing on an ``INSERT`` could add two rows).
* A runner takes the lease with one conditional ``UPDATE`` that succeeds
  only if the row is free, expired, or already ours; Snowflake serialises
  DML on a table, and the runner reads the owner back to confirm it won.
  Expiry is compared with the database's clock, never the runners'.
* While held, a heartbeat thread (on its own connection) pushes the expiry
  forward every third of the lease, so a crashed runner's lease simply runs
  out and the next runner takes it over.
* On timeout the error says who holds it and until when.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

# Not "baselinr_*": validate and backup treat those as Baselinr data tables.
LOCK_TABLE = "_baselinr_migration_lock"
DEFAULT_LEASE_SECONDS = 60

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LeaseHolder:
    owner: str
    expires_at: Any

    def __str__(self) -> str:
        until = getattr(self.expires_at, "isoformat", lambda **_: str(self.expires_at))(sep=" ", timespec="seconds")
        return f"{self.owner} until {until}"


def create_table_sql(name: str) -> str:
    """The lock table, created with its one row in the same statement."""
    return (
        f"CREATE TABLE IF NOT EXISTS {LOCK_TABLE} "
        "(lock_name VARCHAR(100), owner VARCHAR(255), acquired_at TIMESTAMP_TZ, expires_at TIMESTAMP_TZ) "
        f"AS SELECT '{name}', CAST(NULL AS VARCHAR(255)), CAST(NULL AS TIMESTAMP_TZ), CAST(NULL AS TIMESTAMP_TZ)"
    )


TAKE_SQL = (
    f"UPDATE {LOCK_TABLE} SET owner = :owner, acquired_at = CURRENT_TIMESTAMP(), "
    "expires_at = DATEADD(second, :lease, CURRENT_TIMESTAMP()) "
    "WHERE lock_name = :name AND (owner IS NULL OR owner = :owner OR expires_at < CURRENT_TIMESTAMP())"
)
RENEW_SQL = (
    f"UPDATE {LOCK_TABLE} SET expires_at = DATEADD(second, :lease, CURRENT_TIMESTAMP()) "
    "WHERE lock_name = :name AND owner = :owner"
)
RELEASE_SQL = f"UPDATE {LOCK_TABLE} SET owner = NULL, expires_at = NULL WHERE lock_name = :name AND owner = :owner"
HOLDER_SQL = f"SELECT owner, expires_at FROM {LOCK_TABLE} WHERE lock_name = :name"


class Lease:
    """One runner's attempt at the lease named ``name`` on connection ``conn``."""

    def __init__(
        self,
        conn: Connection,
        name: str,
        runner: str,
        *,
        lease_seconds: int = DEFAULT_LEASE_SECONDS,
        connect: Callable[[], Connection] | None = None,
    ) -> None:
        from sqlalchemy.exc import DBAPIError

        self.conn = conn
        self.name = name
        # A token per attempt: two threads of one process are two owners.
        self.owner = f"{runner} [{uuid.uuid4().hex[:8]}]"[:255]
        self.lease_seconds = max(int(lease_seconds), 3)
        self._connect = connect or conn.engine.connect
        self._errors = DBAPIError
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost = False

    def _params(self, **extra: Any) -> dict[str, Any]:
        return {"name": self.name, "owner": self.owner, **extra}

    def ensure_table(self) -> None:
        self.conn.exec_driver_sql(create_table_sql(self.name))

    def try_take(self) -> bool:
        from sqlalchemy import text

        try:
            self.conn.execute(text(TAKE_SQL), self._params(lease=self.lease_seconds))
            holder = self.holder()
        except self._errors as exc:
            if not is_contention(exc):
                raise
            # A runner took it at the same moment and won the write: not ours this time.
            return False
        return holder is not None and holder.owner == self.owner

    def holder(self) -> LeaseHolder | None:
        from sqlalchemy import text

        row = self.conn.execute(text(HOLDER_SQL), self._params()).first()
        if row is None or row[0] is None:
            return None
        return LeaseHolder(str(row[0]), row[1])

    def release(self) -> None:
        from sqlalchemy import text

        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.conn.execute(text(RELEASE_SQL), self._params())

    def start_heartbeat(self) -> None:
        self._thread = threading.Thread(target=self._beat, name=f"{LOCK_TABLE} heartbeat", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        from sqlalchemy import text

        interval = self.lease_seconds / 3
        try:
            with self._connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT")
                while not self._stop.wait(interval):
                    renewed = conn.execute(text(RENEW_SQL), self._params(lease=self.lease_seconds)).rowcount
                    if renewed == 0:
                        self.lost = True
                        log.warning("The migration lease %s was taken over by another runner", self.name)
                        return
        except Exception as exc:  # noqa: BLE001 - a heartbeat must never kill the run; the lease then expires
            log.warning("The migration lease heartbeat stopped: %s", exc.__class__.__name__)


def is_contention(exc: BaseException) -> bool:
    """True for the errors two writers racing on the lock row may get (lock waits, write conflicts)."""
    text = str(getattr(exc, "orig", exc)).lower()
    return any(word in text for word in ("conflict", "lock", "deadlock", "aborted"))


@contextmanager
def hold(lease: Lease, poll: Callable[[Callable[[], bool], Callable[[], str | None]], None]) -> Iterator[Lease]:
    """Take ``lease`` (``poll`` retries ``try_take`` until its timeout), heartbeat, release."""

    def holder() -> str | None:
        h = lease.holder()
        return str(h) if h else None

    lease.ensure_table()
    poll(lease.try_take, holder)
    lease.start_heartbeat()
    try:
        yield lease
    except BaseException:
        # The block's error is the one to report; a release that fails too
        # (connection lost) leaves the lease to run out on its own.
        try:
            lease.release()
        except Exception:
            log.debug("Could not release the migration lease; it expires on its own", exc_info=True)
        raise
    lease.release()
