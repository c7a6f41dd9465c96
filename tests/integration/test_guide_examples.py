"""Every SQL example of the guide's "Common Migration Patterns" and
"Database-Specific Considerations" runs, as a v2 on top of v1, on each
dialect it applies to (Snowflake's is covered by the Snowflake suite)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from baselinr.config import load_config
from baselinr.errors import MigrationFailed
from baselinr.storage.migrations.manager import MigrationManager
from tests.conftest import Database
from tests.support.packages import sql_migration, write_package

ADD_COLUMN = """
    ALTER TABLE baselinr_runs 
    ADD COLUMN new_field VARCHAR(100) DEFAULT 'default_value';
"""
ADD_INDEX = """
    CREATE INDEX idx_new_field 
    ON baselinr_runs (new_field);
"""
NEW_TABLE = """
    CREATE TABLE baselinr_new_feature (
        id INTEGER PRIMARY KEY AUTO_INCREMENT,
        feature_name VARCHAR(255) NOT NULL,
        created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
    );
    
    CREATE INDEX idx_feature_name 
    ON baselinr_new_feature (feature_name);
"""
MODIFY_TYPE = """
    -- 1. Add new column
    ALTER TABLE baselinr_runs 
    ADD COLUMN row_count_new BIGINT;
    
    -- 2. Copy data
    UPDATE baselinr_runs 
    SET row_count_new = row_count;
    
    -- 3. Drop old column
    ALTER TABLE baselinr_runs 
    DROP COLUMN row_count;
    
    -- 4. Rename new column
    ALTER TABLE baselinr_runs 
    RENAME COLUMN row_count_new TO row_count;
"""
PG_IF_NOT_EXISTS = """
    ALTER TABLE baselinr_runs 
    ADD COLUMN IF NOT EXISTS new_field VARCHAR(100);
"""
MYSQL_ADD_INDEX = """
    ALTER TABLE baselinr_runs 
    ADD COLUMN new_field VARCHAR(100),
    ADD INDEX idx_new_field (new_field);
"""
# The guide elides the column list ("-- ... all columns"); here it is whole.
SQLITE_RECREATE = """
    -- Create new table with new schema
    CREATE TABLE baselinr_runs_new (
        run_id VARCHAR(36) NOT NULL,
        dataset_name VARCHAR(255) NOT NULL,
        schema_name VARCHAR(255),
        profiled_at TIMESTAMP NOT NULL,
        environment VARCHAR(50),
        status VARCHAR(20),
        row_count INTEGER,
        column_count INTEGER,
        new_field VARCHAR(100),
        PRIMARY KEY (run_id, dataset_name)
    );
    
    -- Copy data
    INSERT INTO baselinr_runs_new 
    SELECT *, NULL as new_field 
    FROM baselinr_runs;
    
    -- Swap tables
    DROP TABLE baselinr_runs;
    ALTER TABLE baselinr_runs_new RENAME TO baselinr_runs;
    CREATE INDEX idx_runs_dataset_profiled ON baselinr_runs (dataset_name, profiled_at DESC);
"""
COST_TRACKING_UP = """
        ALTER TABLE baselinr_runs 
        ADD COLUMN cost_dollars DECIMAL(10, 4);
        
        ALTER TABLE baselinr_runs 
        ADD COLUMN bytes_scanned BIGINT;
        
        CREATE INDEX idx_runs_cost 
        ON baselinr_runs (cost_dollars);
"""
COST_TRACKING_DOWN = """
        -- Rollback (optional - not currently supported)
        DROP INDEX IF EXISTS idx_runs_cost;
        ALTER TABLE baselinr_runs DROP COLUMN bytes_scanned;
        ALTER TABLE baselinr_runs DROP COLUMN cost_dollars;
