"""What one operator process keeps in memory, kept on kopf's operator-level ``memo`` (no module globals).

Created by ``handlers.startup`` as ``memo.runtime``; kopf gives every
handler a shallow copy of that memo, so all of them share this one object,
and an operator started again in the same process (as the tests do) starts
from a fresh one. It holds the settings, the database claims, one lock per
resource (a reconcile of a resource never overlaps another of the same
one), the Jobs seen deleted before they finished, whether it leads (``leader``), the
open trace span of each Job it created (tracing on), the version of each
resource that the operator's own last status write made (its watch event, the
echo of that write, needs no reconcile: ``own_echo``), the finished Jobs
already taken in (the Job controller writes a finished Job again), and the schedule: when each
resource is next looked at (a retry or drift check due, a Job that may be
stuck, an API error to retry). The schedule is run by ``handlers``' own
task, not by ``kopf.timer``: kopf's timers and daemons put a finalizer on
every resource, which would need the right to patch BaselinrSchemas and
block their deletion while the operator is down.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from baselinr import tracing
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
    _echoes: dict[Key, str] = field(default_factory=dict)  # resourceVersion of the own last status write, see own_echo
    _finished_jobs: set[Key] = field(default_factory=set)  # finished Jobs whose owner was reconciled, until deleted
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

    def take_due(self, now: datetime) -> Iterator[Key]:
        """The resources whose time has come, each taken off the schedule when the caller gets to it.

        The caller reconciles them one after the other: one that a reconcile meanwhile moved later or
        cleared (its Job finished) is passed over, not read back for nothing.
        """
        with self._guard:
            due = [k for k, when in self._schedule.items() if when <= now]
        for key in due:
            with self._guard:
                when = self._schedule.get(key)
                if when is None or when > now:
                    continue
                del self._schedule[key]
            yield key

    def reset(self) -> None:
        """Forget claims, schedule and deletions seen (a replica that stopped leading)."""
        with self._guard:
            self._schedule.clear()
            self._deleted.clear()
            self._own_deletions.clear()
            self._echoes.clear()
            self._finished_jobs.clear()
        self.claims.clear()

    def forget(self, key: Key) -> None:
        """The resource is gone."""
        self.claims.release(f"{key[0]}/{key[1]}")
        self.schedule(key, None)
        with self._guard:
            self._echoes.pop(key, None)

    # --- the echoes of the operator's own status writes ---------------------------------

    def wrote(self, key: Key, read: Mapping[str, Any], written: Mapping[str, Any] | None) -> None:
        """A status write of the resource ``read`` (as planned from) came back as ``written``."""
        version = own_echo(read, written)
        with self._guard:
            if version is None:
                self._echoes.pop(key, None)
            else:
                self._echoes[key] = version

    def is_echo(self, key: Key, version: str | None) -> bool:
        """Whether ``version`` of the resource is the one the operator's own last status write made."""
        with self._guard:
            return version is not None and self._echoes.get(key) == version

    # --- finished Jobs -----------------------------------------------------------------

    def job_finished_first(self, job: Key) -> bool:
        """True the first time a finished Job is seen (its owner is reconciled then), False for its later events."""
        with self._guard:
            first = job not in self._finished_jobs
            self._finished_jobs.add(job)
            return first

    def finished_job_gone(self, job: Key) -> None:
        with self._guard:
            self._finished_jobs.discard(job)

    # --- the trace spans of the Jobs this process created ------------------------------

    def job_span_starts(self, namespace: str, job: str, step: str, target: int) -> tuple[Any, dict[str, str] | None]:
        """The span of a Job about to be created (open until it finishes) and the environment that hands
        it to the Job's Pod (``TRACEPARENT`` and the operator's ``OTEL_*``); ``(None, None)`` untraced."""
        opened, traceparent = tracing.open_span(f"job {step.lower()}", job=job, step=step, target=target)
        if opened is None or traceparent is None:
            return None, None
        self.job_spans[(namespace, job)] = opened
        return opened, {**dict(self.settings.trace_env), "TRACEPARENT": traceparent}

    def job_span_ends(self, namespace: str, outcome: Any) -> None:
        """A Job this process created has finished: its span ends (one of another process's is not known here)."""
        opened = self.job_spans.pop((namespace, outcome.name), None)
        tracing.close_span(opened, failed=not outcome.succeeded, succeeded=outcome.succeeded, exit_code=outcome.exit_code)

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


def own_echo(read: Mapping[str, Any], written: Mapping[str, Any] | None) -> str | None:
    """The resourceVersion of ``written`` when it differs from ``read`` by the status write alone, else None.

    A reconcile plans from ``read`` and writes status; the watch event of that write then shows what
    the plan already took in, so reconciling it again would only read the same state back (a get of the
    resource, its Job and Pods). Anything else the planner reads (the spec, by its generation; the
    annotations, the retry token among them; a deletion) changed in between means: not an echo.
    """
    if not written:
        return None
    before, after = read.get("metadata") or {}, written.get("metadata") or {}
    for field_ in ("uid", "generation", "annotations", "deletionTimestamp"):
        if before.get(field_) != after.get(field_):
            return None
    version = after.get("resourceVersion")
    return str(version) if version else None
