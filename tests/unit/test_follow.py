"""The schema model follows the DDL of SQL migrations (``baselinr.storage.follow``), per dialect.

Pure: each case replays statements on Baselinr's v1 model and checks the
tables, columns, types, keys and indexes that come out, or that a statement
the model cannot follow is named with its reason.
"""

from __future__ import annotations

import pytest

from baselinr.storage.follow import follow
from baselinr.storage.migrations.chain import load_chain
from baselinr.storage.model import NOW, Schema, SqlType


def v1() -> Schema:
    schema, exact = load_chain().model_at(1, "postgres")
    assert exact
    return schema


def test_guide_step_2_adds_its_columns_and_index() -> None:
    s = v1()
    missed = follow(
        s,
        [
            "ALTER TABLE baselinr_runs \n ADD COLUMN cost_dollars DECIMAL(10, 4)",
            "ALTER TABLE baselinr_runs ADD COLUMN bytes_scanned BIGINT",
            "CREATE INDEX idx_runs_cost ON baselinr_runs (cost_dollars)",
        ],
        "sqlite",
    )
    assert missed == []
    runs = s.tables["baselinr_runs"]
    assert runs.column("cost_dollars").type == SqlType("decimal", precision=10, scale=4)  # type: ignore[union-attr]
    assert runs.column("bytes_scanned").type == SqlType("bigint")  # type: ignore[union-attr]
    assert [i.columns for i in runs.indexes if i.name == "idx_runs_cost"] == [("cost_dollars",)]
    # ... and its down SQL takes them away again.
    follow(
        s,
        [
            "DROP INDEX IF EXISTS idx_runs_cost",
            "ALTER TABLE baselinr_runs DROP COLUMN bytes_scanned",
            "ALTER TABLE baselinr_runs DROP COLUMN cost_dollars",
        ],
        "sqlite",
    )
    assert s.tables["baselinr_runs"] == v1().tables["baselinr_runs"]


@pytest.mark.parametrize(
    ("dialect", "id_sql"),
    [
        ("mysql", "id INTEGER PRIMARY KEY AUTO_INCREMENT"),
        ("postgres", "id SERIAL PRIMARY KEY"),
        ("sqlite", "id INTEGER PRIMARY KEY AUTOINCREMENT"),
        ("snowflake", "id INTEGER AUTOINCREMENT PRIMARY KEY"),
        ("postgres", "id INTEGER GENERATED ALWAYS AS IDENTITY PRIMARY KEY"),
        ("snowflake", "id NUMBER(38, 0) IDENTITY(1, 1) PRIMARY KEY"),
    ],
)
def test_a_new_table_in_each_dialects_spelling(dialect: str, id_sql: str) -> None:
    s = v1()
    missed = follow(
        s,
        [
            f"CREATE TABLE baselinr_new_feature ({id_sql}, feature_name VARCHAR(255) NOT NULL, "
            "created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP)",
            "CREATE INDEX idx_feature_name ON baselinr_new_feature (feature_name)",
        ],
        dialect,
    )
    assert missed == []
    t = s.tables["baselinr_new_feature"]
    assert t.primary_key == ("id",)
    idc, name, created = t.columns
    assert idc.autoincrement and not idc.nullable and idc.type.family in ("integer", "bigint")
    assert name.type == SqlType("string", length=255) and not name.nullable
    assert created.type == SqlType("timestamp") and created.default == NOW and created.nullable
    assert [(i.name, i.columns) for i in t.indexes] == [("idx_feature_name", ("feature_name",))]


def test_type_changes_renames_not_null_and_defaults() -> None:
    s = v1()
    assert (
        follow(
            s,
            [
                "ALTER TABLE baselinr_runs ALTER COLUMN column_count TYPE BIGINT",
                "ALTER TABLE baselinr_runs ALTER COLUMN status SET NOT NULL",
                "ALTER TABLE baselinr_runs ALTER COLUMN status SET DEFAULT 'new'",
                "ALTER TABLE baselinr_runs RENAME COLUMN environment TO env_name",
                "ALTER TABLE baselinr_results RENAME TO baselinr_results_v2",
            ],
            "postgres",
        )
        == []
    )
    runs = s.tables["baselinr_runs"]
    assert runs.column("column_count").type.family == "bigint"  # type: ignore[union-attr]
    status = runs.column("status")
    assert status is not None and not status.nullable and status.default == "'new'"
    assert runs.column("environment") is None and runs.column("env_name") is not None
    assert "baselinr_results" not in s.tables
    moved = s.tables["baselinr_results_v2"]
    assert moved.name == "baselinr_results_v2" and all(i.table == "baselinr_results_v2" for i in moved.indexes)


