"""The schema model follows SQL migrations: the guide's own SQL round-trips through backup and restore.

On SQLite, PostgreSQL and MariaDB (the Snowflake emulator's cases are in
``test_snowflake.py``): the guide's "Step 2" cost-tracking migration, its
"Adding a New Table" in each dialect's spelling, a column type change and a
rename, each with rows; ``validate`` knows their columns; a backup holds
every value and a restore into an empty database gives them all back. A
column or a ``baselinr_*`` table that no migration made fails the backup
(exit 1, nothing published) and both ways out the message names work when
followed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from baselinr.config import load_config
from baselinr.storage.migrations.manager import MigrationManager
from tests.conftest import Database, make_database
from tests.integration.test_guide_examples import COST_TRACKING_DOWN, COST_TRACKING_UP, MODIFY_TYPE, SQLITE_RECREATE
from tests.support.cli import run
from tests.support.packages import sql_migration, write_package

NEW_TABLE = {
    "mysql": "id INTEGER PRIMARY KEY AUTO_INCREMENT",  # the guide's own spelling
    "postgres": "id SERIAL PRIMARY KEY",
    "sqlite": "id INTEGER PRIMARY KEY AUTOINCREMENT",
}
NEW_TABLE_SQL = """
    CREATE TABLE baselinr_new_feature (
        {id},
        feature_name VARCHAR(255) NOT NULL,
        created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
    );

    CREATE INDEX idx_feature_name
    ON baselinr_new_feature (feature_name);
