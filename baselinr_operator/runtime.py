"""What one operator process keeps in memory, kept on kopf's operator-level ``memo`` (no module globals).

Created by ``handlers.startup`` as ``memo.runtime``; kopf gives every
handler a shallow copy of that memo, so all of them share this one object,
and an operator started again in the same process (as the tests do) starts
from a fresh one. It holds the settings, the database claims, one lock per
resource (a reconcile of a resource never overlaps another of the same
one), the Jobs seen deleted before they finished, whether it leads (``leader``), the
open trace span of each Job it created (tracing on), and the schedule: when each
resource is next looked at (a retry or drift check due, a Job that may be
stuck, an API error to retry). The schedule is run by ``handlers``' own
task, not by ``kopf.timer``: kopf's timers and daemons put a finalizer on
every resource, which would need the right to patch BaselinrSchemas and
block their deletion while the operator is down.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from baselinr_operator.claims import Claims
from baselinr_operator.leader import Leadership
from baselinr_operator.settings import OperatorSettings

if TYPE_CHECKING:
    from baselinr_operator.leader import Elector

Key = tuple[str, str]  # (namespace, name)


@dataclass
class Runtime:
    settings: OperatorSettings
    claims: Claims = field(default_factory=Claims)
    scheduler: asyncio.Task[None] | None = None
    leadership: Leadership = field(default_factory=lambda: Leadership(enabled=False))
    elector: Elector | None = None
    _schedule: dict[Key, datetime] = field(default_factory=dict)
    _locks: dict[Key, threading.Lock] = field(default_factory=dict)
    _deleted: set[Key] = field(default_factory=set)  # unfinished Jobs seen deleted, until their resource took it in
    _own_deletions: set[Key] = field(default_factory=set)  # unfinished Jobs the operator deleted itself
    _guard: threading.Lock = field(default_factory=threading.Lock)
    # The open span of each Job this process created, ended when the Job finishes (tracing on only).
    job_spans: dict[Key, Any] = field(default_factory=dict)

    def lock_for(self, key: Key) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    # --- the schedule ---------------------------------------------------------------

    def schedule(self, key: Key, due: datetime | None) -> None:
        with self._guard:
            if due is None:
                self._schedule.pop(key, None)
            else:
                self._schedule[key] = due

    def take_due(self, now: datetime) -> list[Key]:
        """The resources whose time has come, taken off the schedule."""
        with self._guard:
            due = [k for k, when in self._schedule.items() if when <= now]
            for k in due:
                del self._schedule[k]
        return due

    def reset(self) -> None:
        """Forget claims, schedule and deletions seen (a replica that stopped leading)."""
        with self._guard:
            self._schedule.clear()
            self._deleted.clear()
            self._own_deletions.clear()
        self.claims.clear()

    def forget(self, key: Key) -> None:
        """The resource is gone."""
        self.claims.release(f"{key[0]}/{key[1]}")
        self.schedule(key, None)

    # --- Jobs deleted before they finished -------------------------------------------

    def job_deleted(self, job: Key, gone: bool) -> bool:
        """An unfinished Job is being deleted (``gone``: its deletion is complete); False if the operator did it."""
        with self._guard:
            if job in self._own_deletions:
                if gone:
                    self._own_deletions.discard(job)
                return False
            self._deleted.add(job)
            return True

    def deleting(self, job: Key) -> None:
        """The operator itself deletes this unfinished Job (not "deleted by hand")."""
        with self._guard:
            self._own_deletions.add(job)

    def seen_deleted(self, job: Key) -> bool:
        """Whether ``job`` was seen deleted; the resource takes that in now."""
        with self._guard:
            seen = job in self._deleted
            self._deleted.discard(job)
            return seen
