"""The DDL lock guard's pure parts: backoff with jitter, and the bounds of its settings."""

from __future__ import annotations

import math
import threading
import time

import pytest

from baselinr.cli import main
from baselinr.storage.migrations.guard import BACKOFF_CAP, DEFAULT_BUDGET, GuardSettings, _Alarms, backoff
from baselinr.storage.migrations.migration import Migration
from baselinr.storage.migrations.results import Blocker, LockRetry


def test_backoff_doubles_is_capped_and_jittered() -> None:
    low = [backoff(n, lambda: 0.0) for n in range(1, 8)]
    high = [backoff(n, lambda: 1.0) for n in range(1, 8)]
    assert low[:3] == [0.25, 0.5, 1.0] and high[:3] == [0.5, 1.0, 2.0]
    assert max(high) == BACKOFF_CAP
    assert all(lo < hi for lo, hi in zip(low, high, strict=True))


@pytest.mark.parametrize("value", [-1, math.nan, math.inf, "2", True])
def test_migration_refuses_a_timeout_out_of_bounds(value: object) -> None:
    with pytest.raises(ValueError, match="lock_timeout"):
        Migration(2, "x", up_sql="SELECT 1", lock_timeout=value)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="statement_timeout"):
        Migration(2, "x", up_sql="SELECT 1", statement_timeout=value)  # type: ignore[arg-type]


def test_migration_timeouts() -> None:
    m = Migration(2, "x", up_sql="SELECT 1", lock_timeout=0.5, statement_timeout=0)
    assert (m.lock_timeout, m.statement_timeout) == (0.5, None)  # 0: no statement bound


@pytest.mark.parametrize("args", [["--ddl-lock-timeout", "nan"], ["--ddl-lock-timeout", "-1"], ["--ddl-lock-tries", "0"]])
def test_cli_bounds(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate", "apply", "-c", "config.yml", *args]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_retry_names_every_blocker() -> None:
    retry = LockRetry(2, "up", 1, 1, 5, 0.4, 2.0, [Blocker(42, "bob", "dashboard", "2026-01-01 00:00:00")], "postgres")
    assert retry.held_by == "PostgreSQL backend 42 (user bob, application dashboard, query started 2026-01-01 00:00:00)"
    assert LockRetry(2, "up", 1, 1, 5, 0.4, 2.0).held_by == "another session"


def test_status_shows_the_journal_retries_of_versions_in_the_history() -> None:
    import json

    from baselinr.cli.render.migrate import retried_line
    from baselinr.storage.migrations.journal import retried
    from baselinr.storage.migrations.results import HistoryRow, RetriedMigration

    blocker = Blocker(4242, "app", "dashboard", "2026-01-01 10:00:00")
    first = LockRetry(2, "up", 1, 1, 5, 0.4, 2.0, [blocker], "postgres")
    second = LockRetry(2, "up", 1, 2, 5, 0.9, 2.0, [], "postgres")
    recorded = [
        (2, "run-a", json.dumps(first.to_dict())),
        (2, "run-a", json.dumps(second.to_dict())),
        (3, "run-b", "written by a release this code cannot read"),
        (4, "run-c", json.dumps(LockRetry(4, "up", 1, 1, 5, 0.4, 2.0).to_dict())),  # v4 has no row: rolled back
    ]
    rows = [HistoryRow(1, "applied"), HistoryRow(2, "applied"), HistoryRow(3, "failed")]
    assert retried(rows, recorded) == [RetriedMigration(2, "applied", [first, second])]
    [shown] = retried(rows, recorded)
    assert retried_line(shown) == (
        "   v2 applied after 2 lock retries (blocked by PostgreSQL backend 4242 "
        "(user app, application dashboard, query started 2026-01-01 10:00:00))"
    )
    failed = RetriedMigration(3, "failed", [first])
    assert retried_line(failed).startswith("   v3 failed after 1 lock timeout (blocked by PostgreSQL backend 4242")


def test_alarms_run_at_their_deadline_in_order_and_cancelled_ones_never() -> None:
    alarms, ran, done = _Alarms(), [], threading.Event()
    alarms.add(0.15, lambda: (ran.append("late"), done.set()))
    cancelled = alarms.add(0.05, lambda: ran.append("cancelled"))
    alarms.add(0.02, lambda: ran.append("early"))
    alarms.cancel(cancelled, wait=1.0)
    assert done.wait(5)
    assert ran == ["early", "late"]


def test_cancel_lets_a_running_callback_finish_first() -> None:
    alarms, started, finished = _Alarms(), threading.Event(), []

    def slow() -> None:
        started.set()
        time.sleep(0.2)
        finished.append(True)

    alarm = alarms.add(0.0, slow)
    assert started.wait(5)
    alarms.cancel(alarm, wait=5.0)
    assert finished == [True]  # its answer belongs to the wait that armed it


def test_one_thread_serves_every_alarm() -> None:
    alarms, before = _Alarms(), threading.active_count()
    ids = [alarms.add(10.0, lambda: None) for _ in range(50)]
    for alarm in ids:
        alarms.cancel(alarm, wait=0.0)
    assert threading.active_count() <= before + 1


def test_by_default_the_tries_are_bounded_by_time_not_a_count() -> None:
    guard = GuardSettings(lock_timeout=2.0)
    assert guard.tries is None and guard.budget == DEFAULT_BUDGET >= 300
    # A reader of minutes is ridden out: the sixth, twentieth, ... try still comes.
    elapsed, attempt = 0.0, 1
    while not guard.gives_up(attempt, elapsed + 2.0, backoff(attempt, lambda: 1.0)):
        elapsed += 2.0 + backoff(attempt, lambda: 1.0)
        attempt += 1
    assert attempt > 20
    # The last try ends within the budget, and a try after it would not.
    assert elapsed + 2.0 <= DEFAULT_BUDGET < elapsed + 2.0 + BACKOFF_CAP + 2.0 + 2.0
    # Asked for a count, the count bounds it, as before.
    bounded = GuardSettings(lock_timeout=2.0, tries=5)
    assert [bounded.gives_up(n, 0.0, 0.0) for n in (4, 5)] == [False, True]
    assert bounded.gives_up(5, 10_000.0, 0.0) and not bounded.gives_up(4, 10_000.0, 0.0)


def test_a_budget_retry_reads_without_a_count() -> None:
    from baselinr.cli.render.migrate import retry_line
    from baselinr_operator.outcome import lock_holder

    blocker = Blocker(42, "bob", "dashboard")
    line = retry_line(LockRetry(2, "up", 1, 7, None, 10.0, 2.0, [blocker], "postgres", DEFAULT_BUDGET))
    assert line.endswith("retry 8 in 10.0 s")
    assert lock_holder(line + "\n") == blocker.describe("postgres")  # the operator's status.lockWait