"""
TYPE_CHANGE = {
    "postgres": "ALTER TABLE baselinr_runs ALTER COLUMN column_count TYPE BIGINT",
    "mysql": "ALTER TABLE baselinr_runs MODIFY COLUMN column_count BIGINT",
    "sqlite": MODIFY_TYPE.replace("row_count", "column_count"),  # SQLite has no ALTER COLUMN: the guide's pattern
}
RENAME = "ALTER TABLE baselinr_runs RENAME COLUMN environment TO env_name"


def _cli(capsys: pytest.CaptureFixture[str], db: Database, pkg: str, *args: str) -> Any:
    return run(capsys, *args, "--config", str(db.config), "--migrations", pkg)


def _sql(db: Database, pkg: str, *statements: str) -> None:
    mgr = MigrationManager.from_settings(load_config(db.config), migrations_package=pkg)
    try:
        with mgr.engine.begin() as conn:
            for s in statements:
                conn.execute(text(s))
    finally:
        mgr.engine.dispose()


def _rows(db: Database, pkg: str, sql: str) -> list[tuple[Any, ...]]:
    mgr = MigrationManager.from_settings(load_config(db.config), migrations_package=pkg)
    try:
        with mgr.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql)).fetchall()]
    finally:
        mgr.engine.dispose()


def _applied_with(capsys: pytest.CaptureFixture[str], database: Database, pkg: str, *rows: str) -> None:
    """Apply the whole chain of ``pkg``, then write ``rows`` (SQL statements)."""
    r = _cli(capsys, database, pkg, "migrate", "apply")
    assert r.code == 0, r.out + r.err
    _sql(database, pkg, *rows)


def _index_names(db: Database, pkg: str, table: str) -> set[str]:
    from sqlalchemy import inspect

    mgr = MigrationManager.from_settings(load_config(db.config), migrations_package=pkg)
    try:
        return {str(i["name"]) for i in inspect(mgr.engine).get_indexes(table)}
    finally:
        mgr.engine.dispose()


def _target(database: Database, tmp_path: Path, request: pytest.FixtureRequest) -> Database:
    (tmp_path / "target").mkdir()
    return make_database(database.dialect, tmp_path / "target", request)


def _round_trip(
    capsys: pytest.CaptureFixture[str], database: Database, target: Database, pkg: str, dest: Path, *queries: str
) -> dict[str, Any]:
    """Validate (no warning about the model), back up (exit 0, no warning), restore into ``target``,
    and check that every query returns the same rows on both sides. Returns the manifest."""
    r = _cli(capsys, database, pkg, "migrate", "validate", "--output", "json")
    data = json.loads(r.out)
    assert r.code == 0 and data["valid"], r.out + r.err
    assert not [w for w in data["warnings"] if "schema model" in w], data["warnings"]
    r = _cli(capsys, database, pkg, "backup", "create", "--dest", str(dest), "--name", "b1", "--output", "json")
    assert r.code == 0, r.out + r.err
    assert json.loads(r.out)["warnings"] == []
    r = run(capsys, "backup", "verify", "b1", "--dest", str(dest), "--migrations", pkg)
    assert r.code == 0, r.out + r.err
    r = _cli(capsys, target, pkg, "backup", "restore", "b1", "--dest", str(dest))
    assert r.code == 0, r.out + r.err
    for q in queries:
        source_rows = _rows(database, pkg, q)
        assert source_rows, q
        assert _rows(target, pkg, q) == source_rows, q
    r = _cli(capsys, target, pkg, "migrate", "validate", "--output", "json")
    assert r.code == 0 and json.loads(r.out)["valid"], r.out
    manifest: dict[str, Any] = json.loads((dest / "b1" / "manifest.json").read_text())
    return manifest


def test_guide_step_2_sql_round_trips(
    capsys: pytest.CaptureFixture[str], database: Database, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    pkg = write_package(tmp_path / "pkgs", {2: sql_migration(2, COST_TRACKING_UP, COST_TRACKING_DOWN)})
    _applied_with(
        capsys,
        database,
        pkg,
        "INSERT INTO baselinr_runs (run_id, dataset_name, profiled_at, cost_dollars, bytes_scanned) "
        "VALUES ('r1', 'orders', '2024-01-01 00:00:00', 1.5, 1000)",
        "INSERT INTO baselinr_runs (run_id, dataset_name, profiled_at, cost_dollars, bytes_scanned) "
        "VALUES ('r2', 'orders', '2024-01-02 00:00:00', 12345.6789, 9000000000)",
    )
    target = _target(database, tmp_path, request)
    manifest = _round_trip(
        capsys,
        database,
        target,
        pkg,
        tmp_path / "backups",
        "SELECT run_id, cost_dollars, bytes_scanned FROM baselinr_runs ORDER BY run_id",
    )
    runs = next(t for t in manifest["tables"] if t["name"] == "baselinr_runs")
    assert {"cost_dollars", "bytes_scanned"} <= {c["name"] for c in runs["columns"]}
    assert _rows(target, pkg, "SELECT cost_dollars, bytes_scanned FROM baselinr_runs WHERE run_id = 'r1'") == [(1.5, 1000)]


def test_guide_new_table_round_trips_with_its_rows_and_index(
    capsys: pytest.CaptureFixture[str], database: Database, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    up = NEW_TABLE_SQL.format(id=NEW_TABLE[database.dialect])
    pkg = write_package(tmp_path / "pkgs", {2: sql_migration(2, up)})
    _applied_with(
        capsys,
        database,
        pkg,
        "INSERT INTO baselinr_new_feature (feature_name, created_at) VALUES ('a', '2024-03-01 12:00:00')",
        "INSERT INTO baselinr_new_feature (feature_name, created_at) VALUES ('b', '2024-03-02 12:00:00')",
    )
    target = _target(database, tmp_path, request)
    _round_trip(
        capsys,
        database,
        target,
        pkg,
        tmp_path / "backups",
        "SELECT id, feature_name, created_at FROM baselinr_new_feature ORDER BY id",
    )
    # The generated key continues after the rows restored, and the index is there.
    _sql(target, pkg, "INSERT INTO baselinr_new_feature (feature_name) VALUES ('c')")
    assert _rows(target, pkg, "SELECT id FROM baselinr_new_feature WHERE feature_name = 'c'")[0][0] > 2
    assert "idx_feature_name" in _index_names(target, pkg, "baselinr_new_feature")


def test_type_change_and_rename_round_trip(
    capsys: pytest.CaptureFixture[str], database: Database, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    pkg = write_package(tmp_path / "pkgs", {2: sql_migration(2, TYPE_CHANGE[database.dialect]), 3: sql_migration(3, RENAME)})
    assert _cli(capsys, database, pkg, "migrate", "apply", "--target", "2").code == 0
    _sql(
        database,
        pkg,
        "INSERT INTO baselinr_runs (run_id, dataset_name, profiled_at, environment, column_count) "
        "VALUES ('r1', 'orders', '2024-01-01 00:00:00', 'prod', 7)",
    )
    r = _cli(capsys, database, pkg, "migrate", "apply")
    assert r.code == 0, r.out + r.err
    _sql(
        database,
        pkg,
        "INSERT INTO baselinr_runs (run_id, dataset_name, profiled_at, env_name, column_count) "
        "VALUES ('r2', 'orders', '2024-01-02 00:00:00', 'dev', 5000000000)",
    )
    mgr = MigrationManager.from_settings(load_config(database.config), migrations_package=pkg)
    model, exact = mgr.chain.model_at(3, database.dialect)
    mgr.engine.dispose()
    runs = model.tables["baselinr_runs"]
    assert exact and runs.column("environment") is None
    assert runs.column("env_name") is not None and runs.column("column_count").type.family == "bigint"  # type: ignore[union-attr]
    target = _target(database, tmp_path, request)
    _round_trip(
        capsys,
        database,
        target,
        pkg,
        tmp_path / "backups",
        "SELECT run_id, env_name, column_count FROM baselinr_runs ORDER BY run_id",
    )


def test_sqlite_copy_and_swap_rebuild_round_trips(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    database = make_database("sqlite", tmp_path, request)
    pkg = write_package(tmp_path / "pkgs", {2: sql_migration(2, SQLITE_RECREATE)})  # the guide's, every column written
    _applied_with(
        capsys,
        database,
        pkg,
        "INSERT INTO baselinr_runs (run_id, dataset_name, profiled_at, new_field) VALUES ('r1', 'd', '2024-01-01', 'x')",
    )
    target = _target(database, tmp_path, request)
    _round_trip(capsys, database, target, pkg, tmp_path / "backups", "SELECT run_id, new_field FROM baselinr_runs")


def test_hand_added_column_is_kept_and_restored(
    capsys: pytest.CaptureFixture[str], database: Database, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    pkg = write_package(tmp_path / "pkgs", {})
    assert _cli(capsys, database, pkg, "migrate", "apply").code == 0
    seen = {"postgres": "TIMESTAMP WITH TIME ZONE", "mysql": "DATETIME(6)", "sqlite": "TIMESTAMP"}[database.dialect]
    _sql(
        database,
        pkg,
        "ALTER TABLE baselinr_runs ADD COLUMN notes VARCHAR(50)",
        "ALTER TABLE baselinr_runs ADD COLUMN cost DECIMAL(10, 4)",
        f"ALTER TABLE baselinr_runs ADD COLUMN seen {seen}",
        "INSERT INTO baselinr_runs (run_id, dataset_name, profiled_at, notes, cost, seen) "
        "VALUES ('r1', 'd', '2024-01-01', 'keep me', 1.25, '2024-05-01 10:00:00.123456+02:00')"
        if database.dialect == "postgres"
        else "INSERT INTO baselinr_runs (run_id, dataset_name, profiled_at, notes, cost, seen) "
        "VALUES ('r1', 'd', '2024-01-01', 'keep me', 1.25, '2024-05-01 10:00:00.123456')",
    )
    dest = tmp_path / "backups"
    r = _cli(capsys, database, pkg, "backup", "create", "--dest", str(dest), "--name", "b1", "--output", "json")
    assert r.code == 0, r.out + r.err
    warnings = json.loads(r.out)["warnings"]
    assert any("baselinr_runs.notes" in w and "restore adds them back" in w for w in warnings), warnings
    manifest = json.loads((dest / "b1" / "manifest.json").read_text())
    assert manifest["kept_columns"] == ["baselinr_runs.notes", "baselinr_runs.cost", "baselinr_runs.seen"]
    r = run(capsys, "backup", "verify", "b1", "--dest", str(dest), "--migrations", pkg)
    assert r.code == 0 and "no migration made them (restore adds them back): baselinr_runs.notes" in r.out, r.out
    target = _target(database, tmp_path, request)
    r = _cli(capsys, target, pkg, "backup", "restore", "b1", "--dest", str(dest))
    assert r.code == 0, r.out + r.err
    assert "added baselinr_runs.notes back (VARCHAR(50))" in r.out and f"baselinr_runs.seen back ({seen})" in r.out, r.out
    q = "SELECT run_id, notes, cost, seen FROM baselinr_runs"
    assert _rows(target, pkg, q) == _rows(database, pkg, q)
    assert _rows(target, pkg, q)[0][:3] == ("r1", "keep me", 1.25)
    # validate still says the model does not know it (a warning, with what to do).
    r = _cli(capsys, target, pkg, "migrate", "validate")
    assert r.code == 0 and "baselinr_runs.notes is not in the schema model" in r.out, r.out


def test_hand_added_column_of_an_unknown_type_fails_the_backup_and_the_way_out_works(
    capsys: pytest.CaptureFixture[str], database: Database, tmp_path: Path
) -> None:
    pkg = write_package(tmp_path / "pkgs", {})
    assert _cli(capsys, database, pkg, "migrate", "apply").code == 0
    blob = {"postgres": "BYTEA", "mysql": "BLOB", "sqlite": "BLOB"}[database.dialect]
    _sql(database, pkg, f"ALTER TABLE baselinr_runs ADD COLUMN payload {blob}")
    dest = tmp_path / "backups"
    r = _cli(capsys, database, pkg, "backup", "create", "--dest", str(dest))
    assert r.code == 1, r.out + r.err
    assert "baselinr_runs.payload" in r.err and "--exclude-column baselinr_runs.payload" in r.err
    assert "Traceback" not in r.err and len(r.err.strip().splitlines()) == 1
    assert not dest.exists() or not list(dest.iterdir())  # nothing published, nothing half-written
    r = _cli(capsys, database, pkg, "backup", "create", "--dest", str(dest), "--name", "without",
             "--exclude-column", "baselinr_runs.payload")  # fmt: skip
    assert r.code == 0, r.out + r.err
    manifest = json.loads((dest / "without" / "manifest.json").read_text())
    assert manifest["excluded_columns"] == ["baselinr_runs.payload"] and manifest["kept_columns"] == []
    r = run(capsys, "backup", "verify", "without", "--dest", str(dest), "--migrations", pkg)
    assert r.code == 0 and "left out when the backup was taken (--exclude-*): baselinr_runs.payload" in r.out, r.out
    # A typo in the exclusion is a usage error, not a backup that ignores it; so is a model column.
    r = _cli(capsys, database, pkg, "backup", "create", "--dest", str(dest), "--exclude-column", "baselinr_runs.paylod")
    assert r.code == 2 and "baselinr_runs.paylod" in r.err
    r = _cli(capsys, database, pkg, "backup", "create", "--dest", str(dest), "--exclude-column", "baselinr_runs.status")
    assert r.code == 2 and "in the schema model" in r.err


@pytest.mark.parametrize("database", ["postgres", "mysql"], indirect=True)  # SQLite has no ADD COLUMN IF NOT EXISTS
def test_declaring_a_hand_added_column_in_a_migration_makes_it_the_models(
    capsys: pytest.CaptureFixture[str], database: Database, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    pkg = write_package(tmp_path / "pkgs", {})
    assert _cli(capsys, database, pkg, "migrate", "apply").code == 0
    _sql(database, pkg, "ALTER TABLE baselinr_runs ADD COLUMN notes VARCHAR(50)")
    _sql(
        database,
        pkg,
        "INSERT INTO baselinr_runs (run_id, dataset_name, profiled_at, notes) VALUES ('r1', 'd', '2024-01-01', 'n')",
    )
    keep = "ALTER TABLE baselinr_runs ADD COLUMN IF NOT EXISTS notes VARCHAR(50)"
    pkg2 = write_package(tmp_path / "pkgs2", {2: sql_migration(2, keep)})
    r = _cli(capsys, database, pkg2, "migrate", "apply")
    assert r.code == 0, r.out + r.err
    target = _target(database, tmp_path, request)
    manifest = _round_trip(capsys, database, target, pkg2, tmp_path / "backups2", "SELECT run_id, notes FROM baselinr_runs")
    assert manifest["kept_columns"] == []


def test_hand_made_table_fails_the_backup_and_both_ways_out_work(
    capsys: pytest.CaptureFixture[str], database: Database, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    pkg = write_package(tmp_path / "pkgs", {})
    assert _cli(capsys, database, pkg, "migrate", "apply").code == 0
    _sql(database, pkg, "CREATE TABLE baselinr_scratch (x INTEGER)", "INSERT INTO baselinr_scratch (x) VALUES (41)")
    dest = tmp_path / "backups"
    r = _cli(capsys, database, pkg, "backup", "create", "--dest", str(dest))
    assert r.code == 1 and "baselinr_scratch" in r.err and "--exclude-table baselinr_scratch" in r.err, r.err
    assert not dest.exists() or not list(dest.iterdir())
    r = _cli(capsys, database, pkg, "backup", "create", "--dest", str(dest), "--name", "w", "--exclude-table", "baselinr_scratch")
    assert r.code == 0, r.out + r.err
    assert json.loads((dest / "w" / "manifest.json").read_text())["excluded_tables"] == ["baselinr_scratch"]
    # A model table cannot be excluded.
    r = _cli(capsys, database, pkg, "backup", "create", "--dest", str(dest), "--exclude-table", "baselinr_runs")
    assert r.code == 2 and "baselinr_runs" in r.err

    pkg2 = write_package(tmp_path / "pkgs2", {2: sql_migration(2, "CREATE TABLE IF NOT EXISTS baselinr_scratch (x INTEGER)")})
    assert _cli(capsys, database, pkg2, "migrate", "apply").code == 0
    target = _target(database, tmp_path, request)
    _round_trip(capsys, database, target, pkg2, tmp_path / "backups2", "SELECT x FROM baselinr_scratch")


def test_a_statement_the_model_cannot_follow_is_named_by_lint_and_dry_run(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    database = make_database("sqlite", tmp_path, request)
    up = "ALTER TABLE baselinr_runs ADD COLUMN cost_dollars DECIMAL(10, 4);\nALTER TABLE baselinr_runs ADD COLUMN raw BLOB;"
    pkg = write_package(tmp_path / "pkgs", {2: sql_migration(2, up)})
    assert _cli(capsys, database, pkg, "migrate", "apply", "--target", "1").code == 0
    r = _cli(capsys, database, pkg, "migrate", "lint", "--output", "json")
    findings = json.loads(r.out)["findings"]
    unfollowed = [f for f in findings if f["rule"] == "model-unfollowed"]
    assert len(unfollowed) == 1 and unfollowed[0]["statement_index"] == 2, findings
    assert "BLOB" in unfollowed[0]["advice"] and "--exclude-column" in unfollowed[0]["advice"]
    r = _cli(capsys, database, pkg, "migrate", "apply", "--dry-run")
    assert r.code == 0 and "model-unfollowed" in r.out, r.out
    # The same statement offline, as a file: the same finding.
    sql_file = tmp_path / "v2_raw.sql"
    sql_file.write_text(up)
    r = run(capsys, "migrate", "lint", "--dialect", "sqlite", str(sql_file), "--output", "json")
    assert [f["statement_index"] for f in json.loads(r.out)["findings"] if f["rule"] == "model-unfollowed"] == [2]
    # Followed statements are not named: the first one is the model's after it.
    mgr = MigrationManager.from_settings(load_config(database.config), migrations_package=pkg)
    model, exact = mgr.chain.model_at(2, "sqlite")
    mgr.engine.dispose()
    assert not exact and model.tables["baselinr_runs"].column("cost_dollars") is not None


CTAS_WITH_OPERATIONS = """
from baselinr.storage.model import Column, CreateTable, Text, table

