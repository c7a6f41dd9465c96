"""Failures, checksums, drift, rollback and errors: nothing half-applied, every
problem named, on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from baselinr.config import load_config
from baselinr.errors import MigrationFailed, UsageError
from baselinr.storage.migrations.manager import MigrationManager
from baselinr.storage.schema_version import CURRENT_SCHEMA_VERSION as LATEST
from tests.conftest import Database
from tests.support.cli import run
from tests.support.packages import sql_migration, write_package

BROKEN = """
    ALTER TABLE baselinr_runs ADD COLUMN a INTEGER;
    ALTER TABLE no_such_table ADD COLUMN b INTEGER;
    ALTER TABLE baselinr_runs ADD COLUMN c INTEGER;
"""
FIXED = BROKEN.replace("no_such_table", "baselinr_runs")


def manager(db: Database, package: str) -> MigrationManager:
    return MigrationManager.from_settings(load_config(db.config), migrations_package=package)


def columns(mgr: MigrationManager, table: str = "baselinr_runs") -> set[str]:
    return {c["name"] for c in inspect(mgr.engine).get_columns(table)}


def test_failed_migration(database: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pkg = write_package(tmp_path / "p", {2: sql_migration(2, BROKEN)})
    mgr = manager(database, pkg)
    mgr.apply(1)
    r = run(capsys, "migrate", "apply", "-c", str(database.config), "--migrations", pkg)
    assert r.code == 4
    assert "Migration v2 at statement 2 of 3 failed" in r.err
    assert "Traceback" not in r.err and len(r.err.strip().splitlines()) == 1
    status = mgr.status()
    assert status.database_version == 1
    if database.dialect != "mysql":
        # One transaction: the first ALTER is gone too, and nothing is recorded.
        assert "a" not in columns(mgr)
        assert status.state == "behind"
        assert not status.problems
        assert "rolled back" in r.err
        return
    # MySQL: DDL commits on its own; the failure is recorded with its progress.
    assert "a" in columns(mgr)
    assert status.state == "failed"
    [problem] = status.problems
    assert (problem.version, problem.status, problem.statements_done, problem.statements_total) == (2, "failed", 1, 3)
    r = run(capsys, "migrate", "status", "-c", str(database.config), "--migrations", pkg)
    assert r.code == 1
    assert "Migration v2 failed after 1 of 3 statements: statement 2:" in r.out
    assert "baselinr migrate apply --resume" in r.out
    validation = mgr.validate()
    assert not validation.valid and any("v2 failed after 1 of 3" in e for e in validation.errors)
    # A plain apply refuses to run over a half-applied version ...
    with pytest.raises(MigrationFailed, match="--resume"):
        mgr.apply()
    # ... and --resume continues from statement 2 once the migration is fixed.
    fixed = write_package(tmp_path / "q", {2: sql_migration(2, FIXED)})
    mgr2 = manager(database, fixed)
    plan = mgr2.apply(dry_run=True, resume=True).plan
    assert plan.steps[0].resume_from == 1
    mgr2.apply(resume=True)
    assert {"a", "c"} <= columns(mgr2)
    assert mgr2.status().state == "up_to_date"
    assert mgr2.validate().valid


def test_mysql_failure_repaired_by_hand(mysql_server: object, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    from tests.conftest import make_database

    db = make_database("mysql", tmp_path, request)
    pkg = write_package(tmp_path / "p", {2: sql_migration(2, BROKEN)})
    mgr = manager(db, pkg)
    mgr.apply(1)
    with pytest.raises(MigrationFailed):
        mgr.apply()
    with mgr.engine.begin() as conn:  # the operator undoes the partial change
        conn.execute(text("ALTER TABLE baselinr_runs DROP COLUMN a"))
    assert [r.version for r in mgr.repair(dry_run=True).removed] == [2]
    assert mgr.status().state == "failed"  # dry run changed nothing
    mgr.repair()
    assert mgr.status().state == "behind"
    fixed = write_package(tmp_path / "q", {2: sql_migration(2, FIXED)})
    manager(db, fixed).apply()
    assert manager(db, fixed).validate().valid


def test_edited_migration_is_caught_by_validate(database: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    original = write_package(tmp_path / "p", {2: sql_migration(2, "ALTER TABLE baselinr_runs ADD COLUMN x INTEGER;")})
    manager(database, original).apply()
    # Whitespace and line endings do not count as edits ...
    same = write_package(tmp_path / "q", {2: sql_migration(2, "\r\nALTER TABLE baselinr_runs ADD COLUMN x INTEGER;  \r\n")})
    assert manager(database, same).validate().valid
    # ... a changed statement does.
    edited = write_package(tmp_path / "r", {2: sql_migration(2, "ALTER TABLE baselinr_runs ADD COLUMN x BIGINT;")})
    r = run(capsys, "migrate", "validate", "-c", str(database.config), "--migrations", edited)
    assert r.code == 1
    assert "Valid: ❌ No" in r.out
    assert "v2 (v2_test.py) was modified after it was applied" in r.out


def test_validate_names_each_difference(database: Database, tmp_path: Path) -> None:
    mgr = MigrationManager.from_settings(load_config(database.config))
    mgr.apply()
    drop_index = "DROP INDEX idx_results_run_id" + (" ON baselinr_results" if database.dialect == "mysql" else "")
    with mgr.engine.begin() as conn:
        conn.execute(text(drop_index))
        conn.execute(text("ALTER TABLE baselinr_table_state DROP COLUMN snapshot_id"))
        conn.execute(text("ALTER TABLE baselinr_events ADD COLUMN extra_note VARCHAR(10)"))
        conn.execute(text("CREATE TABLE baselinr_scratch (id INTEGER)"))
    result = mgr.validate()
    assert not result.valid
    assert "Index idx_results_run_id on baselinr_results (run_id) is missing" in result.errors
    assert "Column baselinr_table_state.snapshot_id is missing" in result.errors
    assert any(w.startswith("Column baselinr_events.extra_note is not in the schema model: ") for w in result.warnings)
    scratch = "Table baselinr_scratch is not part of the schema model at this version: "
    assert any(w.startswith(scratch) and "--exclude-table baselinr_scratch" in w for w in result.warnings)
    assert len(result.errors) == 2, result.errors


def test_rollback(database: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pkg = write_package(
        tmp_path / "p",
        {
            2: sql_migration(2, "ALTER TABLE baselinr_runs ADD COLUMN x INTEGER;", "ALTER TABLE baselinr_runs DROP COLUMN x;"),
            3: sql_migration(3, "CREATE TABLE baselinr_extra (id INTEGER);"),
        },
    )
    cfg = str(database.config)
    assert run(capsys, "migrate", "apply", "-c", cfg, "--migrations", pkg).code == 0
    r = run(capsys, "migrate", "rollback", "-c", cfg, "--migrations", pkg, "--target", "1")
    assert r.code == 2
    assert "Cannot roll back: v3 has no down migration" in r.err
    assert manager(database, pkg).status().database_version == 3
    r = run(capsys, "migrate", "rollback", "-c", cfg, "--migrations", pkg, "--target", "2")
    assert r.code == 2  # still v3 without a down
    pkg2 = write_package(
        tmp_path / "q",
        {
            2: sql_migration(2, "ALTER TABLE baselinr_runs ADD COLUMN x INTEGER;", "ALTER TABLE baselinr_runs DROP COLUMN x;"),
            3: sql_migration(3, "CREATE TABLE baselinr_extra (id INTEGER);", "DROP TABLE baselinr_extra;"),
        },
    )
    r = run(capsys, "migrate", "rollback", "-c", cfg, "--migrations", pkg2, "--target", "1", "--dry-run")
    assert r.code == 0
    assert "[DRY RUN] Would roll back v3: Test v3" in r.out
    assert "DROP TABLE baselinr_extra;" in r.out
    r = run(capsys, "migrate", "rollback", "-c", cfg, "--migrations", pkg2, "--target", "1")
    assert r.code == 0, r.err
    assert r.out.splitlines() == [
        "Rolling back migration v3: Test v3",
        "Rolling back migration v2: Test v2",
        "✅ Successfully rolled back to version 1",
    ]
    mgr = manager(database, pkg2)
    assert mgr.status().database_version == 1
    assert "x" not in columns(mgr)
    assert mgr.validate().valid
    # v1 is written as model operations, so it can be rolled back too.
    mgr.rollback(0)
    assert not {"baselinr_runs", "baselinr_results"} & set(inspect(mgr.engine).get_table_names())


def test_chain_and_target_errors(database: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(database.config)
    r = run(capsys, "migrate", "apply", "-c", cfg, "--target", str(LATEST + 4))
    assert r.code == 2
    assert f"Missing migrations for versions: {{{', '.join(str(LATEST + i) for i in range(1, 5))}}}" in r.err
    gap = write_package(tmp_path / "p", {3: sql_migration(3, "SELECT 1;")}, code_version=3)
    r = run(capsys, "migrate", "apply", "-c", cfg, "--migrations", gap)
    assert r.code == 2
    assert "Missing migrations for versions: {2}" in r.err
    with pytest.raises(ValueError, match=r"Missing migrations for versions: \{2\}"):
        manager(database, gap).apply()
    two = write_package(tmp_path / "q", {2: sql_migration(2, "CREATE TABLE baselinr_x (id INTEGER);")})
    manager(database, two).apply()
    with pytest.raises(UsageError, match="below the database version"):
        manager(database, two).apply(1)
    v1_only = write_package(tmp_path / "r", {})
    r = run(capsys, "migrate", "status", "-c", cfg, "--migrations", v1_only)
    assert r.code == 1
    assert "❌ Database schema is ahead (v2 > v1)" in r.out


def test_dry_run_changes_nothing_and_shows_sql(database: Database, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(database.config)
    r = run(capsys, "migrate", "apply", "--config", cfg, "--target", "1", "--dry-run")
    assert r.code == 0
    lines = r.out.splitlines()
    assert lines[:3] == [
        "🔍 DRY RUN MODE - No changes will be applied",
        "",
        "[DRY RUN] Would apply v1: Initial schema with runs, results, events, and table_state tables",
    ]
    assert "CREATE TABLE baselinr_runs (" in r.out
    if database.dialect == "mysql":
        assert "not atomic" in r.out and "DATETIME(6)" in r.out
    else:
        assert "in one transaction" in r.out
    mgr = MigrationManager.from_settings(load_config(database.config))
    assert mgr.status().state == "not_initialized"
    assert "baselinr_runs" not in inspect(mgr.engine).get_table_names()


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
def test_concurrent_index_runs_outside_a_transaction(
    database: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pkg = write_package(
        tmp_path / "p", {2: sql_migration(2, "CREATE INDEX CONCURRENTLY idx_runs_env ON baselinr_runs (environment);")}
    )
    r = run(capsys, "migrate", "apply", "-c", str(database.config), "--migrations", pkg, "--dry-run")
    assert "not atomic" in r.out
    r = run(capsys, "migrate", "apply", "-c", str(database.config), "--migrations", pkg)
    assert r.code == 0, r.err
    mgr = manager(database, pkg)
    assert "idx_runs_env" in {i["name"] for i in inspect(mgr.engine).get_indexes("baselinr_runs")}
    assert mgr.status().state == "up_to_date"