def test_mysql_modify_change_add_index_and_rename_table() -> None:
    s = v1()
    missed = follow(
        s,
        [
            "ALTER TABLE baselinr_runs ADD COLUMN new_field VARCHAR(100), ADD INDEX idx_new_field (new_field)",
            "ALTER TABLE baselinr_runs MODIFY COLUMN new_field VARCHAR(200) NOT NULL",
            "ALTER TABLE baselinr_runs CHANGE COLUMN new_field renamed_field TEXT",
            "RENAME TABLE baselinr_events TO baselinr_events_old",
        ],
        "mysql",
    )
    assert missed == []
    runs = s.tables["baselinr_runs"]
    assert runs.column("new_field") is None
    assert runs.column("renamed_field").type == SqlType("text")  # type: ignore[union-attr]
    assert [i.columns for i in runs.indexes if i.name == "idx_new_field"] == [("renamed_field",)]
    assert "baselinr_events_old" in s.tables and "baselinr_events" not in s.tables


def test_the_guides_sqlite_copy_and_swap_rebuild() -> None:
    s = v1()
    missed = follow(
        s,
        [
            "CREATE TABLE baselinr_runs_new (run_id VARCHAR(36) NOT NULL, dataset_name VARCHAR(255) NOT NULL, "
            "profiled_at TIMESTAMP NOT NULL, new_field VARCHAR(100), PRIMARY KEY (run_id, dataset_name))",
            "INSERT INTO baselinr_runs_new SELECT run_id, dataset_name, profiled_at, NULL as new_field FROM baselinr_runs",
            "DROP TABLE baselinr_runs",
            "ALTER TABLE baselinr_runs_new RENAME TO baselinr_runs",
        ],
        "sqlite",
    )
    assert missed == []
    runs = s.tables["baselinr_runs"]
    assert [c.name for c in runs.columns] == ["run_id", "dataset_name", "profiled_at", "new_field"]
    assert runs.primary_key == ("run_id", "dataset_name") and runs.indexes == ()
    assert "baselinr_runs_new" not in s.tables


def test_statements_that_change_no_table_are_followed() -> None:
    s = v1()
    before = dict(s.tables)
    missed = follow(
        s,
        [
            "UPDATE baselinr_runs SET status = 'x' WHERE status IS NULL",
            "DELETE FROM baselinr_events WHERE 1 = 0",
            "CREATE VIEW baselinr_v AS SELECT 1 AS one",
            "COMMENT ON TABLE baselinr_runs IS 'runs'",
            "CREATE EXTENSION IF NOT EXISTS pgcrypto",
            "ALTER TABLE baselinr_runs ADD CONSTRAINT fk FOREIGN KEY (run_id) REFERENCES other (id)",
            "ALTER TABLE baselinr_runs ADD COLUMN IF NOT EXISTS status VARCHAR(20)",
        ],
        "postgres",
    )
    assert missed == [] and s.tables == before


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("ALTER TABLE baselinr_runs ADD COLUMN id UUID", "none of the model's"),
        ("CREATE TABLE baselinr_copy AS SELECT * FROM baselinr_runs", "without a column list"),
        ("ALTER TABLE baselinr_runs DROP CONSTRAINT some_key", "DROP CONSTRAINT"),
        ("ALTER TABLE baselinr_nowhere ADD COLUMN x INTEGER", "not in the schema model"),
        ("ALTER TABLE baselinr_runs ADD COLUMN status VARCHAR(20)", "already in the schema model"),
        ("THIS IS NOT SQL AT ALL", "could not read it"),
    ],
)
def test_what_the_model_cannot_follow_is_named(sql: str, reason: str) -> None:
    s = v1()
    missed = follow(s, ["SELECT 1", sql], "postgres")
    assert [(m.index, m.sql) for m in missed] == [(2, sql)]
    assert reason in missed[0].reason


def test_chain_model_follows_sql_migrations_and_says_when_not_exact(tmp_path: object) -> None:
    from baselinr.storage.migrations.chain import check_chain
    from baselinr.storage.migrations.migration import Migration

    base = load_chain()
    m2 = Migration(2, "cost", up_sql="ALTER TABLE baselinr_runs ADD COLUMN cost_dollars DECIMAL(10, 4);")
    m3 = Migration(3, "uuid", up_sql={"postgres": "ALTER TABLE baselinr_runs ADD COLUMN u UUID", "default": "SELECT 1"})
    chain = check_chain([base.get(1), m2, m3], 3)
    model, exact = chain.model_at(2, "postgres")
    assert exact and model.tables["baselinr_runs"].column("cost_dollars") is not None
    assert chain.model_at(3, "postgres")[1] is False
    assert [(v, u.index) for v, u in chain.unfollowed(3, "postgres")] == [(3, 1)]
    assert chain.model_at(3, "sqlite")[1] is True  # SQLite's text (the default) changes no table
