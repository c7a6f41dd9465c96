"""Baselinr's storage history on each real database: every version applies
and rolls back one at a time, the live schema matches the model ``validate``
uses at every version, auto-increment ids are assigned, and renamed runs and
results tables are honoured by migrations and validate."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import IntegrityError

from baselinr.config import load_config
from baselinr.storage.migrations.chain import load_chain
from baselinr.storage.migrations.manager import MigrationManager
from baselinr.storage.schema_version import CURRENT_SCHEMA_VERSION
from tests.conftest import Database


def _clean(warnings: list[str]) -> list[str]:
    return [w for w in warnings if "Database schema is behind" not in w]


def test_every_version_applies_validates_and_rolls_back(database: Database) -> None:
    mgr = MigrationManager.from_config(str(database.config))
    chain = load_chain()
    try:
        for version in range(1, CURRENT_SCHEMA_VERSION + 1):
            result = mgr.apply(version)
            assert [s.version for s in result.steps] == [version]
            check = mgr.validate()
            assert check.valid and check.version == version, (version, check.errors)
            assert _clean(check.warnings) == [], (version, check.warnings)
            live = {n for n in inspect(mgr.engine).get_table_names() if n.startswith("baselinr_")}
            assert live == set(chain.model_at(version, database.dialect)[0].tables), version
        assert mgr.status().state == "up_to_date"

        for version in range(CURRENT_SCHEMA_VERSION - 1, -1, -1):
            result = mgr.rollback(version)
            assert [s.version for s in result.steps] == [version + 1]
            if version:
                check = mgr.validate()
                assert check.valid and check.version == version, (version, check.errors)
                assert _clean(check.warnings) == [], (version, check.warnings)
            live = {n for n in inspect(mgr.engine).get_table_names() if n.startswith("baselinr_")}
            assert live == set(chain.model_at(version, database.dialect)[0].tables), version
        assert mgr.status().database_version is None
    finally:
        mgr.close()


def test_ids_defaults_and_unique_keys_work_on_the_latest_schema(database: Database) -> None:
    mgr = MigrationManager.from_config(str(database.config))
    try:
        mgr.apply()
        now = dt.datetime(2024, 5, 1, 12, 0, 0)
        with mgr.engine.begin() as conn:
            for anomaly in ("a-1", "a-2"):
                conn.execute(
                    text("INSERT INTO baselinr_rca_results (anomaly_id, table_name, analyzed_at) VALUES (:a, 'orders', :t)"),
                    {"a": anomaly, "t": now},
                )
            edge = (
                "INSERT INTO baselinr_lineage (downstream_database, downstream_schema, downstream_table, upstream_database, "
                "upstream_schema, upstream_table, lineage_type, provider) VALUES ('db', 'mart', 'orders', 'db', 'raw', "
                "'orders_raw', 'dbt', 'dbt')"
            )
            conn.exec_driver_sql(edge)
            rows = conn.execute(text("SELECT id, rca_status, database_name FROM baselinr_rca_results ORDER BY id")).fetchall()
            lineage = conn.execute(text("SELECT id, confidence_score, first_seen_at FROM baselinr_lineage")).one()
        # SERIAL on SQLite would leave ids NULL; AUTOINCREMENT / SERIAL / AUTO_INCREMENT assign them.
        assert [r[0] for r in rows] == [1, 2] and rows[0][1] == "analyzed" and rows[0][2] is None
        assert lineage[0] == 1 and lineage[1] == 1.0 and lineage[2] is not None
        # The edge key is enforced (InnoDB accepted it: it fits 3072 bytes under utf8mb4).
        with pytest.raises(IntegrityError):
            with mgr.engine.begin() as conn:
                conn.exec_driver_sql(edge)
    finally:
        mgr.close()


def test_renamed_runs_and_results_tables_are_migrated_and_validated(database: Database) -> None:
    cfg = database.write_config(runs_table="my_runs", results_table="my_results")
    settings = load_config(cfg)
    assert settings.storage.runs_table == "my_runs"
    mgr = MigrationManager.from_settings(settings)
    try:
        mgr.apply()
        check = mgr.validate()
        assert check.valid, check.errors
        assert check.warnings == []
        live = set(inspect(mgr.engine).get_table_names())
        assert {"my_runs", "my_results"} <= live and not {"baselinr_runs", "baselinr_results"} & live
        indexes = {i["name"] for i in inspect(mgr.engine).get_indexes("my_results")}
        assert {"idx_results_run_id", "idx_results_metric"} <= indexes
        with mgr.engine.begin() as conn:
            conn.exec_driver_sql("DROP INDEX idx_results_run_id" + (" ON my_results" if database.dialect == "mysql" else ""))
        check = mgr.validate()
        assert not check.valid and "Index idx_results_run_id on my_results (run_id) is missing" in check.errors
    finally:
        mgr.close()


def test_the_version_table_records_every_version_with_a_checksum(database: Database) -> None:
    mgr = MigrationManager.from_config(str(database.config))
    try:
        mgr.apply()
        url = mgr.engine.url
    finally:
        mgr.close()
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT version, checksum, status FROM baselinr_schema_version ORDER BY version")).fetchall()
    finally:
        engine.dispose()
    assert [r[0] for r in rows] == list(range(1, CURRENT_SCHEMA_VERSION + 1))
    assert all(len(r[1]) == 64 and r[2] == "applied" for r in rows)
