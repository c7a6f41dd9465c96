"""v11 on a database already at v10 with rows: every row kept, the RCA columns in the
profiler's order, SQLite table state accepting NULL keys; and back down to v10."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from baselinr.storage.migrations.manager import MigrationManager
from tests.conftest import Database
from tests.support.cli import run

RCA_ROWS = [
    {"anomaly_id": "a-1", "table_name": "orders", "schema_name": "public", "analyzed_at": "2025-01-02 03:04:05", "db": "dwh"},
    {"anomaly_id": "a-2", "table_name": "customers", "schema_name": None, "analyzed_at": "2025-01-03 03:04:05", "db": None},
]
PROFILER_ORDER = ["id", "anomaly_id", "database_name", "table_name", "schema_name", "column_name", "metric_name"]


def _rca(mgr: MigrationManager) -> tuple[list[str], list[tuple[object, ...]]]:
    with mgr.engine.connect() as conn:
        result = conn.execute(text("SELECT * FROM baselinr_rca_results ORDER BY anomaly_id"))
        return [c.lower() for c in result.keys()], [tuple(r) for r in result.fetchall()]


def test_v11_keeps_every_row_and_puts_database_name_where_the_profiler_reads_it(
    database: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = str(database.config)
    assert run(capsys, "migrate", "apply", "--config", cfg, "--target", "10").code == 0
    mgr = MigrationManager.from_config(cfg)
    with mgr.engine.begin() as conn:
        for r in RCA_ROWS:
            conn.execute(
                text(
                    "INSERT INTO baselinr_rca_results (anomaly_id, table_name, schema_name, analyzed_at, database_name, "
                    "probable_causes) VALUES (:anomaly_id, :table_name, :schema_name, :analyzed_at, :db, '[]')"
                ),
                r,
            )
        conn.execute(text("INSERT INTO baselinr_table_state (database_name, schema_name, table_name) VALUES ('d', 's', 't')"))
    columns, before = _rca(mgr)
    assert columns[-1] == "database_name"  # v7 appended it
    by_name_before = sorted(dict(zip(columns, row, strict=True)).items() for row in before)

    assert run(capsys, "migrate", "apply", "--config", cfg).code == 0
    columns, after = _rca(mgr)
    assert columns[: len(PROFILER_ORDER)] == PROFILER_ORDER
    assert sorted(dict(zip(columns, row, strict=True)).items() for row in after) == by_name_before
    with mgr.engine.begin() as conn:
        # New rows get ids after the copied ones (PostgreSQL's sequence was moved past them).
        conn.execute(
            text("INSERT INTO baselinr_rca_results (anomaly_id, table_name, analyzed_at) VALUES ('a-3', 't', '2025-01-04')")
        )
        ids = [r[0] for r in conn.execute(text("SELECT id FROM baselinr_rca_results ORDER BY anomaly_id"))]
        assert ids[2] > max(ids[:2]) and len(set(ids)) == 3
        null_keys = "INSERT INTO baselinr_table_state (database_name, schema_name, table_name) VALUES (NULL, NULL, 'u')"
        if database.dialect == "sqlite":
            conn.execute(text(null_keys))  # as the profiler's own SQLite table accepts
    if database.dialect != "sqlite":
        with pytest.raises(Exception, match=r"(?i)null"), mgr.engine.begin() as conn:
            conn.execute(text(null_keys))  # refused here, as by the profiler's own table
    r = run(capsys, "migrate", "validate", "--config", cfg)
    assert r.code == 0, r.out

    # Down to v10: the v10 shape again, rows kept; SQLite's NULL keys take v10's default ''.
    r = run(capsys, "migrate", "rollback", "--config", cfg, "--target", "10")
    assert r.code == 0, r.err
    columns, down = _rca(mgr)
    assert columns[-1] == "database_name" and len(down) == 3
    with mgr.engine.connect() as conn:
        rows = conn.execute(text("SELECT database_name, schema_name, table_name FROM baselinr_table_state"))
        keys = sorted(tuple(r) for r in rows)
    assert keys == ([("", "", "u"), ("d", "s", "t")] if database.dialect == "sqlite" else [("d", "s", "t")])
    assert run(capsys, "migrate", "validate", "--config", cfg).code == 0
    mgr.close()
