"""The DDL lock guard: short lock waits, bounded retries with backoff, and who blocked.

Used by the manager's runner around each migration. A DDL statement that
waits for its table lock (``ALTER TABLE`` behind a long reader) queues every
later writer behind it; with the guard it gives up after ``lock_timeout``
seconds (the dialect sets PostgreSQL's ``lock_timeout`` or MySQL's
``lock_wait_timeout``), the migration's transaction is rolled back (or, where
DDL is not transactional, the timed-out statement is tried again) after a
backoff with jitter, and after ``tries`` timeouts (by default: once another try
would end past a time budget of minutes) the run fails naming the blocking
session. While a statement waits longer than half the lock timeout,
``BlockerWatch`` asks a second connection which sessions block it, since once
the wait has ended the server no longer says.
"""

from __future__ import annotations

import heapq
import itertools
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from baselinr.storage.migrations.results import Blocker

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from baselinr.storage.dialects import Dialect

DEFAULT_LOCK_TIMEOUT = 2.0  # seconds a DDL statement may wait for its lock
# Without a bound on tries (--ddl-lock-tries), a migration is tried again for this long: a reader
# of minutes (a dashboard query) is ridden out, while each try still lets the profiler's writers
# pass within the lock timeout.
DEFAULT_BUDGET = 600.0
DEFAULT_TRIES: int | None = None  # None: the time budget bounds the tries
MAX_TRIES = 100
BACKOFF_BASE = 0.5  # seconds before the second try; doubled for each one after
BACKOFF_CAP = 10.0


@dataclass(frozen=True)
class GuardSettings:
    """The guard of one migration: its lock wait (0: none), tries (``None``: as many as the
    time budget allows), statement bound and time budget (seconds from its first try)."""

    lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    tries: int | None = DEFAULT_TRIES
    statement_timeout: float | None = None
    budget: float = DEFAULT_BUDGET

    def gives_up(self, attempt: int, elapsed: float, delay: float) -> bool:
        """Whether try ``attempt``, which timed out ``elapsed`` seconds after the first try began, is
        the last: out of tries, or (without a bound on tries) another one, after ``delay`` seconds of
        backoff, could not end within the budget."""
        if self.tries is not None:
            return attempt >= self.tries
        return elapsed + delay + self.lock_timeout > self.budget

    @property
    def active(self) -> bool:
        return self.lock_timeout > 0 or self.statement_timeout is not None


def backoff(attempt: int, rng: Callable[[], float] = random.random) -> float:
    """Seconds to wait after try ``attempt`` (1-based) timed out: exponential, capped, with jitter
    (50-100 % of the step), so two runners or a runner and a retrying client do not march in step."""
    step = min(BACKOFF_CAP, BACKOFF_BASE * 2.0 ** (attempt - 1))
    return round(step * (0.5 + 0.5 * rng()), 3)


def _debug(message: str) -> None:
    """Log a failed blocker look (with its exception) at debug level. ``logging`` is
    imported only then: ``status`` and a no-op ``apply`` import this module too."""
    import logging

    logging.getLogger(__name__).debug(message, exc_info=True)


class _Alarms:
    """Callbacks run at their deadlines by one daemon thread: ``threading.Timer`` without a
    thread started and joined per statement (which cost milliseconds each on a busy
    interpreter, most of a 100-migration apply's Python time)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._pending: set[int] = set()
        self._running: int | None = None
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None

    def add(self, delay: float, fn: Callable[[], None]) -> int:
        with self._cond:
            alarm = next(self._ids)
            heapq.heappush(self._heap, (time.monotonic() + delay, alarm, fn))
            self._pending.add(alarm)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="baselinr-blocker-watch", daemon=True)
                self._thread.start()
            self._cond.notify_all()
            return alarm

    def cancel(self, alarm: int, wait: float) -> None:
        """Drop ``alarm``; if its callback is running, let it finish first (up to ``wait`` seconds)."""
        with self._cond:
            self._pending.discard(alarm)
            end = time.monotonic() + wait
            while self._running == alarm and (left := end - time.monotonic()) > 0:
                self._cond.wait(left)

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    while self._heap and self._heap[0][1] not in self._pending:
                        heapq.heappop(self._heap)  # cancelled
                    if not self._heap:
                        self._cond.wait()
                        continue
                    deadline, alarm, fn = self._heap[0]
                    left = deadline - time.monotonic()
                    if left <= 0:
                        heapq.heappop(self._heap)
                        self._pending.discard(alarm)
                        self._running = alarm
                        break
                    self._cond.wait(left)
            try:
                fn()
            except Exception:  # noqa: BLE001 - logged by _debug; a look that fails only leaves the blocker unnamed
                _debug("a blocker look failed")
            finally:
                with self._cond:
                    self._running = None
                    self._cond.notify_all()


_ALARMS = _Alarms()


class BlockerWatch:
    """Finds who blocks the runner's session while one of its statements waits."""

    def __init__(
        self,
        connect: Callable[[], AbstractContextManager[Connection]],
        dialect: Dialect,
        session: int | None,
        lock_timeout: float,
    ) -> None:
        self._connect = connect
        self._dialect = dialect
        self._session = session
        self._delay = max(lock_timeout / 2, 0.05)
        # A blocker has held its lock at least as long as we have waited when we look
        # (half the timeout): asking for the whole timeout missed it at that look.
        self._age = self._delay
        self.found: list[Blocker] = []

    @property
    def watches(self) -> bool:
        """Whether a session is watched (a lock bound is set and the dialect names sessions)."""
        return self._session is not None

    def follow(self, session: int | None) -> None:
        """Watch ``session`` from now on: the server session of the transaction that is open,
        where a transaction pooler may give each transaction another one."""
        if session is not None:
            self._session = session

    def _look(self) -> None:
        if self._session is None:
            return
        try:
            with self._connect() as conn:
                found = self._dialect.blockers(conn, self._session, self._age)
                if conn.in_transaction():
                    conn.rollback()
        except Exception:  # noqa: BLE001 - logged by _debug; the blocker stays unnamed
            _debug("could not read the blocking sessions")
            return
        if found:
            self.found = found

    @contextmanager
    def watching(self) -> Iterator[None]:
        """Run the block; if it is still running after half the lock timeout, look for blockers."""
        if self._session is None:
            yield
            return
        self.found = []  # what an earlier statement's look saw is not this wait's answer
        alarm = _ALARMS.add(self._delay, self._look)
        try:
            yield
        finally:
            # A look in progress finishes first: its answer belongs to this wait (and not to the next one).
            _ALARMS.cancel(alarm, self._delay + 10)

    def take(self) -> list[Blocker]:
        """The blockers seen during the last wait (looked up now if the watch saw none), then forget them."""
        if not self.found:
            self._look()
        found, self.found = self.found, []
        return found