"""
PYTHON_MIGRATION = '''
def migrate_up(conn):
    """Custom Python migration logic."""
    # Example: Populate new column from existing data
    query = text("""
        UPDATE baselinr_runs 
        SET new_field = CONCAT(dataset_name, '_v1')
        WHERE new_field IS NULL
    """)
    conn.execute(query)

migration = Migration(
    version=3,
    description="Populate new field",
    up_python=migrate_up,
    down_python=None
)
'''
HYBRID_MIGRATION = '''
def migrate_up(conn):
    query = text("""
        UPDATE baselinr_runs 
        SET new_field = CONCAT(dataset_name, '_v1')
        WHERE new_field IS NULL
    """)
    conn.execute(query)

migration = Migration(
    version=2,
    description="Add and populate field",
    up_sql="ALTER TABLE baselinr_runs ADD COLUMN new_field VARCHAR(100);",
    up_python=migrate_up,
    down_sql=None
)
'''

EXAMPLES = {
    "add_column": (ADD_COLUMN, {"sqlite", "postgres", "mysql"}, "new_field"),
    "modify_type": (MODIFY_TYPE, {"sqlite", "postgres", "mysql"}, "row_count"),
    "new_table": (NEW_TABLE, {"mysql"}, None),
    "pg_if_not_exists": (PG_IF_NOT_EXISTS, {"postgres", "mysql"}, "new_field"),
    "mysql_add_index": (MYSQL_ADD_INDEX, {"mysql"}, "new_field"),
    "sqlite_recreate": (SQLITE_RECREATE, {"sqlite", "postgres", "mysql"}, "new_field"),
    "cost_tracking": (COST_TRACKING_UP, {"sqlite", "postgres", "mysql"}, "cost_dollars"),
}


def _manager(db: Database, package: str) -> MigrationManager:
    return MigrationManager.from_settings(load_config(db.config), migrations_package=package)


def _seed(mgr: MigrationManager) -> None:
    with mgr.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO baselinr_runs (run_id, dataset_name, schema_name, profiled_at, environment, status, "
                "row_count, column_count) VALUES ('r1', 'orders', 'public', '2024-01-01 00:00:00', 'test', 'completed', 42, 7)"
            )
        )


APPLIES = [(e, d) for e in sorted(EXAMPLES) for d in sorted(EXAMPLES[e][1])]
NOT_APPLICABLE = [(e, d) for e in sorted(EXAMPLES) for d in ("mysql", "postgres", "sqlite") if d not in EXAMPLES[e][1]]


@pytest.mark.parametrize(("example", "database"), NOT_APPLICABLE, indirect=["database"])
def test_guide_example_for_another_dialect_fails_cleanly(example: str, database: Database, tmp_path: Path) -> None:
    """An example written for another dialect fails with a clear error and, where
    DDL is transactional, leaves the database exactly at v1."""
    pkg = write_package(tmp_path / "pkgs", {2: sql_migration(2, EXAMPLES[example][0])})
    mgr = _manager(database, pkg)
    mgr.apply(1)
    with pytest.raises(MigrationFailed, match="Migration v2 at statement 1 of"):
        mgr.apply(2)
    assert mgr.status().database_version == 1
    assert mgr.validate().valid


@pytest.mark.parametrize(("example", "database"), APPLIES, indirect=["database"])
def test_guide_sql_example(example: str, database: Database, tmp_path: Path) -> None:
    sql, _, column = EXAMPLES[example]
    extra = {3: sql_migration(3, ADD_INDEX)} if example == "add_column" else {}
    pkg = write_package(tmp_path / "pkgs", {2: sql_migration(2, sql), **extra})
    mgr = _manager(database, pkg)
    mgr.apply(1)
    _seed(mgr)
    result = mgr.apply()
    assert [s.version for s in result.steps] == [2, *extra]
    assert mgr.status().state == "up_to_date"
    insp = inspect(mgr.engine)
    if column:
        assert column in {c["name"] for c in insp.get_columns("baselinr_runs")}
    with mgr.engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM baselinr_runs")).scalar() == 1
        if example == "modify_type":
            assert conn.execute(text("SELECT row_count FROM baselinr_runs")).scalar() == 42
        if example == "add_column":
            assert conn.execute(text("SELECT new_field FROM baselinr_runs")).scalar() == "default_value"
    if example == "new_table":
        assert "baselinr_new_feature" in insp.get_table_names()
    if example in ("add_column", "mysql_add_index"):
        assert "idx_new_field" in {i["name"] for i in insp.get_indexes("baselinr_runs")}
    validation = mgr.validate()
    assert validation.valid, validation.errors


def test_guide_python_and_hybrid_migrations(database: Database, tmp_path: Path) -> None:
    pkg = write_package(
        tmp_path / "pkgs",
        {2: sql_migration(2, "ALTER TABLE baselinr_runs ADD COLUMN new_field VARCHAR(100);"), 3: PYTHON_MIGRATION},
    )
    mgr = _manager(database, pkg)
    mgr.apply(1)
    _seed(mgr)
    mgr.apply(3)
    with mgr.engine.connect() as conn:
        assert conn.execute(text("SELECT new_field FROM baselinr_runs")).scalar() == "orders_v1"

    hybrid = write_package(tmp_path / "pkgs2", {2: HYBRID_MIGRATION})
    other = Database(database.dialect, tmp_path / "other.yml", dict(database.connection), database.server)
    if database.server is not None:
        other.connection["database"] = database.server.create_database()
    else:
        other.connection["filepath"] = str(tmp_path / "other.db")
    other.write_config()
    mgr2 = _manager(other, hybrid)
    mgr2.apply(1)
    _seed(mgr2)
    mgr2.apply(2)
    with mgr2.engine.connect() as conn:
        assert conn.execute(text("SELECT new_field FROM baselinr_runs")).scalar() == "orders_v1"


def test_guide_cost_tracking_rolls_back(database: Database, tmp_path: Path) -> None:
    pkg = write_package(tmp_path / "pkgs", {2: sql_migration(2, COST_TRACKING_UP, COST_TRACKING_DOWN)})
    mgr = _manager(database, pkg)
    mgr.apply(2)
    if database.dialect == "mysql":
        # MySQL's DROP INDEX needs "ON table": the guide's down_sql is not MySQL.
        with pytest.raises(Exception, match="rollback"):
            mgr.rollback(1)
        return
    mgr.rollback(1)
    cols = {c["name"] for c in inspect(mgr.engine).get_columns("baselinr_runs")}
    assert "cost_dollars" not in cols and "bytes_scanned" not in cols
    assert mgr.status().database_version == 1
    assert mgr.validate().valid
