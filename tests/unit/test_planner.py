"""The pure planner: status and plans from history rows and a chain, no server.

Chains here are built in memory with ``check_chain``; the dialect objects only
render statements (none of them connects).
"""

from __future__ import annotations

import pytest

from baselinr.errors import MigrationFailed, UsageError
from baselinr.storage.dialects import dialect_for
from baselinr.storage.migrations import planner
from baselinr.storage.migrations.chain import Chain, ChainError, check_chain
from baselinr.storage.migrations.migration import Migration
from baselinr.storage.migrations.results import HistoryRow
from baselinr.storage.version_table import APPLIED, FAILED, RUNNING

SQLITE = dialect_for("sqlite")
MYSQL = dialect_for("mysql")
POSTGRES = dialect_for("postgres")


def _names(logical: str) -> str:
    return logical


def _chain(count: int, *, downs: bool = True, skip_down: int | None = None) -> Chain:
    migrations = [
        Migration(
            v,
            f"step {v}",
            up_sql=f"CREATE TABLE t{v} (id INTEGER); INSERT INTO t{v} VALUES ({v})",
            down_sql=f"DROP TABLE t{v}" if downs and v != skip_down else None,
        )
        for v in range(1, count + 1)
    ]
    return check_chain(migrations, count, "tests.in_memory")


def _applied(*versions: int) -> list[HistoryRow]:
    return [HistoryRow(v, APPLIED, f"step {v}", checksum="c", applied_by="runner") for v in versions]


def test_up_plan_lists_every_missing_version_with_its_statements() -> None:
    plan = planner.up_plan(_chain(3), _applied(1), 3, SQLITE, _names)
    assert plan.direction == "up"
    assert plan.current_version == 1
    assert [s.version for s in plan.steps] == [2, 3]
    assert plan.steps[0].statements == ["CREATE TABLE t2 (id INTEGER)", "INSERT INTO t2 VALUES (2)"]
    assert all(s.transactional for s in plan.steps)  # SQLite has transactional DDL
    assert plan.dialect == "sqlite"


def test_up_plan_from_nothing_defaults_to_the_code_version() -> None:
    plan = planner.plan(_chain(4), [], None, POSTGRES, _names)
    assert (plan.current_version, plan.target_version, plan.direction) == (None, 4, "up")
    assert [s.version for s in plan.steps] == [1, 2, 3, 4]


def test_steps_are_tracked_where_ddl_is_not_transactional() -> None:
    plan = planner.up_plan(_chain(2), [], 2, MYSQL, _names)
    assert [s.transactional for s in plan.steps] == [False, False]


def test_concurrent_index_runs_outside_a_transaction_on_postgres() -> None:
    chain = check_chain([Migration(1, "index", up_sql="CREATE INDEX CONCURRENTLY i ON t (a)")], 1, "tests.in_memory")
    (step,) = planner.up_plan(chain, [], 1, POSTGRES, _names).steps
    assert step.transactional is False


def test_already_at_target_plans_nothing() -> None:
    rows = _applied(1, 2, 3)
    plan = planner.up_plan(_chain(3), rows, 3, SQLITE, _names)
    assert (plan.direction, plan.steps) == ("none", [])
    empty = planner.already_at(_chain(3), rows, 3, "sqlite")
    assert empty is not None and empty.direction == "none" and empty.current_version == 3


def test_already_at_declines_whenever_the_locked_path_must_decide() -> None:
    chain = _chain(3)
    assert planner.already_at(chain, _applied(1, 2), 3, "sqlite") is None  # behind
    assert planner.already_at(chain, _applied(1, 2, 3), 2, "sqlite") is None  # a rollback target
    assert planner.already_at(chain, [], 3, "sqlite") is None  # nothing applied
    failed = [*_applied(1, 2, 3), HistoryRow(4, FAILED)]
    assert planner.already_at(_chain(4), failed[:3], 3, "sqlite") is not None
    assert planner.already_at(_chain(4), failed, 3, "sqlite") is None  # an unfinished row
    stamped = [*_applied(1, 2), HistoryRow(3, APPLIED)]  # no checksum, no runner: the profiler's stamp
    assert planner.already_at(chain, stamped, 3, "sqlite") is None


