"""What running a plan reports as it goes: each migration's ``StepResult`` and a backfill's ``BackfillProgress``.

Frozen dataclasses like the rest of ``results`` (which re-exports them and whose
``ApplyResult`` lists the steps), kept apart so that ``status`` and an ``apply``
with nothing to do do not generate their classes at import. Built by the runner
and ``backfill``; rendered by ``baselinr.cli.render``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from baselinr.storage.migrations.results import LockRetry, _Result

__all__ = ["BackfillProgress", "StepResult"]


@dataclass(frozen=True)
class BackfillProgress(_Result):
    """Where a batched backfill of a Python migration stands, after a batch (or at its end)."""

    version: int
    name: str
    table: str
    rows_done: int
    rows_total: int  # the rows there were when it started
    batches: int  # committed so far, over every run of it
    rows_per_second: float  # of this run
    resumed_at: int = 0  # rows an earlier, interrupted run had committed
    finished: bool = False


@dataclass(frozen=True)
class StepResult(_Result):
    version: int
    description: str
    direction: str
    execution_time_ms: int
    skipped: bool = False  # another runner had already done it
    retries: list[LockRetry] = field(default_factory=list)  # lock timeouts it waited out
