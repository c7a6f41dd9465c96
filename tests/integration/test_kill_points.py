"""Every kill point of a tracked (non-transactional) migration is recoverable.

On MariaDB and Snowflake (the ``fakesnow`` emulator) DDL commits on its own,
and on PostgreSQL ``CREATE INDEX CONCURRENTLY`` cannot run in a transaction,
so such a migration is run statement by statement with its progress recorded. A
real ``baselinr migrate apply`` process is killed (``os._exit``, through the
``BASELINR_TEST_KILL_AT`` hook in ``baselinr.storage.migrations.faults``: no
cleanup, no lock release, no rollback) at every statement boundary, on both
sides of every progress write; ``baselinr migrate apply --resume`` must then
bring the database to the new version with every statement's effect there
exactly once, and ``validate`` must pass.

The test ids are the kill-point matrix: one test per (dialect, point).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.conftest import Database, make_database
from tests.integration.test_snowflake import SF
from tests.support.cli import run, run_process
from tests.support.packages import sql_migration, write_package
from tests.support.snowflake import SnowflakeEmulator, start_emulator

MARIADB_V2 = """
ALTER TABLE baselinr_runs ADD COLUMN k1 INTEGER;
CREATE TABLE baselinr_kill_t (id INTEGER, note VARCHAR(20));
INSERT INTO baselinr_kill_t (id, note) VALUES (1, 'once');
CREATE INDEX idx_kill_t_note ON baselinr_kill_t (note);
"""
# Snowflake has no secondary indexes, and its DML is not wrapped with its
# progress row (see SnowflakeDialect): the DDL boundaries are the ones tested.
SNOWFLAKE_V2 = """
ALTER TABLE baselinr_runs ADD COLUMN k1 INTEGER;
CREATE TABLE baselinr_kill_t (id INTEGER, note VARCHAR(20));
ALTER TABLE baselinr_kill_t ADD COLUMN k2 VARCHAR(5);
"""


@pytest.fixture(scope="module")
def emulator(server_root: Path) -> Iterator[SnowflakeEmulator]:
    server = start_emulator(server_root)
    yield server
    server.stop()


def points(statements: int) -> list[str]:
    out = ["before-statements"]
    for k in range(1, statements + 1):
        out += [f"statement-{k}:before-progress", f"statement-{k}:after-progress"]
    return [*out, "before-finish"]


MARIADB_POINTS = points(4)
SNOWFLAKE_POINTS = points(3)


def kill_then_resume(
    capsys: pytest.CaptureFixture[str], config: Path, package: str, pkg_root: Path, point: str, *command: str
) -> tuple[Any, Any]:
    direction = "down" if command[0] == "rollback" else "up"
    env = {
        "BASELINR_TEST_KILL_AT": f"v2:{direction}:{point}",
        "PYTHONPATH": f"{pkg_root}:{Path(__file__).resolve().parents[2]}",
    }
    killed = run_process("migrate", *command, "--config", str(config), "--migrations", package, env=env)
    assert killed.code == 137, (point, killed.out, killed.err)
    status = run(capsys, "migrate", "status", "--config", str(config), "--migrations", package)
    return killed, status


@pytest.mark.parametrize("point", MARIADB_POINTS)
def test_mariadb_every_kill_point_resumes(
    point: str, tmp_path: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    db: Database = make_database("mysql", tmp_path, request)
    pkg_root = tmp_path / "pkgs"
    pkg = write_package(pkg_root, {2: sql_migration(2, MARIADB_V2)})
    cfg = str(db.config)
    assert run(capsys, "migrate", "apply", "--config", cfg, "--migrations", pkg, "--target", "1").code == 0
    _, status = kill_then_resume(capsys, db.config, pkg, pkg_root, point, "apply")
    assert status.code == 1 and "Migration v2 was interrupted" in status.out, status.out
    resumed = run(capsys, "migrate", "apply", "--config", cfg, "--migrations", pkg, "--resume")
    assert resumed.code == 0, (point, resumed.err)
    assert run(capsys, "migrate", "validate", "--config", cfg, "--migrations", pkg).code == 0
    assert run(capsys, "migrate", "status", "--config", cfg, "--migrations", pkg).code == 0
    c = db.connection
    url = sa.engine.URL.create(
        "mysql+pymysql", username=c["username"], password=c["password"], host=c["host"], port=c["port"], database=c["database"]
    )
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            insp = sa.inspect(conn)
            assert "k1" in {col["name"] for col in insp.get_columns("baselinr_runs")}
            assert "idx_kill_t_note" in {i["name"] for i in insp.get_indexes("baselinr_kill_t")}
            # The INSERT ran exactly once, whichever side of its progress write the kill fell.
            assert conn.execute(sa.text("SELECT COUNT(*) FROM baselinr_kill_t")).scalar() == 1
            row = conn.execute(sa.text("SELECT status, statements_done FROM baselinr_schema_version WHERE version = 2")).one()
            assert tuple(row) == ("applied", 4)
    finally:
        engine.dispose()


@pytest.mark.parametrize("point", SNOWFLAKE_POINTS)
def test_snowflake_every_kill_point_resumes(
    point: str,
    emulator: SnowflakeEmulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sf = SF(emulator, tmp_path)
    pkg_root = tmp_path / "pkgs"
    pkg = write_package(pkg_root, {2: sql_migration(2, SNOWFLAKE_V2)})
    cfg = str(sf.config)
    assert run(capsys, "migrate", "apply", "--config", cfg, "--migrations", pkg, "--target", "1").code == 0
    _, status = kill_then_resume(capsys, sf.config, pkg, pkg_root, point, "apply")
    assert status.code == 1 and "Migration v2 was interrupted" in status.out, status.out
    # The killed runner's lease would run out after its 60 s; expiry itself is
    # tested in test_snowflake.py, so free it here as its expiry would.
    sf.query("UPDATE _baselinr_migration_lock SET owner = NULL, expires_at = NULL")
    resumed = run(capsys, "migrate", "apply", "--config", cfg, "--migrations", pkg, "--resume")
    assert resumed.code == 0, (point, resumed.err)
    assert run(capsys, "migrate", "validate", "--config", cfg, "--migrations", pkg).code == 0
    assert "K1" in {k.upper() for k in sf.columns("baselinr_runs")}
    assert "K2" in {k.upper() for k in sf.columns("baselinr_kill_t")}
    [row] = sf.query("SELECT status, statements_done FROM baselinr_schema_version WHERE version = 2")
    assert tuple(row) == ("applied", 3)


# --- a rollback killed at every point: 'rollback --target N --resume' finishes it ---

ROLLBACK_UP = "ALTER TABLE baselinr_runs ADD COLUMN k1 INTEGER; CREATE TABLE baselinr_kill_t (id INTEGER, note VARCHAR(20));"
ROLLBACK_DOWN = "DROP TABLE baselinr_kill_t; ALTER TABLE baselinr_runs DROP COLUMN k1;"
ROLLBACK_POINTS = points(2)


def check_rollback_recovers(
    capsys: pytest.CaptureFixture[str], config: Path, pkg_root: Path, point: str, free_lock: Any = None
) -> None:
    pkg = write_package(pkg_root, {2: sql_migration(2, ROLLBACK_UP, ROLLBACK_DOWN)})
    cfg = str(config)
    assert run(capsys, "migrate", "apply", "--config", cfg, "--migrations", pkg).code == 0
    _, status = kill_then_resume(capsys, config, pkg, pkg_root, point, "rollback", "--target", "1")
    assert status.code == 1 and "Migration v2 was interrupted while being rolled back" in status.out, status.out
    assert "baselinr migrate rollback --target 1 --resume" in status.out
    if free_lock is not None:
        free_lock()
    # Neither a plain apply nor a plain rollback runs over it ...
    refused = run(capsys, "migrate", "apply", "--config", cfg, "--migrations", pkg, "--resume")
    assert refused.code == 4 and "rollback --target 1 --resume" in refused.err, refused.err
    assert run(capsys, "migrate", "rollback", "--config", cfg, "--migrations", pkg, "--target", "1").code == 4
    # ... the documented command finishes the rollback.
    resumed = run(capsys, "migrate", "rollback", "--config", cfg, "--migrations", pkg, "--target", "1", "--resume")
    assert resumed.code == 0, (point, resumed.err)
    after = run(capsys, "migrate", "status", "--config", cfg, "--migrations", pkg, "--output", "json")
    doc = json.loads(after.out)
    assert (doc["database_version"], doc["problems"]) == (1, []), doc
    assert run(capsys, "migrate", "validate", "--config", cfg, "--migrations", pkg).code == 0
    # The schema is v1's again: v2 applies cleanly on top of it.
    again = run(capsys, "migrate", "apply", "--config", cfg, "--migrations", pkg)
    assert again.code == 0, again.err


@pytest.mark.parametrize("point", ROLLBACK_POINTS)
def test_mariadb_every_rollback_kill_point_resumes(
    point: str, tmp_path: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    db: Database = make_database("mysql", tmp_path, request)
    check_rollback_recovers(capsys, db.config, tmp_path / "pkgs", point)


@pytest.mark.parametrize("point", ROLLBACK_POINTS)
def test_snowflake_every_rollback_kill_point_resumes(
    point: str, emulator: SnowflakeEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sf = SF(emulator, tmp_path)

    def free_lock() -> None:  # as the killed runner's lease running out would (see above)
        sf.query("UPDATE _baselinr_migration_lock SET owner = NULL, expires_at = NULL")

    check_rollback_recovers(capsys, sf.config, tmp_path / "pkgs", point, free_lock)


# --- PostgreSQL: a migration with CREATE INDEX CONCURRENTLY runs tracked too ---

POSTGRES_V2 = (
    "CREATE INDEX CONCURRENTLY idx_kill_runs_env ON baselinr_runs (environment); ALTER TABLE baselinr_runs ADD COLUMN k1 INTEGER;"
)


@pytest.mark.parametrize("via", ["direct", "pgbouncer"])
@pytest.mark.parametrize("point", points(2))
def test_postgres_every_kill_point_resumes(
    point: str, via: str, tmp_path: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    db: Database = make_database("postgres", tmp_path, request)
    if via == "pgbouncer":  # the killed runner and the one that resumes, through transaction pooling
        pooler = request.getfixturevalue("poolers").get("transaction")
        db.connection = pooler.connection(db.connection["database"])
        db.write_config()
    pkg_root = tmp_path / "pkgs"
    pkg = write_package(pkg_root, {2: sql_migration(2, POSTGRES_V2)})
    cfg = str(db.config)
    assert run(capsys, "migrate", "apply", "--config", cfg, "--migrations", pkg, "--target", "1").code == 0
    _, status = kill_then_resume(capsys, db.config, pkg, pkg_root, point, "apply")
    assert status.code == 1 and "Migration v2 was interrupted" in status.out, status.out
    resumed = run(capsys, "migrate", "apply", "--config", cfg, "--migrations", pkg, "--resume")
    assert resumed.code == 0, (point, resumed.err)
    assert run(capsys, "migrate", "validate", "--config", cfg, "--migrations", pkg).code == 0
    c = db.connection
    url = sa.engine.URL.create(
        "postgresql+psycopg2",
        username=c["username"],
        password=c["password"],
        host=c["host"],
        port=c["port"],
        database=c["database"],
    )
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            insp = sa.inspect(conn)
            assert "k1" in {col["name"] for col in insp.get_columns("baselinr_runs")}
            assert "idx_kill_runs_env" in {i["name"] for i in insp.get_indexes("baselinr_runs")}
    finally:
        engine.dispose()


# --- a Python step commits with the version's final record: it never runs twice ---

PYTHON_V2 = """
def up(conn):
    conn.execute(text("INSERT INTO baselinr_kill_t (id, note) VALUES (2, 'python')"))