def test_resume_of_an_interrupted_tracked_row_starts_after_its_done_statements() -> None:
    rows = [*_applied(1), HistoryRow(2, RUNNING, statements_done=1, statements_total=2)]
    plan = planner.up_plan(_chain(3), rows, 3, MYSQL, _names, resume=True)
    assert [(s.version, s.resume_from) for s in plan.steps] == [(2, 1), (3, 0)]


def test_failed_transactional_row_is_simply_run_again() -> None:
    rows = [*_applied(1), HistoryRow(2, FAILED, error_message="boom")]
    plan = planner.up_plan(_chain(2), rows, 2, SQLITE, _names)
    assert [(s.version, s.resume_from) for s in plan.steps] == [(2, 0)]


def test_unfinished_tracked_row_is_refused_without_resume() -> None:
    rows = [*_applied(1), HistoryRow(2, FAILED, statements_done=1, statements_total=2, error_message="boom")]
    with pytest.raises(MigrationFailed) as caught:
        planner.up_plan(_chain(3), rows, 3, MYSQL, _names)
    assert caught.value.message == "Migration v2 failed after 1 of 2 statements: boom."
    assert "baselinr migrate apply --resume" in (caught.value.hint or "")
    assert caught.value.exit_code == 4


def test_interrupted_rollback_is_refused_by_apply_and_named_as_a_rollback() -> None:
    rows = [*_applied(1), HistoryRow(2, RUNNING, statements_done=0, statements_total=1, direction="down")]
    with pytest.raises(MigrationFailed) as caught:
        planner.up_plan(_chain(2), rows, 2, MYSQL, _names)
    assert "while being rolled back" in str(caught.value)
    assert "rollback --target 1 --resume" in (caught.value.hint or "")


def test_rollback_plan_goes_down_newest_first() -> None:
    rows = _applied(1, 2, 3)
    plan = planner.down_plan(_chain(3), rows, 1, SQLITE, _names, locked=False)
    assert plan.direction == "down"
    assert [(s.version, s.direction, s.statements) for s in plan.steps] == [
        (3, "down", ["DROP TABLE t3"]),
        (2, "down", ["DROP TABLE t2"]),
    ]


def test_rollback_resumes_an_interrupted_rollback() -> None:
    rows = [*_applied(1, 2), HistoryRow(3, RUNNING, statements_done=0, statements_total=1, direction="down")]
    plan = planner.down_plan(_chain(3), rows, 2, MYSQL, _names, resume=True, locked=True)
    assert [(s.version, s.resume_from) for s in plan.steps] == [(3, 0)]


def test_rollback_refuses_missing_downs_naming_them() -> None:
    with pytest.raises(UsageError) as caught:
        planner.down_plan(_chain(3, skip_down=2), _applied(1, 2, 3), 0, SQLITE, _names, locked=False)
    assert caught.value.message == "Cannot roll back: v2 has no down migration (down_sql or down_python)."
    assert "before v2" in (caught.value.hint or "")


def test_rollback_above_the_database_is_refused_before_the_lock_and_empty_under_it() -> None:
    rows = _applied(1)
    with pytest.raises(UsageError, match="above the database version v1"):
        planner.down_plan(_chain(3), rows, 3, SQLITE, _names, locked=False)
    assert planner.down_plan(_chain(3), rows, 3, SQLITE, _names, locked=True).direction == "none"


def test_apply_below_the_database_is_refused() -> None:
    with pytest.raises(UsageError, match="below the database version v3") as caught:
        planner.up_plan(_chain(3), _applied(1, 2, 3), 1, SQLITE, _names)
    assert "rollback --target 1" in (caught.value.hint or "")


def test_target_beyond_the_code_names_the_missing_versions() -> None:
    with pytest.raises(ChainError) as caught:
        planner.plan(_chain(3), [], 5, SQLITE, _names)
    assert caught.value.message == "Missing migrations for versions: {4, 5}"
    with pytest.raises(ChainError, match=r"\{4\.\.1000000\}"):
        planner.plan(_chain(3), [], 10**6, SQLITE, _names)
    with pytest.raises(UsageError, match="0 or more"):
        planner.plan(_chain(3), [], -1, SQLITE, _names)


