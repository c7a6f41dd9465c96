"""``baselinr migrate test``: every migration up, down and up again on a scratch database.

The project's own migrations pass it on SQLite (the default temporary
file), PostgreSQL and MariaDB (``--database URL``) and the Snowflake
emulator (``--config``, since the emulator's host and port travel in
``extra_params``). Packages with a broken down, an up that cannot run
twice, a down that leaves a version row, a failing down or up each fail it
with the exact mismatch, and a database that is not empty is refused
before anything runs.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml

from tests.conftest import Database
from tests.support.cli import run, run_process
from tests.support.packages import sql_migration, write_package
from tests.support.snowflake import SnowflakeEmulator, start_emulator

OWN_VERSIONS = 11
ALL_PHASES = ["up", "down", "reup"]


@pytest.fixture(scope="module")
def snowflake_server(server_root: Path) -> Iterator[SnowflakeEmulator]:
    server = start_emulator(server_root)
    yield server
    server.stop()


def url_of(db: Database) -> str:
    """A ``--database`` URL for a server database (the password has URL-special characters)."""
    c = db.connection
    scheme = "postgresql" if db.dialect == "postgres" else "mysql"
    return f"{scheme}://{quote(c['username'], safe='')}:{quote(c['password'], safe='')}@{c['host']}:{c['port']}/{c['database']}"


def where(db: Database) -> list[str]:
    """How a test names its scratch database: a file URL for SQLite, a server URL otherwise."""
    if db.dialect == "sqlite":
        return ["--database", f"sqlite:///{db.connection['filepath']}"]
    return ["--database", url_of(db)]


def selftest(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    result = run(capsys, "migrate", "test", "--output", "json", *args)
    assert result.out, result.err
    return result.code, json.loads(result.out)


def mismatches(report: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [
        (m["version"], m["phase"], m["kind"], m["table"], m["object"], m["expected"], m["found"]) for m in report["mismatches"]
    ]


def table_names(db: Database) -> set[str]:
    from sqlalchemy import create_engine, inspect

    from baselinr.config import settings_from_dict

    settings = settings_from_dict({"storage": {"connection": db.connection}}, env={})
    engine = create_engine(settings.storage.connection.url())
    try:
        with engine.connect() as conn:
            return {n.lower() for n in inspect(conn).get_table_names()}
    finally:
        engine.dispose()


# --- the project's own migrations pass -------------------------------------------


def test_own_migrations_pass_on_a_temporary_sqlite_file(capsys: pytest.CaptureFixture[str]) -> None:
    code, report = selftest(capsys)
    assert code == 0, report
    assert report["ok"] and report["dialect"] == "sqlite" and report["stopped_at"] is None
    assert [v["version"] for v in report["versions"]] == list(range(1, OWN_VERSIONS + 1))
    assert all(v["phases"] == ALL_PHASES and v["ok"] for v in report["versions"])
    assert report["mismatches"] == []
    # The scratch file lived in a temporary directory that is gone now.
    assert not Path(report["database"].removeprefix("sqlite:")).exists()


@pytest.mark.parametrize("dialect", ["postgres", "mysql"])
def test_own_migrations_pass_on_a_server_given_by_url(
    dialect: str, capsys: pytest.CaptureFixture[str], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from tests.conftest import make_database

    db = make_database(dialect, tmp_path, request)
    code, report = selftest(capsys, "--database", url_of(db))
    assert code == 0, report["mismatches"]
    assert report["dialect"] == dialect
    assert [(v["version"], v["phases"]) for v in report["versions"]] == [(v, ALL_PHASES) for v in range(1, OWN_VERSIONS + 1)]
    # It ran on that database: v11's tables are there, and the password is nowhere in the output.
    assert "baselinr_results" in table_names(db)
    assert db.connection["password"] not in json.dumps(report)


def test_own_migrations_pass_on_the_snowflake_emulator(
    capsys: pytest.CaptureFixture[str], snowflake_server: SnowflakeEmulator, tmp_path: Path
) -> None:
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump({"storage": {"connection": snowflake_server.connection()}}))
    code, report = selftest(capsys, "--config", str(config))
    assert code == 0, report["mismatches"]
    assert report["dialect"] == "snowflake"
    assert [(v["version"], v["phases"]) for v in report["versions"]] == [(v, ALL_PHASES) for v in range(1, OWN_VERSIONS + 1)]


def test_text_output_lists_each_version_and_a_verdict(tmp_path: Path) -> None:
    result = run_process("migrate", "test", "--target", "3")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].startswith("Testing each migration up, down and up again on sqlite:")
    assert [ln.split(":")[0] for ln in lines[1:4]] == [f"✅ v{v} {d}" for v, d in zip((1, 2, 3), descriptions(3), strict=True)]
    assert lines[-1] == "✅ v1..v3 passed on sqlite: up, down and up again match the schema each time"


def descriptions(n: int) -> list[str]:
    from baselinr.storage.migrations.versions import ALL_MIGRATIONS

    return [m.description.split(":")[0] for m in ALL_MIGRATIONS[:n]]


# --- and it fails where a migration is wrong ---------------------------------------

NOTES = "CREATE TABLE baselinr_notes (id INTEGER PRIMARY KEY, body VARCHAR(100))"
SEED = "INSERT INTO baselinr_runs (run_id, dataset_name, profiled_at) VALUES ('seed', 'seed', CURRENT_TIMESTAMP)"


def package(tmp_path: Path, *versions: str) -> list[str]:
    """``--migrations`` for Baselinr's v1 followed by ``versions`` (module sources of v2, v3 …)."""
    return ["--migrations", write_package(tmp_path / "pkgs", dict(enumerate(versions, start=2)))]