migration = Migration(
    version=2,
    description="SQL then Python",
    up_sql="CREATE TABLE baselinr_kill_t (id INTEGER, note VARCHAR(20));",
    up_python=up,
)
"""


@pytest.mark.parametrize("point", ["statement-1:after-progress", "python:before-commit", "python:after-commit"])
def test_mariadb_python_step_runs_once(
    point: str, tmp_path: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    db: Database = make_database("mysql", tmp_path, request)
    pkg_root = tmp_path / "pkgs"
    pkg = write_package(pkg_root, {2: PYTHON_V2})
    cfg = str(db.config)
    assert run(capsys, "migrate", "apply", "--config", cfg, "--migrations", pkg, "--target", "1").code == 0
    _, status = kill_then_resume(capsys, db.config, pkg, pkg_root, point, "apply")
    if point == "python:after-commit":
        assert status.code == 0, status.out  # the Python step and the final record committed together
    else:
        assert status.code == 1 and "Migration v2 was interrupted" in status.out, status.out
        resumed = run(capsys, "migrate", "apply", "--config", cfg, "--migrations", pkg, "--resume")
        assert resumed.code == 0, (point, resumed.err)
    assert run(capsys, "migrate", "validate", "--config", cfg, "--migrations", pkg).code == 0
    c = db.connection
    url = sa.engine.URL.create(
        "mysql+pymysql", username=c["username"], password=c["password"], host=c["host"], port=c["port"], database=c["database"]
    )
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT COUNT(*) FROM baselinr_kill_t")).scalar() == 1
    finally:
        engine.dispose()
