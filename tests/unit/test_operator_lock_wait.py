"""The operator's "waiting for a lock held by ..." status: reading the engine's line, and the planner's use of it.

The log lines are produced by the engine's own renderer (``retry_line`` of ``baselinr.cli.render.migrate`` over
real ``LockRetry``/``Blocker`` results), so a change of the engine's wording
breaks these tests rather than the status silently staying empty. The same
path against a real API server, node agent and PostgreSQL reader is in
``tests/e2e/test_operator_lock_wait.py``.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from baselinr.cli.render.migrate import retry_line
from baselinr.storage.migrations.results import Blocker, LockRetry
from baselinr_operator.outcome import JobOutcome, lock_holder, running_pod
from baselinr_operator.planner import Facts, Plan, plan
from baselinr_operator.settings import OperatorSettings
from baselinr_operator.spec import parse_spec

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
SPEC = parse_spec({"targetVersion": 3, "configSecretRef": {"name": "s"}, "backup": {"mode": "Skip"}})
BLOCKER = Blocker(4242, user="analyst", application="dashboard", query_start="2024-01-01 00:00:00+00")


def retry(attempt: int = 1, blockers: list[Blocker] | None = None) -> LockRetry:
    return LockRetry(3, "up", 1, attempt, 5, 1.3, 2.0, [BLOCKER] if blockers is None else blockers, "postgres")


def step(status: dict[str, Any], job: JobOutcome | None, holder: str | None, now: datetime = T0) -> Plan:
    return plan(Facts("db", 1, SPEC, status, now, job=job, lock_holder=holder), OperatorSettings())


def migrating() -> dict[str, Any]:
    p = step({"observedGeneration": -1, "currentVersion": 2}, None, None)
    assert p.create_step == "Migrate"
    return p.status


def test_the_holder_is_read_from_the_engines_own_line() -> None:
    log = "\n".join(["Applying v3...", retry_line(retry(1)), retry_line(retry(2))]) + "\n"
    assert lock_holder(log) == BLOCKER.describe("postgres")
    assert (
        lock_holder(log) == "PostgreSQL backend 4242 (user analyst, application dashboard, query started 2024-01-01 00:00:00+00)"
    )
    two = retry(1, [BLOCKER, Blocker(7, user="etl")])
    assert lock_holder(retry_line(two)) == f"{BLOCKER.describe('postgres')}; {Blocker(7, user='etl').describe('postgres')}"
    assert lock_holder(retry_line(retry(1, []))) == "another session"


def test_anything_else_in_the_log_never_reaches_the_status() -> None:
    assert lock_holder("") is None
    assert lock_holder("connecting to postgres://u:secret@db/x\nERROR: relation missing\n") is None
    forged = ": waiting for a lock held by password=hunter2, retry 1/5 in 1.0 s"
    assert lock_holder(forged) is None
    assert lock_holder("x" * 10_000) is None


def test_the_running_pod_of_the_job() -> None:
    pods = [
        {"metadata": {"name": "old"}, "status": {"containerStatuses": [{"name": "baselinr", "state": {"terminated": {}}}]}},
        {"metadata": {"name": "now"}, "status": {"containerStatuses": [{"name": "baselinr", "state": {"running": {}}}]}},
    ]
    assert running_pod(pods, "baselinr") == "now"
    assert running_pod(pods[:1], "baselinr") is None


def test_status_shows_the_holder_while_the_job_waits_and_clears_it_when_it_ends() -> None:
    status = migrating()
    running = JobOutcome("db-migrate-v3-1", finished=False, ran=True)
    holder = BLOCKER.describe("postgres")
    waiting = step(status, running, holder)
    assert waiting.status["lockWait"] == {"job": "db-migrate-v3-1", "heldBy": holder, "since": "2024-01-01T00:00:00Z"}
    assert waiting.status["message"].endswith(f"waiting for a lock held by {holder}")
    reconciling = waiting.draft.condition("Reconciling")
    assert reconciling is not None and (reconciling["status"], reconciling["reason"]) == ("True", "WaitingForLock")
    assert [e.reason for e in waiting.events] == ["WaitingForLock"]
    # Still waiting a little later: the same wait (since unchanged), no second Event, nothing to write.
    later = step(waiting.status, running, holder, T0 + timedelta(seconds=5))
    assert later.events == [] and later.draft.patch() == {}
    # The Job ends: the wait is gone from the status (a merge patch removes it).
    finished = JobOutcome("db-migrate-v3-1", True, True, 0, {"command": "migrate", "current_version": 3, "applied": [3]},
                          "", T0, T0 + timedelta(seconds=9))  # fmt: skip
    done = step(later.status, finished, None)
    assert "lockWait" not in done.status and done.draft.patch()["lockWait"] is None
    assert done.status["phase"] == "Ready"


def test_a_wait_no_longer_in_the_log_while_the_job_runs_is_cleared() -> None:
    running = JobOutcome("db-migrate-v3-1", finished=False, ran=True)
    waiting = step(migrating(), running, BLOCKER.describe("postgres"))
    over = step(waiting.status, running, None)
    assert "lockWait" not in over.status and over.status["message"] == "Migrating to v3 (Job db-migrate-v3-1)"
    reconciling = over.draft.condition("Reconciling")
    assert reconciling is not None and reconciling["reason"] == "MigrationRunning"


def test_a_failed_job_clears_the_wait_too() -> None:
    running = JobOutcome("db-migrate-v3-1", finished=False, ran=True)
    waiting = step(migrating(), running, BLOCKER.describe("postgres"))
    result = {"command": "migrate", "exit_code": 4, "error": "gave up waiting for a lock", "current_version": 2}
    failed = step(waiting.status, JobOutcome("db-migrate-v3-1", True, False, 4, result, "", T0, T0), None)
    assert "lockWait" not in failed.status and failed.status["phase"] == "Failed"
