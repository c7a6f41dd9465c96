"""A SQL-only ``apply`` / ``rollback`` runs on the bare driver and never imports SQLAlchemy,
with the output, results and version rows of the SQLAlchemy path; a chain with a Python
migration still runs (on SQLAlchemy's connection). SQLite, and real PostgreSQL and MariaDB
servers (MariaDB's migrations run tracked: progress rows instead of transactions)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import create_engine, text

from baselinr.storage.migrations.manager import MigrationManager
from tests.conftest import Database, make_database
from tests.support.cli import run_process
from tests.support.packages import sql_migration, write_package

# Everything of a version row but when, by whom and how fast.
_ROW = (
    "SELECT version, status, description, migration_script, checksum, checksum_algorithm, statements_done, "
    "statements_total, error_message FROM baselinr_schema_version ORDER BY version"
)


def _imported(stderr: str) -> set[str]:
    """The top-level packages ``-X importtime`` says were imported."""
    names = set()
    for line in stderr.splitlines():
        found = re.match(r"import time:\s+\d+ \|\s+\d+ \|\s*(\S+)", line)
        if found:
            names.add(found.group(1).split(".")[0])
    return names


def _apply(config: Path, *extra: str) -> tuple[int, str, set[str]]:
    r = run_process("migrate", *extra, "--config", str(config), env={"PYTHONWARNINGS": "ignore", "PYTHONPROFILEIMPORTTIME": "1"})
    return r.code, r.out, _imported(r.err)


def _same_output(out: str) -> str:
    """The output but its ``Database:`` line, which names each twin's own database."""
    return "\n".join(line for line in out.splitlines() if not line.startswith("Database: "))


def _rows(db: MigrationManager) -> list[tuple[Any, ...]]:
    with db.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(_ROW)).fetchall()]


def _twins(dialect: str, tmp_path: Path, request: pytest.FixtureRequest) -> tuple[Database, Database]:
    """Two fresh databases; the second's config sets an engine option, which only
    SQLAlchemy can apply, so it takes the SQLAlchemy path."""
    (tmp_path / "bare").mkdir(exist_ok=True)
    (tmp_path / "sqla").mkdir(exist_ok=True)
    bare = make_database(dialect, tmp_path / "bare", request)
    sqla = make_database(dialect, tmp_path / "sqla", request)
    sqla.connection = {**sqla.connection, "extra_params": {"pool_pre_ping": True}}
    sqla.write_config()
    return bare, sqla


@pytest.mark.parametrize("dialect", ["sqlite", "postgres", "mysql"])
def test_sql_only_apply_and_rollback_never_import_sqlalchemy(
    dialect: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    bare, sqla = _twins(dialect, tmp_path, request)
    for args in (("apply", "--target", "5"), ("apply",), ("rollback", "--target", "9"), ("apply",)):
        code, out, modules = _apply(bare.config, *args)
        assert code == 0, out
        assert "sqlalchemy" not in modules, args
        assert {"postgres": "psycopg2", "mysql": "pymysql", "sqlite": "sqlite3"}[dialect] in modules
        sqla_code, sqla_out, sqla_modules = _apply(sqla.config, *args)
        assert "sqlalchemy" in sqla_modules  # the comparison is with the other path
        assert (code, _same_output(out)) == (sqla_code, _same_output(sqla_out)), args
    bare_mgr, sqla_mgr = MigrationManager.from_config(str(bare.config)), MigrationManager.from_config(str(sqla.config))
    rows = _rows(bare_mgr)
    assert rows == _rows(sqla_mgr)
    assert [r[0] for r in rows] == list(range(1, bare_mgr.chain.latest + 1))
    bare_mgr.close()
    sqla_mgr.close()


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_bare_apply_returns_the_same_result_objects(dialect: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    bare, sqla = _twins(dialect, tmp_path, request)
    results = []
    for db in (bare, sqla):
        mgr = MigrationManager.from_config(str(db.config))
        result = mgr.apply(target=6).to_dict()
        assert mgr.db.has_engine is (db is sqla)  # the bare path made no engine
        for step in result["steps"]:
            step.pop("execution_time_ms")
        results.append(result)
        down = mgr.rollback(4).to_dict()
        for step in down["steps"]:
            step.pop("execution_time_ms")
        results.append(down)
        mgr.close()
    assert results[0] == results[2]
    assert results[1] == results[3]
    assert [s["version"] for s in results[0]["steps"]] == [1, 2, 3, 4, 5, 6]


def test_bare_apply_reports_a_failing_migration_like_the_sqlalchemy_path(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    pkg = write_package(tmp_path / "pkgs", {2: sql_migration(2, "CREATE TABLE t2 (id INTEGER); INSERT INTO nowhere VALUES (1)")})
    bare, sqla = _twins("postgres", tmp_path, request)
    outputs = []
    for db in (bare, sqla):
        r = run_process(
            "migrate",
            "apply",
            "--config",
            str(db.config),
            "--migrations",
            pkg,
            env={"PYTHONPATH": f"{Path(__file__).resolve().parents[2]}:{tmp_path / 'pkgs'}"},
        )
        outputs.append((r.code, r.out, r.err))
    assert outputs[0] == outputs[1]
    code, _, err = outputs[0]
    assert code == 4
    assert 'Migration v2 at statement 2 of 2 failed: relation "nowhere" does not exist' in err


def test_a_python_migration_still_runs_on_sqlalchemy(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    python_step = (
        "def up(conn):\n"
        "    conn.execute(text(\"INSERT INTO t2 (id) VALUES (:v)\"), {'v': 42})\n\n"
        "migration = Migration(version=3, description='Python backfill', up_python=up)\n"
    )
    pkg = write_package(tmp_path / "pkgs", {2: sql_migration(2, "CREATE TABLE t2 (id INTEGER)"), 3: python_step})
    db = make_database("postgres", tmp_path, request)
    mgr = MigrationManager.from_config(str(db.config), migrations_package=pkg)
    result = mgr.apply()
    assert [s.version for s in result.steps] == [1, 2, 3]
    assert mgr.db.has_engine  # the Python step needed SQLAlchemy
    with mgr.engine.connect() as conn:
        assert conn.execute(text("SELECT id FROM t2")).scalar_one() == 42
    assert mgr.status().state == "up_to_date"
    mgr.close()


def test_bare_status_json_matches_after_a_bare_apply(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    db = make_database("sqlite", tmp_path, request)
    code, _, modules = _apply(db.config, "apply")
    assert code == 0 and "sqlalchemy" not in modules
    r = run_process("migrate", "status", "--config", str(db.config), "--output", "json")
    assert json.loads(r.out)["state"] == "up_to_date"
    data = yaml.safe_load(db.config.read_text())
    engine = create_engine(f"sqlite:///{data['storage']['connection']['filepath']}")
    with engine.connect() as conn:
        applied_at = conn.execute(text("SELECT applied_at FROM baselinr_schema_version")).scalars().all()
    engine.dispose()
    # Written as SQLAlchemy's SQLite type writes timestamps: always with microseconds.
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", str(v)) for v in applied_at)
