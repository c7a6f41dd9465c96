"""``validate`` reflects the live schema in batches (one query per kind, not per table)
and finds exactly what the per-table inspector finds, on a real PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, inspect

from baselinr.storage.migrations.drift import compare
from baselinr.storage.migrations.manager import MigrationManager
from baselinr.storage.reflection import Reflection
from tests.conftest import make_database


def _broken(tmp_path: Path, request: pytest.FixtureRequest) -> MigrationManager:
    db = make_database("postgres", tmp_path, request)
    mgr = MigrationManager.from_config(str(db.config))
    mgr.apply()
    with mgr.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE baselinr_events DROP COLUMN metric_name")
        conn.exec_driver_sql("DROP INDEX idx_runs_dataset_profiled")
        conn.exec_driver_sql("CREATE INDEX idx_extra ON baselinr_results (run_id)")
        conn.exec_driver_sql("ALTER TABLE baselinr_lineage ADD COLUMN note TEXT")
    return mgr


def test_validate_reflects_all_tables_in_a_few_queries(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    mgr = _broken(tmp_path, request)
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(mgr.engine, "before_cursor_execute", count)
    result = mgr.validate()
    event.remove(mgr.engine, "before_cursor_execute", count)
    tables = len(mgr.chain.model_at(mgr.chain.code_version, mgr.dialect.name)[0].tables)
    assert tables >= 10
    # Per table the inspector would ask at least columns, primary key, unique constraints and indexes.
    assert len(seen) < tables, f"{len(seen)} queries for {tables} tables"
    assert not result.valid
    assert "Column baselinr_events.metric_name is missing" in result.errors
    assert "Index idx_runs_dataset_profiled on baselinr_runs (dataset_name, profiled_at) is missing" in result.errors
    assert any(w.startswith("Index idx_extra on baselinr_results is not in the schema model: ") for w in result.warnings)
    assert any(w.startswith("Column baselinr_lineage.note is not in the schema model: ") for w in result.warnings)
    mgr.close()


def test_batched_reflection_finds_what_the_per_table_inspector_finds(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    mgr = _broken(tmp_path, request)
    model, exact = mgr.chain.model_at(mgr.chain.code_version, mgr.dialect.name)
    with mgr.engine.connect() as conn:
        batched = compare(conn, model, exact, mgr.dialect, mgr.names)
        raw = inspect(conn)
        names = raw.get_table_names()
        one_by_one = Reflection(raw, [])  # nothing prefetched: every answer asked per table
        for kind in ("columns", "pk_constraint", "indexes", "unique_constraints"):
            multi = getattr(Reflection(raw, names), f"get_{kind}")
            single = getattr(one_by_one, f"get_{kind}")
            for name in names:
                assert repr(multi(name)) == repr(single(name)), (kind, name)  # types compare by identity
    assert len(batched) == 4
    mgr.close()
