"""Adopting a database Baselinr's profiler left behind, on each real server.

The database is built by hand the way the profiler builds it (see the
storage facts in the project's design notes): runs and results through
``create_all`` (no secondary indexes), hand-written DDL for events, schema
registry and both lineage tables (MySQL-style inline index names on MySQL),
table state with ``database_name`` in a three-column key, and a five-column
version table stamped with one row, version 7, "Initial schema version",
``schema.sql``, without v3, v6 or v7 ever running. Then ``status`` and
``validate`` name what is missing, ``repair`` creates it and records the
versions, ``apply`` reaches the latest version, ``validate`` passes and the
data rows are untouched. ``baseline`` is checked on a database whose schema
already matches.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from baselinr.storage.migrations.manager import MigrationManager
from baselinr.storage.schema_version import CURRENT_SCHEMA_VERSION as LATEST
from tests.conftest import Database
from tests.support.cli import run

AUTO = {
    "postgres": "id SERIAL PRIMARY KEY",
    "mysql": "id INTEGER PRIMARY KEY AUTO_INCREMENT",
    "sqlite": "id INTEGER PRIMARY KEY AUTOINCREMENT",
}
FLOAT = {"postgres": "FLOAT", "mysql": "FLOAT", "sqlite": "REAL"}
DATETIME = {"postgres": "TIMESTAMP", "mysql": "DATETIME", "sqlite": "DATETIME"}


def _indexes(
    dialect: str, table: str, indexes: dict[str, str], mysql_names: dict[str, str] | None = None
) -> tuple[str, list[str]]:
    """Inline INDEX clauses on MySQL (with the profiler's short names), CREATE INDEX IF NOT EXISTS elsewhere."""
    if dialect == "mysql":
        names = mysql_names or {}
        return "".join(f",\n INDEX {names.get(n, n)} ({cols})" for n, cols in indexes.items()), []
    return "", [f"CREATE INDEX IF NOT EXISTS {n} ON {table} ({cols})" for n, cols in indexes.items()]


def profiler_ddl(dialect: str) -> list[str]:
    ts, fl, auto = DATETIME[dialect], FLOAT[dialect], AUTO[dialect]
    results_id = {
        "postgres": "id SERIAL NOT NULL",
        "mysql": "id INTEGER NOT NULL AUTO_INCREMENT",
        "sqlite": "id INTEGER NOT NULL",
    }
    stmts = [
        # MetaData.create_all: no foreign key, no secondary index.
        f"""CREATE TABLE baselinr_runs (run_id VARCHAR(36) NOT NULL, dataset_name VARCHAR(255) NOT NULL,
            schema_name VARCHAR(255), profiled_at {ts} NOT NULL, environment VARCHAR(50), status VARCHAR(20),
            row_count INTEGER, column_count INTEGER, PRIMARY KEY (run_id, dataset_name))""",
        f"""CREATE TABLE baselinr_results ({results_id[dialect]}, run_id VARCHAR(36) NOT NULL,
            dataset_name VARCHAR(255) NOT NULL, schema_name VARCHAR(255), column_name VARCHAR(255) NOT NULL,
            column_type VARCHAR(100), metric_name VARCHAR(100) NOT NULL, metric_value TEXT, profiled_at {ts} NOT NULL,
            PRIMARY KEY (id))""",
        f"""CREATE TABLE baselinr_table_state (database_name VARCHAR(255) NOT NULL, schema_name VARCHAR(255) NOT NULL,
            table_name VARCHAR(255) NOT NULL, last_run_id VARCHAR(36), snapshot_id VARCHAR(255), change_token VARCHAR(255),
            decision VARCHAR(50), decision_reason VARCHAR(255), last_profiled_at {ts}, staleness_score INTEGER,
            row_count BIGINT, bytes_scanned BIGINT, metadata TEXT, PRIMARY KEY (database_name, schema_name, table_name))""",
    ]
    inline, separate = _indexes(
        dialect,
        "baselinr_events",
        {
            "idx_events_event_type": "event_type",
            "idx_events_run_id": "run_id",
            "idx_events_table_name": "table_name",
            "idx_events_timestamp": "timestamp DESC",
            "idx_events_drift_severity": "drift_severity",
        },
    )
    stmts += [
        f"""CREATE TABLE IF NOT EXISTS baselinr_events (event_id VARCHAR(36) PRIMARY KEY, event_type VARCHAR(100) NOT NULL,
            run_id VARCHAR(36), table_name VARCHAR(255), column_name VARCHAR(255), metric_name VARCHAR(100),
            baseline_value {fl}, current_value {fl}, change_percent {fl}, drift_severity VARCHAR(20),
            timestamp TIMESTAMP NOT NULL, metadata TEXT, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP{inline})""",
        *separate,
    ]
    inline, separate = _indexes(
        dialect,
        "baselinr_schema_registry",
        {
            "idx_schema_registry_table_schema": "table_name, schema_name, run_id",
            "idx_schema_registry_table_column": "table_name, schema_name, column_name",
            "idx_schema_registry_run_id": "run_id",
            "idx_schema_registry_last_seen": "last_seen_at DESC",
        },
        {
            "idx_schema_registry_table_schema": "idx_table_schema",
            "idx_schema_registry_table_column": "idx_table_column",
            "idx_schema_registry_run_id": "idx_run_id",
            "idx_schema_registry_last_seen": "idx_last_seen",
        },
    )
    stmts += [
        f"""CREATE TABLE IF NOT EXISTS baselinr_schema_registry ({auto}, table_name VARCHAR(255) NOT NULL,
            schema_name VARCHAR(255), column_name VARCHAR(255) NOT NULL, column_type VARCHAR(100) NOT NULL,
            column_hash VARCHAR(64) NOT NULL, nullable BOOLEAN DEFAULT TRUE, first_seen_at {ts} NOT NULL,
            last_seen_at {ts} NOT NULL, run_id VARCHAR(36) NOT NULL{inline})""",
        *separate,
    ]
    side = "{0}_database VARCHAR(255), {0}_schema VARCHAR(255) NOT NULL, {0}_table VARCHAR(255) NOT NULL"
    key = "downstream_database, downstream_schema, downstream_table, upstream_database, upstream_schema, upstream_table"
    unique = "UNIQUE KEY unique_lineage" if dialect == "mysql" else "UNIQUE"
    inline, separate = _indexes(
        dialect,
        "baselinr_lineage",
        {
            "idx_lineage_downstream": "downstream_database, downstream_schema, downstream_table",
            "idx_lineage_upstream": "upstream_database, upstream_schema, upstream_table",
            "idx_lineage_provider": "provider",
            "idx_lineage_last_seen": "last_seen_at DESC",
        },
    )
    stmts += [
        f"""CREATE TABLE IF NOT EXISTS baselinr_lineage ({auto}, {side.format("downstream")}, {side.format("upstream")},
            lineage_type VARCHAR(50) NOT NULL, provider VARCHAR(50) NOT NULL, confidence_score {fl} DEFAULT 1.0,
            first_seen_at {ts} NOT NULL DEFAULT CURRENT_TIMESTAMP, last_seen_at {ts} NOT NULL DEFAULT CURRENT_TIMESTAMP,
            metadata TEXT, {unique} ({key}, provider){inline})""",
        *separate,
    ]
    col_side = side + ", {0}_column VARCHAR(255) NOT NULL"
    col_key = (
        "downstream_database, downstream_schema, downstream_table, downstream_column, "
        "upstream_database, upstream_schema, upstream_table, upstream_column, provider"
    )
    unique = "UNIQUE KEY unique_column_lineage" if dialect == "mysql" else "UNIQUE"
    inline, separate = _indexes(
        dialect,
        "baselinr_column_lineage",
        {
            "idx_column_lineage_downstream": "downstream_database, downstream_schema, downstream_table, downstream_column",
            "idx_column_lineage_upstream": "upstream_database, upstream_schema, upstream_table, upstream_column",
            "idx_column_lineage_provider": "provider",
            "idx_column_lineage_last_seen": "last_seen_at DESC",
        },
        {
            "idx_column_lineage_downstream": "idx_downstream",
            "idx_column_lineage_upstream": "idx_upstream",
            "idx_column_lineage_provider": "idx_provider",
            "idx_column_lineage_last_seen": "idx_last_seen",
        },
    )
    if dialect == "mysql":
        # The profiler's nine 255-character key columns exceed InnoDB's 3072 bytes under utf8mb4:
        # its CREATE fails there (even MariaDB cannot hash the plain indexes), so the table is absent.
        return [*stmts, *VERSION_TABLE]
    stmts += [
        f"""CREATE TABLE IF NOT EXISTS baselinr_column_lineage ({auto}, {col_side.format("downstream")},
            {col_side.format("upstream")}, lineage_type VARCHAR(50) NOT NULL, provider VARCHAR(50) NOT NULL,
            confidence_score {fl} DEFAULT 1.0, transformation_expression TEXT,
            first_seen_at {ts} NOT NULL DEFAULT CURRENT_TIMESTAMP, last_seen_at {ts} NOT NULL DEFAULT CURRENT_TIMESTAMP,
            metadata TEXT, {unique} ({col_key}){inline})""",
        *separate,
    ]
    return [*stmts, *VERSION_TABLE]


# schema_version.get_version_table_ddl("generic"), then the stamp of _init_schema_version.
VERSION_TABLE = [
    """CREATE TABLE IF NOT EXISTS baselinr_schema_version (version INTEGER PRIMARY KEY,
        applied_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, description VARCHAR(500),
        migration_script VARCHAR(255), checksum VARCHAR(64))""",
    "INSERT INTO baselinr_schema_version (version, description, migration_script) "
    "VALUES (7, 'Initial schema version', 'schema.sql')",
]


DATA = [
    "INSERT INTO baselinr_runs (run_id, dataset_name, schema_name, profiled_at, environment, status, row_count, column_count) "
    "VALUES ('r-1', 'orders', 'public', '2024-03-01 10:00:00', 'production', 'completed', 1200, 7)",
    "INSERT INTO baselinr_results (run_id, dataset_name, schema_name, column_name, column_type, metric_name, metric_value, "
    "profiled_at) VALUES ('r-1', 'orders', 'public', 'amount', 'NUMERIC', 'mean', '41.5', '2024-03-01 10:00:00')",
    "INSERT INTO baselinr_results (run_id, dataset_name, schema_name, column_name, column_type, metric_name, metric_value, "
    "profiled_at) VALUES ('r-1', 'orders', 'public', 'amount', 'NUMERIC', 'null_count', '0', '2024-03-01 10:00:00')",
    "INSERT INTO baselinr_events (event_id, event_type, run_id, table_name, timestamp, metadata) "
    "VALUES ('e-1', 'drift', 'r-1', 'orders', '2024-03-01 10:00:01', '{\"k\": 1}')",
    "INSERT INTO baselinr_lineage (downstream_database, downstream_schema, downstream_table, upstream_database, "
    "upstream_schema, upstream_table, lineage_type, provider) VALUES ('wh', 'mart', 'orders', 'wh', 'raw', 'orders_raw', "
    "'dbt_ref', 'dbt')",
    "INSERT INTO baselinr_table_state (database_name, schema_name, table_name, last_run_id, row_count) "
    "VALUES ('wh', 'public', 'orders', 'r-1', 1200)",
]
COUNTS = {
    "baselinr_runs": 1,
    "baselinr_results": 2,
    "baselinr_events": 1,
    "baselinr_lineage": 1,
    "baselinr_table_state": 1,
}


def build_profiler_database(database: Database) -> MigrationManager:
    mgr = MigrationManager.from_config(str(database.config))
    with mgr.engine.begin() as conn:
        for stmt in profiler_ddl(database.dialect) + DATA:
            conn.exec_driver_sql(stmt)
    return mgr


def snapshot(mgr: MigrationManager) -> dict[str, list[tuple[object, ...]]]:
    with mgr.engine.connect() as conn:
        return {table: [tuple(r) for r in conn.execute(text(f"SELECT * FROM {table} ORDER BY 1, 2"))] for table in COUNTS}


def test_profiler_database_is_adopted_and_brought_to_the_latest_version(
    database: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    mgr = build_profiler_database(database)
    before = snapshot(mgr)
    assert {t: len(rows) for t, rows in before.items()} == COUNTS
    cfg = str(database.config)

    # status names exactly what is missing.
    r = run(capsys, "migrate", "status", "--config", cfg)
    assert r.code == 1, r.err
    assert "Current database version: 7" in r.out
    assert "Stamped at v7 by Baselinr's profiler without running the migrations" in r.out
    missing = [line.strip()[len("missing: ") :] for line in r.out.splitlines() if line.strip().startswith("missing: ")]
    expected = [
        "index idx_runs_dataset_profiled on baselinr_runs",
        "index idx_results_run_id on baselinr_results",
        "index idx_results_dataset_column on baselinr_results",
        "index idx_results_metric on baselinr_results",
    ]
    if database.dialect == "mysql":
        # The profiler's inline indexes on MySQL carry short names, not the ones every other dialect gets.
        expected += [
            f"index idx_schema_registry_{n} on baselinr_schema_registry"
            for n in ("table_schema", "table_column", "run_id", "last_seen")
        ]
    expected.append("table baselinr_expectations")
    if database.dialect == "mysql":
        expected.append("table baselinr_column_lineage")
    expected += [
        "table baselinr_pipeline_runs",
        "table baselinr_code_deployments",
        "table baselinr_rca_results",
        "column baselinr_rca_results.database_name",
    ]
    assert missing == expected
    assert "Run: baselinr migrate repair" in r.out

    r = run(capsys, "migrate", "validate", "--config", cfg, "--output", "json")
    assert r.code == 1
    report = json.loads(r.out)
    assert any("Baselinr's profiler stamped v7 as 'Initial schema version' (schema.sql)" in e for e in report["errors"])
    assert "Table baselinr_expectations is missing" in report["errors"]
    assert "Table baselinr_rca_results is missing" in report["errors"]
    assert "Index idx_results_run_id on baselinr_results (run_id) is missing" in report["errors"]
    assert not any("baselinr_schema_version" in e for e in report["errors"])

    # apply alone refuses, pointing at repair.
    r = run(capsys, "migrate", "apply", "--config", cfg)
    assert r.code == 2 and "baselinr migrate repair" in r.err

    # repair --dry-run shows the DDL and changes nothing.
    r = run(capsys, "migrate", "repair", "--config", cfg, "--dry-run")
    assert r.code == 0, r.err
    assert "Would adopt v3: table baselinr_expectations" in r.out
    assert "Would adopt v4: nothing to create" in r.out
    assert "CREATE TABLE baselinr_expectations" in r.out and "[DRY RUN] Nothing was changed" in r.out
    assert json.loads(run(capsys, "migrate", "status", "--config", cfg, "--output", "json").out)["state"] == "unadopted"

    r = run(capsys, "migrate", "repair", "--config", cfg)
    assert r.code == 0, r.err
    assert "Adopted v7: column baselinr_rca_results.database_name" in r.out
    assert "Adopted: versions 1..7 are recorded" in r.out

    with mgr.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT version, description, checksum, applied_by, status FROM baselinr_schema_version ORDER BY version")
        ).fetchall()
    assert [row[0] for row in rows] == list(range(1, 8))
    assert all(len(row[2]) == 64 and row[3].startswith("baselinr migrate repair ") and row[4] == "applied" for row in rows)
    assert rows[3][1].endswith("[adopted: already present]")
    assert "[adopted: created table baselinr_expectations]" in rows[2][1]
    assert "Baselinr's profiler stamped v7 as 'Initial schema version' (schema.sql)" in rows[6][1]

    r = run(capsys, "migrate", "validate", "--config", cfg, "--output", "json")
    report = json.loads(r.out)
    assert r.code == 0 and report["version"] == 7, report["errors"]

    r = run(capsys, "migrate", "apply", "--config", cfg)
    assert r.code == 0, r.err
    assert f"Successfully migrated to version {LATEST}" in r.out
    r = run(capsys, "migrate", "validate", "--config", cfg, "--output", "json")
    report = json.loads(r.out)
    assert r.code == 0 and report["version"] == LATEST, report["errors"]
    r = run(capsys, "migrate", "status", "--config", cfg)
    assert r.code == 0 and "Schema version is up to date" in r.out

    assert snapshot(mgr) == before
    # A second repair finds nothing to do.
    r = run(capsys, "migrate", "repair", "--config", cfg)
    assert r.code == 0 and "Nothing to repair" in r.out
    mgr.close()


def test_repair_refuses_differences_it_cannot_create(database: Database, capsys: pytest.CaptureFixture[str]) -> None:
    mgr = build_profiler_database(database)
    with mgr.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE baselinr_table_state")
        conn.exec_driver_sql(
            "CREATE TABLE baselinr_table_state (schema_name VARCHAR(255) NOT NULL, table_name VARCHAR(255) NOT NULL, "
            "PRIMARY KEY (schema_name, table_name))"
        )
    mgr.close()
    r = run(capsys, "migrate", "repair", "--config", str(database.config))
    assert r.code == 1
    assert "Primary key of baselinr_table_state is (schema_name, table_name)" in r.err
    assert len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err
    r = run(capsys, "migrate", "status", "--config", str(database.config), "--output", "json")
    assert json.loads(r.out)["state"] == "unadopted"


def test_baseline_records_a_matching_schema_and_refuses_one_that_differs(
    database: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = str(database.config)
    assert run(capsys, "migrate", "apply", "--config", cfg, "--target", "5").code == 0
    mgr = MigrationManager.from_config(cfg)
    with mgr.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE baselinr_schema_version")
    mgr.close()

    r = run(capsys, "migrate", "baseline", "--config", cfg, "--version", "6")
    assert r.code == 1
    assert "The schema does not match v6: Table baselinr_code_deployments is missing" in r.err

    r = run(capsys, "migrate", "baseline", "--config", cfg, "--version", "5", "--dry-run")
    assert r.code == 0 and "[DRY RUN] Would record versions 1..5 as applied" in r.out
    # Tables without a version table are no longer "not initialized" (apply would fail on them): repair adopts them.
    status = json.loads(run(capsys, "migrate", "status", "--config", cfg, "--output", "json").out)
    assert status["state"] == "unadopted" and status["database_version"] is None and not status["stamped"]
    assert "table baselinr_runs" in status["found"] and not status["blocking"]

    r = run(capsys, "migrate", "baseline", "--config", cfg, "--version", "5")
    assert r.code == 0, r.err
    assert "Baselined at version 5" in r.out
    r = run(capsys, "migrate", "validate", "--config", cfg, "--output", "json")
    assert r.code == 0 and json.loads(r.out)["version"] == 5

    r = run(capsys, "migrate", "baseline", "--config", cfg, "--version", "5")
    assert r.code == 2 and "already records migrations" in r.err

    assert run(capsys, "migrate", "apply", "--config", cfg).code == 0
    r = run(capsys, "migrate", "validate", "--config", cfg, "--output", "json")
    assert r.code == 0 and json.loads(r.out)["version"] == LATEST


def test_baseline_force_records_a_profiler_stamp_and_keeps_its_note(
    database: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    mgr = build_profiler_database(database)
    cfg = str(database.config)
    r = run(capsys, "migrate", "baseline", "--config", cfg, "--version", "2", "--force")
    assert r.code == 0, r.err
    assert "Index idx_runs_dataset_profiled on baselinr_runs (dataset_name, profiled_at) is missing" in r.out
    with mgr.engine.connect() as conn:
        rows = conn.execute(text("SELECT version, description FROM baselinr_schema_version ORDER BY version")).fetchall()
    mgr.close()
    assert [row[0] for row in rows] == [1, 2]
    assert "[baseline (forced); Baselinr's profiler stamped v7 as 'Initial schema version' (schema.sql)" in rows[1][1]
    r = run(capsys, "migrate", "validate", "--config", cfg, "--output", "json")
    assert r.code == 1 and "Index idx_runs_dataset_profiled on baselinr_runs (dataset_name, profiled_at) is missing" in r.out