def test_gaps_below_the_database_version_are_refused() -> None:
    with pytest.raises(UsageError) as caught:
        planner.up_plan(_chain(3), _applied(1, 3), 3, SQLITE, _names)
    assert caught.value.message == "Versions {2} are below the database version v3 but not recorded as applied."
    assert "validate" in (caught.value.hint or "")


def test_unadopted_stamp_points_at_repair() -> None:
    rows = [HistoryRow(2, APPLIED)]  # the profiler stamped v2 without running v1 and v2
    with pytest.raises(UsageError) as caught:
        planner.up_plan(_chain(3), rows, 3, SQLITE, _names)
    assert "Versions {1} are below the database version v2" in caught.value.message
    assert "stamped v2" in (caught.value.hint or "") and "repair" in (caught.value.hint or "")
    state = planner.state_of(rows, 3)
    assert (state.current, state.state, state.pending) == (2, "behind", [1, 3])


def test_preexisting_tables_of_planned_versions_are_refused() -> None:
    plan = planner.up_plan(_chain(3), _applied(1), 3, SQLITE, _names)
    planner.refuse_preexisting(plan, {1: ["t1"]})  # not planned: fine
    with pytest.raises(UsageError) as caught:
        planner.refuse_preexisting(plan, {3: ["t3", "t3b"], 2: ["t2"]})
    assert caught.value.message.startswith("t2 of v2 already exists but v2 is not recorded as applied")


def test_state_of_each_kind_of_database() -> None:
    assert planner.state_of([], 3).state == "not_initialized"
    assert planner.state_of(_applied(1, 2, 3), 3).state == "up_to_date"
    assert planner.state_of(_applied(1, 2, 3, 4), 3).state == "ahead"
    behind = planner.state_of(_applied(1), 3)
    assert (behind.state, behind.current, behind.pending) == ("behind", 1, [2, 3])
    failed = planner.state_of([*_applied(1), HistoryRow(2, FAILED)], 3)
    assert failed.state == "failed" and [r.version for r in failed.problems] == [2]


def test_planning_a_thousand_migrations_is_linear_enough() -> None:
    """A set of applied versions, not a list: 1,000 applied rows and a 1,000 chain plan
    in well under the budget a quadratic scan would need (counted, not timed)."""
    chain = _chain(1000, downs=False)
    rows = _applied(*range(1, 1000))
    plan = planner.up_plan(chain, rows, 1000, SQLITE, _names)
    assert [s.version for s in plan.steps] == [1000]
    assert isinstance(planner.history.applied_versions(rows), set)


def test_only_a_python_step_needs_sqlalchemy() -> None:
    from baselinr.storage.migrations.runner import needs_sqlalchemy

    def backfill(conn: object) -> None:
        raise AssertionError("never run here")

    migrations = [
        Migration(1, "sql", up_sql="CREATE TABLE a (id INTEGER)", down_sql="DROP TABLE a"),
        Migration(2, "python up", up_sql="CREATE TABLE b (id INTEGER)", up_python=backfill, down_sql="DROP TABLE b"),
        Migration(3, "python down", up_sql="CREATE TABLE c (id INTEGER)", down_python=backfill),
    ]
    chain = check_chain(migrations, 3, "tests.in_memory")
    assert not needs_sqlalchemy(chain, planner.up_plan(chain, [], 1, SQLITE, _names))
    assert needs_sqlalchemy(chain, planner.up_plan(chain, [], 2, SQLITE, _names))
    assert not needs_sqlalchemy(chain, planner.up_plan(chain, _applied(1, 2), 3, SQLITE, _names))
    assert needs_sqlalchemy(chain, planner.down_plan(chain, _applied(1, 2, 3), 2, SQLITE, _names, locked=False))
    assert not needs_sqlalchemy(chain, planner.down_plan(chain, _applied(1, 2), 1, SQLITE, _names, locked=False))
