"""``baselinr migrate move`` and a cross-dialect ``backup restore`` on real SQLite, PostgreSQL and MariaDB.

A SQLite database filled with the edge-case values of ``test_backup.populate``
moves to PostgreSQL and to MariaDB; every row is compared here, independently
of the tool's own digest, value by value under this file's reading of each
dialect's values; ids continue after the highest one moved; ``migrate
validate`` is green. The refusals (a value the target cannot keep, a target
with Baselinr tables, an unreachable target, a COPY backup into another
dialect) change nothing, and a move killed midway is named by the next run.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import inspect

from tests.conftest import Database, make_database
from tests.integration.test_backup import _engine, populate
from tests.support.cli import ROOT, run

if TYPE_CHECKING:
    from tests.support.snowflake import SnowflakeEmulator

MOVE = ("migrate", "move", "--exclude-table", "baselinr_not_ours")
VERSIONS = "baselinr_schema_version"


def _db(dialect: str, tmp_path: Path, request: pytest.FixtureRequest, name: str) -> Database:
    where = tmp_path / name
    where.mkdir()
    return make_database(dialect, where, request)


def _plain(v: Any) -> Any:
    """One reading of a value whatever dialect returned it: how this test compares rows."""
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, dt.datetime):
        return v.isoformat(sep=" ", timespec="microseconds")
    if isinstance(v, str) and len(v) >= 19 and v[4] == "-" and v[10] == " " and v[13] == ":":
        try:
            return dt.datetime.fromisoformat(v).isoformat(sep=" ", timespec="microseconds")
        except ValueError:
            return v
    return v


def rows_of(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every Baselinr table's rows (``baselinr_not_ours`` aside), by column name order, sorted."""
    engine = _engine(db)
    try:
        with engine.connect() as conn:
            if db.dialect == "mysql":
                conn.exec_driver_sql("SET time_zone = '+00:00'")
            out = {}
            for t in sorted(inspect(conn).get_table_names()):
                if not t.startswith("baselinr_") or t == "baselinr_not_ours":
                    continue
                # A migration's checksum is its SQL's on one dialect: a move records the target's (validate checks it).
                cols = sorted(c["name"] for c in inspect(conn).get_columns(t) if (t, c["name"]) != (VERSIONS, "checksum"))
                q = conn.dialect.identifier_preparer.quote
                result = conn.exec_driver_sql(f"SELECT {', '.join(q(c) for c in cols)} FROM {q(t)}")
                out[t] = sorted((tuple(_plain(v) for v in r) for r in result), key=repr)
            return out
    finally:
        engine.dispose()


def move(capsys: pytest.CaptureFixture[str], source: Database, target: Database, *extra: str) -> Any:
    r = run(capsys, *MOVE, "--config", str(source.config), "--to", str(target.config), "--output", "json", *extra)
    return r.code, json.loads(r.out) if r.out.strip() else {}, r.err


@pytest.fixture
def source(tmp_path: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]) -> Database:
    db = _db("sqlite", tmp_path, request, "source")
    populate(db, capsys, results=300)
    with sqlite3.connect(db.connection["filepath"]) as conn:
        # Ids with a gap and a highest one well past the row count: counters must continue after it.
        conn.execute("DELETE FROM baselinr_results WHERE id BETWEEN 10 AND 20")
        conn.execute("UPDATE baselinr_results SET id = 5000 WHERE id = 300")
        conn.execute(
            "INSERT INTO baselinr_schema_registry (table_name, column_name, column_type, column_hash, nullable, "
            "first_seen_at, last_seen_at, run_id) VALUES "
            "('orders', 'id', 'INTEGER', 'h1', 0, '2024-01-01 00:00:00', '2024-01-02 00:00:00', 'run-1'), "
            "('orders', 'note', 'TEXT', 'h2', 1, '2024-01-01 00:00:00.5', '2024-01-02 00:00:00', 'run-1')"
        )
    return db