migration = Migration(
    version=2,
    description="Keep a copy of the runs",
    up_sql="CREATE TABLE baselinr_runs_archive AS SELECT run_id, dataset_name FROM baselinr_runs",
    down_sql="DROP TABLE baselinr_runs_archive",
    operations=[CreateTable(table("baselinr_runs_archive", Column("run_id", Text()), Column("dataset_name", Text())))],
)
"""


def test_following_the_advice_operations_beside_the_sql_makes_it_the_models(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # CREATE TABLE ... AS SELECT is not followed; the advice: declare it with operations beside the SQL.
    database = make_database("sqlite", tmp_path, request)
    pkg = write_package(tmp_path / "pkgs", {2: CTAS_WITH_OPERATIONS})
    assert _cli(capsys, database, pkg, "migrate", "apply", "--target", "1").code == 0
    _sql(database, pkg, "INSERT INTO baselinr_runs (run_id, dataset_name, profiled_at) VALUES ('r1', 'd', '2024-01-01')")
    r = _cli(capsys, database, pkg, "migrate", "lint", "--output", "json")
    assert not [f for f in json.loads(r.out)["findings"] if f["rule"] == "model-unfollowed"], r.out
    assert _cli(capsys, database, pkg, "migrate", "apply").code == 0
    target = _target(database, tmp_path, request)
    _round_trip(capsys, database, target, pkg, tmp_path / "backups", "SELECT run_id, dataset_name FROM baselinr_runs_archive")


def test_a_migration_that_seeds_rows_round_trips(
    capsys: pytest.CaptureFixture[str], database: Database, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # The restore replays the migrations (which insert their seed row) and then loads the backup's rows.
    up = (
        "CREATE TABLE baselinr_settings (k VARCHAR(20) PRIMARY KEY, v VARCHAR(50));\n"
        "INSERT INTO baselinr_settings (k, v) VALUES ('mode', 'seeded');"
    )
    pkg = write_package(tmp_path / "pkgs", {2: sql_migration(2, up)})
    assert _cli(capsys, database, pkg, "migrate", "apply").code == 0
    _sql(database, pkg, "UPDATE baselinr_settings SET v = 'changed'", "INSERT INTO baselinr_settings (k, v) VALUES ('x', 'y')")
    target = _target(database, tmp_path, request)
    _round_trip(capsys, database, target, pkg, tmp_path / "backups", "SELECT k, v FROM baselinr_settings ORDER BY k")
    assert _rows(target, pkg, "SELECT v FROM baselinr_settings WHERE k = 'mode'") == [("changed",)]


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
def test_a_chain_with_create_index_concurrently_restores(
    capsys: pytest.CaptureFixture[str], database: Database, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # A restore builds the schema in one transaction, where CONCURRENTLY cannot run.
    up = "CREATE INDEX CONCURRENTLY idx_runs_status ON baselinr_runs (status);\nVACUUM baselinr_runs;"
    pkg = write_package(tmp_path / "pkgs", {2: sql_migration(2, up, "DROP INDEX CONCURRENTLY idx_runs_status")})
    _applied_with(
        capsys,
        database,
        pkg,
        "INSERT INTO baselinr_runs (run_id, dataset_name, profiled_at, status) VALUES ('r1', 'd', '2024-01-01', 'ok')",
    )
    target = _target(database, tmp_path, request)
    _round_trip(capsys, database, target, pkg, tmp_path / "backups", "SELECT run_id, status FROM baselinr_runs")
    assert "idx_runs_status" in _index_names(target, pkg, "baselinr_runs")
