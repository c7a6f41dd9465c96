"""``drift.diff_snapshots``, the comparison behind ``migrate test``'s "schema before" check: every
way two reflected schemas differ is one typed difference, and equal schemas give none."""

from __future__ import annotations

from dataclasses import replace

from baselinr.storage.migrations.drift import diff_snapshots as diff
from baselinr.storage.reflection import TableShape

RUNS = TableShape(
    "baselinr_runs",
    {"run_id": ("run_id", "VARCHAR(36)", False), "status": ("status", "VARCHAR(20)", True)},
    ("run_id",),
    frozenset(),
    {"idx_runs_status": ("idx_runs_status", ("status",), False)},
)


def rows(before: dict[str, TableShape], after: dict[str, TableShape]) -> list[tuple[str, str, str, str, str]]:
    return [(d.kind, d.table, d.object, d.expected, d.found) for d in diff(before, after)]


def test_equal_schemas_have_no_difference() -> None:
    assert diff({"baselinr_runs": RUNS}, {"baselinr_runs": replace(RUNS)}) == []


def test_tables_columns_and_indexes_both_ways() -> None:
    after = replace(
        RUNS,
        columns={**RUNS.columns, "note": ("note", "TEXT", True), "status": ("status", "VARCHAR(10)", False)},
        indexes={"idx_other": ("idx_other", ("run_id", "status"), True)},
        unique=frozenset({("status",)}),
    )
    assert rows({"baselinr_runs": RUNS, "baselinr_gone": replace(RUNS, name="baselinr_gone")}, {"baselinr_runs": after}) == [
        ("missing_table", "baselinr_gone", "", "present", "absent"),
        ("extra_column", "baselinr_runs", "note", "absent", "TEXT"),
        ("column_type", "baselinr_runs", "status", "VARCHAR(20)", "VARCHAR(10)"),
        ("column_nullable", "baselinr_runs", "status", "NULL", "NOT NULL"),
        ("extra_index", "baselinr_runs", "UNIQUE (status)", "absent", "present"),
        ("extra_index", "baselinr_runs", "idx_other", "absent", "UNIQUE (run_id, status)"),
        ("missing_index", "baselinr_runs", "idx_runs_status", "(status)", "absent"),
    ]


def test_an_index_on_other_columns_and_a_new_primary_key() -> None:
    after = replace(RUNS, primary_key=("run_id", "status"), indexes={"idx_runs_status": ("idx_runs_status", ("run_id",), False)})
    assert rows({"baselinr_runs": RUNS}, {"baselinr_runs": after, "baselinr_new": replace(RUNS, name="baselinr_new")}) == [
        ("extra_table", "baselinr_new", "", "absent", "present"),
        ("primary_key", "baselinr_runs", "", "run_id", "run_id, status"),
        ("index_columns", "baselinr_runs", "idx_runs_status", "(status)", "(run_id)"),
    ]
