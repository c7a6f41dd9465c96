"""Test hook: kill the process at a named point of a tracked migration.

Called by ``MigrationManager._run_tracked`` at every statement boundary, on
both sides of each progress write, and by ``backfill`` around each batch's
commit. When ``BASELINR_TEST_KILL_AT`` names the point (e.g. ``v2:up:statement-3:before-progress``), the process ends at once
with ``os._exit`` (no cleanup, no lock release, no rollback: as a SIGKILL or
an OOM kill would), so tests can check that every such point is recoverable.
Points: ``vN:DIR:before-statements``, ``vN:DIR:statement-K:before-progress``,
``vN:DIR:statement-K:after-progress``, ``vN:DIR:before-finish`` (no Python
step), ``vN:DIR:python:before-commit`` and ``vN:DIR:python:after-commit``
(a Python step, which commits together with the version's final record),
and in a Python step's ``backfill`` (``backfill.py``)
``vN:DIR:backfill-batch-K:before-commit`` / ``...:after-commit`` around the
commit of its K-th batch (counted over every run of it).
Unset (always, outside tests) it costs one dictionary lookup.
"""

from __future__ import annotations

import os
import sys

ENV = "BASELINR_TEST_KILL_AT"
KILLED = 137  # the exit status a SIGKILL'd process reports to a shell


def kill_point(name: str) -> None:
    if os.environ.get(ENV) == name:
        sys.stdout.flush()
        os._exit(KILLED)