@pytest.mark.parametrize("database", ["sqlite", "postgres", "mysql"], indirect=True)
def test_a_down_that_drops_a_different_index(database: Database, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # v2 adds idx_runs_status, but its down drops v1's idx_runs_dataset_profiled instead.
    up = "CREATE INDEX idx_runs_status ON baselinr_runs (status)"
    down = {"default": "DROP INDEX idx_runs_dataset_profiled", "mysql": "DROP INDEX idx_runs_dataset_profiled ON baselinr_runs"}
    code, report = selftest(capsys, *where(database), *package(tmp_path, sql_migration(2, up, down)))
    assert code == 1
    found = mismatches(report)
    down_phase = [m for m in found if m[1] == "down"]
    assert ("extra_index", "baselinr_runs", "idx_runs_status", "absent", "(status)") in [m[2:] for m in down_phase]
    assert [m[2:5] for m in down_phase if m[2] == "missing_index"] == [
        ("missing_index", "baselinr_runs", "idx_runs_dataset_profiled")
    ]
    assert {m[2] for m in down_phase} == {"extra_index", "missing_index"}
    # Up again then finds idx_runs_status already there: the run stops at v2.
    assert found[-1][:3] == (2, "reup", "reup_failed") and "idx_runs_status" in found[-1][6]
    assert report["stopped_at"] == 2


def test_a_down_that_leaves_a_column(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    up = "ALTER TABLE baselinr_runs ADD COLUMN note VARCHAR(100)"
    down = "DELETE FROM baselinr_runs WHERE run_id = 'none'"  # forgets the column
    v3 = sql_migration(3, NOTES, "DROP TABLE baselinr_notes")
    code, report = selftest(capsys, *package(tmp_path, sql_migration(2, up, down), v3))
    assert code == 1
    assert mismatches(report) == [
        (2, "down", "extra_column", "baselinr_runs", "note", "absent", "VARCHAR(100)"),
        (2, "reup", "reup_failed", "", "", "", report["mismatches"][1]["found"]),
    ]
    assert "note" in report["mismatches"][1]["found"]
    assert report["mismatches"][0]["against"] == "schema before v2"
    # v3 was not tested: the schema after a broken v2 is not one the chain makes.
    assert [v["version"] for v in report["versions"]] == [2 - 1, 2] and report["stopped_at"] == 2
    text = run(capsys, "migrate", "test", *package(tmp_path, sql_migration(2, up, down), v3))
    assert "Stopped at v2: v3 was not tested" in text.out


@pytest.mark.parametrize("database", ["sqlite", "postgres"], indirect=True)
def test_an_up_that_cannot_run_again_after_its_down(
    database: Database, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # The down undoes the schema but not the seed row, so the second up's INSERT hits the primary key.
    v2 = sql_migration(2, f"{NOTES};\n{SEED};", "DROP TABLE baselinr_notes")
    code, report = selftest(capsys, *where(database), *package(tmp_path, v2))
    assert code == 1
    v1, v2_outcome = report["versions"]
    assert v1["ok"] and v2_outcome["phases"] == ALL_PHASES
    assert [(m["phase"], m["kind"]) for m in report["mismatches"]] == [("reup", "reup_failed")]
    assert "Migration v2" in report["mismatches"][0]["found"]


def test_a_down_that_leaves_a_row_in_the_version_table(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    stamp = (
        "INSERT INTO baselinr_schema_version (version, applied_at, description, status) "
        "VALUES (3, CURRENT_TIMESTAMP, 'x', 'applied')"
    )
    v2 = sql_migration(2, NOTES, f"DROP TABLE baselinr_notes;\n{stamp};")
    code, report = selftest(capsys, *package(tmp_path, v2))
    assert code == 1
    first = report["mismatches"][0]
    assert (first["version"], first["phase"], first["kind"], first["table"], first["found"]) == (
        2,
        "down",
        "version_row_left",
        "baselinr_schema_version",
        "rows for 3",
    )


def test_a_failing_down_and_a_failing_up(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, report = selftest(capsys, *package(tmp_path, sql_migration(2, NOTES, "DROP TABLE baselinr_no_such_table")))
    assert code == 1
    assert [(m["version"], m["phase"], m["kind"]) for m in report["mismatches"]] == [(2, "down", "down_failed")]
    assert "baselinr_no_such_table" in report["mismatches"][0]["found"]

    code, report = selftest(capsys, *package(tmp_path, sql_migration(2, "ALTER TABLE baselinr_nope ADD COLUMN x INTEGER")))
    assert code == 1
    assert [(m["version"], m["phase"], m["kind"]) for m in report["mismatches"]] == [(2, "up", "up_failed")]
    assert report["versions"][-1]["phases"] == ["up"]


def test_an_up_that_differs_from_its_declared_model(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # The operations say note is VARCHAR(100); the hand-written SQL makes it an INTEGER.
    v2 = (
        "from baselinr.storage.model import AddColumn, Column, String\n"
        "migration = Migration(version=2, description='note',\n"
        "    operations=[AddColumn('baselinr_runs', Column('note', String(100)))],\n"
        "    up_sql='ALTER TABLE baselinr_runs ADD COLUMN note INTEGER', down_sql='ALTER TABLE baselinr_runs DROP COLUMN note')\n"
    )
    code, report = selftest(capsys, *package(tmp_path, v2))
    assert code == 1
    assert [(m["phase"], m["kind"], m["object"], m["expected"], m["found"], m["against"]) for m in report["mismatches"]] == [
        (phase, "column_type", "note", "VARCHAR(100)", "INTEGER", "model v2") for phase in ("up", "reup")
    ]


def test_a_version_without_a_down_is_tested_up_only(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, report = selftest(
        capsys, *package(tmp_path, sql_migration(2, NOTES), sql_migration(3, SEED, "DELETE FROM baselinr_runs"))
    )
    assert code == 0, report["mismatches"]
    assert [(v["version"], v["phases"]) for v in report["versions"]] == [(1, ALL_PHASES), (2, ["up"]), (3, ALL_PHASES)]
    assert "no down migration" in report["versions"][1]["note"]


def test_markdown_and_text_show_the_mismatch(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    args = package(tmp_path, sql_migration(2, "ALTER TABLE baselinr_runs ADD COLUMN note VARCHAR(100)", "SELECT 1"))
    md = run(capsys, "migrate", "test", "--output", "markdown", *args)
    assert md.code == 1
    assert "| v2 | down | extra_column | baselinr_runs | note | absent | VARCHAR(100) | schema before v2 |" in md.out
    assert md.out.rstrip().endswith("**Failed**: 2 version(s), 2 mismatch(es)")
    text = run(capsys, "migrate", "test", *args)
    assert text.code == 1
    assert (
        "    down: extra_column baselinr_runs.note: expected absent, found VARCHAR(100) (against the schema before v2)"
        in text.out
    )
    assert text.out.rstrip().splitlines()[-1].endswith("1 of 2 version(s) failed on sqlite: 2 mismatch(es)")


# --- only on a scratch database ------------------------------------------------------


@pytest.mark.parametrize("database", ["sqlite", "postgres", "mysql"], indirect=True)
def test_refuses_a_database_with_a_table(database: Database, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "migrate", "apply", "--target", "1", "--config", str(database.config)).code == 0
    before = table_names(database)
    result = run(capsys, "migrate", "test", *where(database))
    assert result.code == 2
    assert result.err.count("\n") == 1 and "Traceback" not in result.err
    assert "Refusing to test on" in result.err and "already holds Baselinr's tables (baselinr_events" in result.err
    assert table_names(database) == before  # nothing ran


def test_refuses_a_database_with_any_table(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER)")
    result = run(capsys, "migrate", "test", "--database", f"sqlite:///{path}", "--output", "json")
    assert result.code == 2
    error = json.loads(result.out)
    assert error["exit_code"] == 2 and "already holds 1 table(s) (orders)" in error["error"]
    with sqlite3.connect(path) as conn:
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")] == ["orders"]


def test_the_config_in_the_environment_is_not_the_scratch_database(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # BASELINR_CONFIG points at the real database: migrate test leaves it alone and uses a temporary file.
    real = tmp_path / "real.db"
    with sqlite3.connect(real) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER)")
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump({"storage": {"connection": {"type": "sqlite", "filepath": str(real)}}}))
    monkeypatch.setenv("BASELINR_CONFIG", str(config))
    code, report = selftest(capsys, "--target", "1")
    assert code == 0, report
    assert report["database"] != f"sqlite:{real}" and report["database"].endswith("scratch.db")
    assert selftest(capsys, "--target", "1", "--config", str(config))[0] == 2  # named on the line: refused, it holds orders


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--database", "sqlite:///x.db", "--config", "c.yml"], "not both"),
        (["--database", "oracle://u@h/db"], "unknown scheme 'oracle'"),
        (["--database", "not a url"], "not a database URL"),
        (["--target", "99"], "outside this code's versions 1..11"),
        (["--target", "0"], "--target must be 1 or more"),
    ],
)
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    result = run(capsys, "migrate", "test", *args)
    assert result.code == 2, result
    assert message in result.err and result.err.count("\n") == 1


def test_an_unreachable_server_exits_3_without_the_password(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.support.servers import free_port

    result = run(capsys, "migrate", "test", "--database", f"postgresql://u:s3cr%40t@127.0.0.1:{free_port()}/scratch")
    assert result.code == 3
    assert "s3cr" not in result.err and "Cannot connect to postgres://u@127.0.0.1" in result.err