@pytest.mark.parametrize("dialect", ["postgres", "mysql"])
def test_sqlite_moves_with_every_value_equal_and_ids_continue(
    dialect: str, source: Database, tmp_path: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    target = _db(dialect, tmp_path, request, "target")
    before = rows_of(source)
    code, out, err = move(capsys, source, target)
    assert code == 0, err
    assert out["verified"] is True and out["validation_errors"] == []
    assert {t["name"]: t["rows"] for t in out["tables"]} == {t: len(r) for t, r in before.items()}
    assert all(t["digest"] == t["target_digest"] for t in out["tables"])
    after = rows_of(target)
    assert sorted(after) == sorted(before)
    for table in before:
        assert after[table] == before[table], table
    r = run(capsys, "migrate", "validate", "--config", str(target.config))
    assert r.code == 0, r.out + r.err
    assert _next_id(target) == 5001
    engine = _engine(target)
    try:
        with engine.connect() as conn:
            flags = conn.exec_driver_sql("SELECT nullable FROM baselinr_schema_registry ORDER BY column_name").fetchall()
    finally:
        engine.dispose()
    assert [bool(f[0]) for f in flags] == [False, True]
    # The target holds no marker of the move once it is verified.
    assert not any(t.startswith("_baselinr") for t in _tables(target))


def _tables(db: Database) -> list[str]:
    engine = _engine(db)
    try:
        return list(inspect(engine).get_table_names())
    finally:
        engine.dispose()


@pytest.mark.parametrize("dialect", ["postgres", "mysql"])
def test_a_value_the_target_cannot_keep_is_refused_before_anything_is_written(
    dialect: str, source: Database, tmp_path: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    with sqlite3.connect(source.connection["filepath"]) as conn:
        # SQLite ignores VARCHAR(36); PostgreSQL and MariaDB do not.
        conn.execute("UPDATE baselinr_runs SET run_id = 'r' || printf('%040d', 7) WHERE run_id = 'run-7'")
    target = _db(dialect, tmp_path, request, "target")
    code, out, err = move(capsys, source, target)
    assert code == 2, err
    assert out["ok"] is False
    assert "baselinr_runs.run_id" in out["error"] and "r0000000000000000000000000000000000000007" in out["error"]
    assert "41 characters, longer than the column's 36" in out["error"] and "Nothing was written" in out["error"]
    assert len(err.strip().splitlines()) == 1
    assert _tables(target) == []
    # The advice, followed: change that value in the source, run again.
    with sqlite3.connect(source.connection["filepath"]) as conn:
        conn.execute("UPDATE baselinr_runs SET run_id = 'run-7' WHERE run_id LIKE 'r0000%'")
    code, out, err = move(capsys, source, target)
    assert code == 0, err


def test_a_target_with_baselinr_tables_is_refused_unless_replace(
    source: Database, tmp_path: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    target = _db("postgres", tmp_path, request, "target")
    r = run(capsys, "migrate", "apply", "--config", str(target.config), "--target", "3")
    assert r.code == 0, r.err
    code, out, err = move(capsys, source, target)
    assert code == 2 and "already has Baselinr tables" in out["error"] and "--replace" in out["error"]
    assert len(err.strip().splitlines()) == 1
    code, out, err = move(capsys, source, target, "--replace")
    assert code == 0, err
    assert out["verified"] is True and "baselinr_schema_version" in out["replaced"]


def test_an_unreachable_target_exits_3_without_the_password(
    source: Database, tmp_path: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.support.servers import free_port

    target = _db("postgres", tmp_path, request, "target")
    target.connection = {**target.connection, "port": free_port()}
    target.write_config()
    code, out, err = move(capsys, source, target)
    assert code == 3, err
    assert target.connection["password"] not in out["error"] + err
    assert len(err.strip().splitlines()) == 1


def test_a_move_killed_midway_is_named_by_the_next_run(
    source: Database, tmp_path: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    with sqlite3.connect(source.connection["filepath"]) as conn:
        conn.executemany(
            "INSERT INTO baselinr_results (run_id, dataset_name, column_name, metric_name, metric_value, profiled_at) "
            "VALUES (?, 'orders', 'c', 'mean', ?, '2024-01-01 00:00:00')",
            [(f"bulk-{i}", "x" * 200) for i in range(50_000)],
        )
    target = _db("mysql", tmp_path, request, "target")
    proc = subprocess.Popen(
        [sys.executable, "-m", "baselinr", *MOVE, "--config", str(source.config), "--to", str(target.config)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        # Killed once the move has begun writing the target: its marker is there, the rows are loading.
        deadline = time.monotonic() + 120
        while "_baselinr_move" not in _tables(target) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        time.sleep(0.5)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
        if proc.stderr is not None:
            proc.stderr.close()
    code, out, err = move(capsys, source, target)
    assert code == 2, err
    assert "did not finish" in out["error"] and "from sqlite:" in out["error"] and "--replace" in out["error"]
    code, out, err = move(capsys, source, target, "--replace")
    assert code == 0, err
    assert out["verified"] is True
    assert "_baselinr_move" not in _tables(target)


def test_backup_restore_crosses_dialects_from_a_portable_backup_and_refuses_copy_backups(
    source: Database, tmp_path: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "backups"
    r = run(capsys, "backup", "create", "--config", str(source.config), "--dest", str(dest), "--exclude-table", MOVE[3])
    assert r.code == 0, r.err
    pg = _db("postgres", tmp_path, request, "pg")
    r = run(capsys, "backup", "restore", "--config", str(pg.config), "--dest", str(dest), "latest")
    assert r.code == 0, r.err
    assert rows_of(pg) == rows_of(source)
    assert run(capsys, "migrate", "validate", "--config", str(pg.config)).code == 0
    # PostgreSQL's own backups are COPY text: refused into SQLite, with the command that can move it.
    pg_dest = tmp_path / "pg-backups"
    assert run(capsys, "backup", "create", "--config", str(pg.config), "--dest", str(pg_dest)).code == 0
    lite = _db("sqlite", tmp_path, request, "lite")
    r = run(capsys, "backup", "restore", "--config", str(lite.config), "--dest", str(pg_dest), "latest")
    assert r.code == 2 and "baselinr migrate move" in r.err
    assert not Path(lite.connection["filepath"]).exists() or _tables(lite) == []
    # ...and the advice, followed, moves it.
    r = run(capsys, "migrate", "move", "--config", str(pg.config), "--to", str(lite.config))
    assert r.code == 0, r.err
    assert "(postgres) into sqlite:" in r.out and "Verified: row counts and content digests equal" in r.out
    assert "Next: point Baselinr's config.yml" in r.out
    assert rows_of(lite) == rows_of(source)


@pytest.mark.parametrize(("src", "dst"), [("postgres", "mysql"), ("mysql", "postgres"), ("mysql", "sqlite")])
def test_server_databases_move_between_dialects_with_every_value_equal(
    src: str, dst: str, tmp_path: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _db(src, tmp_path, request, "source")
    populate(source, capsys, results=200)
    target = _db(dst, tmp_path, request, "target")
    code, out, err = move(capsys, source, target)
    assert code == 0, err
    assert out["verified"] is True
    assert rows_of(target) == rows_of(source)
    assert run(capsys, "migrate", "validate", "--config", str(target.config)).code == 0
    assert _next_id(target) == max(r[_RESULTS_ID] for r in rows_of(source)["baselinr_results"]) + 1


_RESULTS_ID = 3  # the position of id among baselinr_results' columns in name order


def _next_id(db: Database) -> int:
    """The id the target gives the next result row inserted without one (SERIAL, AUTO_INCREMENT, AUTOINCREMENT)."""
    engine = _engine(db)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO baselinr_results (run_id, dataset_name, column_name, metric_name, profiled_at) "
                "VALUES ('next', 'orders', 'c', 'mean', '2025-01-01 00:00:00')"
            )
            return int(conn.exec_driver_sql("SELECT id FROM baselinr_results WHERE run_id = 'next'").scalar_one())
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def snowflake_emulator(server_root: Path) -> Iterator[SnowflakeEmulator]:
    from tests.support.snowflake import start_emulator

    server = start_emulator(server_root)
    yield server
    server.stop()


def test_sqlite_moves_to_snowflake_with_every_value_equal(
    source: Database, snowflake_emulator: SnowflakeEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Into the Snowflake emulator (``tests/support/snowflake.py``): VARIANT parses the JSON text,
    TIMESTAMP_TZ keeps zones; the move's own digests and ``validate`` are the check here.

    The emulator stores a NULL TIMESTAMP_TZ as 1970-01-01 (Snowflake keeps NULL): the move's
    verification finds that, so the source's NULL timestamps get a value first."""
    with sqlite3.connect(source.connection["filepath"]) as conn:
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'baselinr_%'"):
            for column in conn.execute(f"PRAGMA table_info({table})").fetchall():
                if column[2].upper().startswith(("TIMESTAMP", "DATETIME")):
                    conn.execute(f"UPDATE {table} SET {column[1]} = '2000-01-01 00:00:00' WHERE {column[1]} IS NULL")
    target = tmp_path / "snowflake.yml"
    target.write_text(json.dumps({"storage": {"connection": snowflake_emulator.connection()}}))
    r = run(capsys, *MOVE, "--config", str(source.config), "--to", str(target), "--output", "json")
    assert r.code == 0, r.err
    out = json.loads(r.out)
    assert out["verified"] is True and out["target_dialect"] == "snowflake"
    assert {t["name"]: t["rows"] for t in out["tables"]} == {t: len(rows) for t, rows in rows_of(source).items()}
    assert run(capsys, "migrate", "validate", "--config", str(target)).code == 0


def test_a_target_that_changes_a_value_fails_the_verification_and_stays_marked(
    source: Database, snowflake_emulator: SnowflakeEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The emulator's NULL TIMESTAMP_TZ comes back as 1970-01-01: a real target that does not keep a value."""
    target = tmp_path / "snowflake.yml"
    target.write_text(json.dumps({"storage": {"connection": snowflake_emulator.connection()}}))
    r = run(capsys, *MOVE, "--config", str(source.config), "--to", str(target), "--output", "json")
    assert r.code == 1, r.err
    error = json.loads(r.out)["error"]
    assert "the target differs from the source" in error and "the content of baselinr_" in error
    r = run(capsys, *MOVE, "--config", str(source.config), "--to", str(target))
    assert r.code == 2 and "did not finish" in r.err and "--replace" in r.err


def test_a_load_that_fails_on_the_target_says_what_it_left_and_replace_clears_it(
    source: Database, tmp_path: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two keys SQLite tells apart and MariaDB's case-insensitive collation does not: the rows fail to load."""
    with sqlite3.connect(source.connection["filepath"]) as conn:
        conn.execute(
            "INSERT INTO baselinr_runs (run_id, dataset_name, profiled_at) VALUES ('RUN-1', 'orders', '2024-01-01 00:00:00')"
        )
    target = _db("mysql", tmp_path, request, "target")
    code, out, err = move(capsys, source, target)
    assert code == 4, err
    error = out["error"]
    assert "Duplicate entry" in error and "without rows" in error and "baselinr_runs" in error
    assert "_baselinr_move" in error and "--replace" in error
    assert len(err.strip().splitlines()) == 1
    left = _tables(target)
    assert "_baselinr_move" in left and "baselinr_runs" in left
    code, out, err = move(capsys, source, target)
    assert code == 2 and "did not finish" in out["error"]
    with sqlite3.connect(source.connection["filepath"]) as conn:
        conn.execute("DELETE FROM baselinr_runs WHERE run_id = 'RUN-1'")
    code, out, err = move(capsys, source, target, "--replace")
    assert code == 0, err
    assert "_baselinr_move" not in _tables(target)


def test_a_copy_file_that_claims_the_portable_format_is_damage_and_changes_nothing(
    source: Database, tmp_path: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    """A resealed manifest that calls PostgreSQL's COPY text typed JSON lines: found while every value is checked."""
    from baselinr.backup.manifest import DIGEST_FIELD, digest

    pg = _db("postgres", tmp_path, request, "pg")
    r = run(capsys, "migrate", "move", "--config", str(source.config), "--to", str(pg.config), *MOVE[2:])
    assert r.code == 0, r.err
    dest = tmp_path / "pg-backups"
    assert run(capsys, "backup", "create", "--config", str(pg.config), "--dest", str(dest), "--name", "b").code == 0
    path = dest / "b" / "manifest.json"
    m = json.loads(path.read_text())
    m.pop(DIGEST_FIELD)
    for t in m["tables"]:
        t["encoding"] = "jsonl-typed"
    m[DIGEST_FIELD] = digest(m)
    path.write_text(json.dumps(m))
    lite = _db("sqlite", tmp_path, request, "lite")
    r = run(capsys, "backup", "restore", "--config", str(lite.config), "--dest", str(dest), "b")
    assert r.code == 1, r.err
    assert "is damaged" in r.err and "not a row of the portable format" in r.err and "Nothing was written" in r.err
    assert not Path(lite.connection["filepath"]).exists() or _tables(lite) == []


def test_a_work_dir_that_cannot_be_written_is_a_usage_error(
    source: Database, tmp_path: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    target = _db("sqlite", tmp_path, request, "target")
    code, out, err = move(capsys, source, target, "--work-dir", str(tmp_path / "missing" / "dir"))
    assert code == 2, err
    assert "Cannot write the temporary backup under" in out["error"] and "--work-dir" in out["error"]
    assert len(err.strip().splitlines()) == 1
    # The advice, followed.
    code, out, err = move(capsys, source, target, "--work-dir", str(tmp_path))
    assert code == 0, err


def test_a_move_into_the_source_itself_is_refused(source: Database, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = move(capsys, source, source)
    assert code == 2 and "same database" in out["error"] and "--to" in out["error"], err
