"""``baselinr backup`` on real SQLite, PostgreSQL and MariaDB: round trips, damage, kills, versions.

Every test runs the CLI (in-process, or as a real ``python -m baselinr``
process where a process must die) against the ``database`` fixture's fresh
databases, and compares rows read straight from the database before and
after, edge-case values included.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

from baselinr.config import load_config
from baselinr.storage.connection import create_engine
from baselinr.storage.schema_version import CURRENT_SCHEMA_VERSION
from tests.conftest import Database, make_database
from tests.support.cli import ROOT, run

V1 = "tests.fixtures.backup_chain_v1"
V2 = "tests.fixtures.backup_chain_v2"

# Strings that break naive dump formats: delimiters, escapes, the COPY NULL marker, zones of unicode.
NASTY = [
    "",
    "\\N",
    "tab\there",
    "line\nbreak\r\nand CR",
    "quote \" and ' and `",
    "back\\slash \\\\ \\n",
    "ünïcödé — 日本語 — emoji 😀🚀",
    "comma, semicolon; pipe |",
    '{"json": [1, 2.5, null, "x"], "nested": {"k": "v"}}',
    "   leading and trailing   ",
]
BIG_TEXT_CHARS = 20_000  # 3-byte characters: just under MySQL TEXT's 64 KB

# Not Baselinr's: left out of every backup (with a warning), and left alone by a restore.
NOT_OURS = "CREATE TABLE baselinr_not_ours (x INTEGER)"
# Made by the profiler outside the migrations: restored from our model's definition of it.
LINEAGE_SYNC_DDL = (
    "CREATE TABLE baselinr_lineage_sync (provider_name VARCHAR(50) PRIMARY KEY, last_sync_timestamp {ts} NOT NULL, "
    "last_sync_query_count INTEGER, last_sync_edge_count INTEGER, updated_at {ts})"
)


def _engine(db: Database) -> Engine:
    engine, _ = create_engine(load_config(db.config).storage.connection)
    return engine


def _edge_rows() -> list[dict[str, Any]]:
    """Edge-case values for the model's own types (timestamps, doubles, 64-bit integers, JSON text, booleans)."""
    return [
        {
            "r": "edge-1",
            "s": dt.datetime(2024, 2, 29, 23, 59, 59, 999999),
            "c": dt.datetime(2038, 1, 19, 3, 14, 7, 999999),
            "d": 5e-324,
            "i": 2**63 - 1,
            "o": -(2**63),
            "a": '{"a": [1, 2.5, "ü"], "b": null}',
            "m": ' {"keep":   "spacing"} ',
            "p": True,
            "f": "€" * BIG_TEXT_CHARS,
        },
        {
            "r": "edge-2",
            "s": dt.datetime(2000, 1, 1),
            "c": None,
            "d": -1.7976931348623157e308,
            "i": 0,
            "o": None,
            "a": "[]",
            "m": "null",
            "p": False,
            "f": "",
        },
        {"r": "edge-3", "s": dt.datetime(1999, 12, 31), "c": None, "d": None, "i": None, "o": None, "a": None, "m": None,
         "p": False, "f": None},
    ]  # fmt: skip


def populate(db: Database, capsys: pytest.CaptureFixture[str], *, results: int = 500, migrations: str | None = None) -> None:
    """Migrate ``db`` and fill every table, edge-case values included."""
    extra = ["--migrations", migrations] if migrations else []
    r = run(capsys, "migrate", "apply", "--config", str(db.config), *extra)
    assert r.code == 0, r.err
    engine = _engine(db)
    big = "€" * BIG_TEXT_CHARS
    try:
        with engine.begin() as conn:
            if db.dialect == "mysql":
                conn.exec_driver_sql("SET time_zone = '+00:00'")
            conn.execute(
                text(
                    "INSERT INTO baselinr_runs (run_id, dataset_name, schema_name, profiled_at, environment, status, "
                    "row_count, column_count) VALUES (:r, :d, :s, :p, :e, :st, :rc, :cc)"
                ),
                [
                    {
                        "r": f"run-{i}",
                        "d": ds,
                        "s": None if i % 3 == 0 else "public",
                        "p": dt.datetime(2024, 1, 1, 12, 0, 0, i),
                        "e": NASTY[i % len(NASTY)][:50],
                        "st": "ok",
                        "rc": i * 1000,
                        "cc": None,
                    }
                    for i in range(20)
                    for ds in ("orders", "ünïcode ds")
                ],
            )
            values = [*NASTY, big, None]
            conn.execute(
                text(
                    "INSERT INTO baselinr_results (run_id, dataset_name, schema_name, column_name, column_type, metric_name, "
                    "metric_value, profiled_at) VALUES (:r, :d, :s, :c, :t, :m, :v, :p)"
                ),
                [
                    {
                        "r": f"run-{i % 20}",
                        "d": "orders",
                        "s": "public",
                        "c": f"col_{i % 7}",
                        "t": "VARCHAR",
                        "m": "mean",
                        "v": values[i % len(values)],
                        "p": dt.datetime(2024, 1, 1, 12, 0, 0, i % 1000),
                    }
                    for i in range(results)
                ],
            )
            conn.execute(
                text(
                    "INSERT INTO baselinr_events (event_id, event_type, run_id, baseline_value, current_value, change_percent, "
                    "timestamp, metadata) VALUES (:id, :t, :r, :b, :c, :p, :ts, :m)"
                ),
                [
                    {
                        "id": f"ev-{i}",
                        "t": "drift",
                        "r": "run-1",
                        "b": b,
                        "c": c,
                        "p": None,
                        "ts": dt.datetime(2024, 5, 1, 0, 0, i),
                        "m": json.dumps({"i": i, "text": NASTY[i % len(NASTY)]}),
                    }
                    for i, (b, c) in enumerate([(0.1, 0.2), (-0.0, 1e308), (1 / 3, 2 / 3), (None, 123456789.123456789)])
                ],
            )
            conn.execute(
                text(
                    "INSERT INTO baselinr_table_state (schema_name, table_name, row_count, bytes_scanned, metadata) "
                    "VALUES (:s, :t, :r, :b, :m)"
                ),
                [
                    {"s": "", "t": "orders", "r": 2**40, "b": 0, "m": None},
                    {"s": "public", "t": "日本", "r": None, "b": None, "m": "{}"},
                ],
            )
            conn.exec_driver_sql(NOT_OURS)
            conn.exec_driver_sql("INSERT INTO baselinr_not_ours (x) VALUES (1)")
            conn.exec_driver_sql(LINEAGE_SYNC_DDL.format(ts="DATETIME(6)" if db.dialect == "mysql" else "TIMESTAMP"))
            conn.execute(
                text("INSERT INTO baselinr_lineage_sync (provider_name, last_sync_timestamp, last_sync_query_count) "
                     "VALUES ('dbt', :t, 7)"),
                {"t": dt.datetime(2024, 6, 1, 12, 30, 0, 250000)},
            )  # fmt: skip
            if migrations is None:
                conn.execute(
                    text(
                        "INSERT INTO baselinr_pipeline_runs (run_id, pipeline_name, started_at, completed_at, "
                        "duration_seconds, status, input_row_count, output_row_count, affected_tables, metadata) "
                        "VALUES (:r, 'p', :s, :c, :d, 'ok', :i, :o, :a, :m)"
                    ),
                    _edge_rows(),
                )
                conn.execute(
                    text(
                        "INSERT INTO baselinr_validation_results (run_id, table_name, rule_type, rule_config, passed, "
                        "failure_reason, failure_rate, validated_at) VALUES (:r, 't', 'not_null', :a, :p, :f, :d, :s)"
                    ),
                    _edge_rows(),
                )
    finally:
        engine.dispose()


def snapshot(db: Database, also: tuple[str, ...] = ()) -> dict[str, list[str]]:
    """Every baselinr_* table's rows as sorted ``repr``s: types, scales, zones and all."""
    from sqlalchemy import inspect

    engine = _engine(db)
    try:
        with engine.connect() as conn:
            if db.dialect == "postgres":
                import psycopg2.extras

                conn.exec_driver_sql("SET TIME ZONE 'UTC'")
                # Compare JSON as the text the server returns, not as parsed objects.
                raw = conn.connection.dbapi_connection
                psycopg2.extras.register_default_json(raw, loads=lambda v: v)
                psycopg2.extras.register_default_jsonb(raw, loads=lambda v: v)
            if db.dialect == "mysql":
                conn.exec_driver_sql("SET time_zone = '+00:00'")
            tables = sorted(t for t in inspect(conn).get_table_names() if t.startswith("baselinr_") or t in also)
            out = {}
            for t in tables:
                rows = conn.exec_driver_sql(f"SELECT * FROM {conn.dialect.identifier_preparer.quote(t)}").fetchall()
                out[t] = sorted(repr(tuple(bytes(v) if isinstance(v, memoryview) else v for v in r)) for r in rows)
            return out
    finally:
        engine.dispose()


def ours(snap: dict[str, list[str]]) -> dict[str, list[str]]:
    """A snapshot without the table that is not Baselinr's (never backed up)."""
    return {t: rows for t, rows in snap.items() if t != "baselinr_not_ours"}


def assert_same(after: dict[str, list[str]], before: dict[str, list[str]]) -> None:
    """Equal snapshots, or a readable difference (values can be megabytes long)."""
    assert sorted(after) == sorted(before)
    for table in before:
        missing = [r[:400] for r in before[table] if r not in set(after[table])]
        extra = [r[:400] for r in after[table] if r not in set(before[table])]
        assert (table, missing, extra) == (table, [], []), "rows differ"
        assert len(after[table]) == len(before[table])


def fresh(db: Database, tmp_path: Path, request: pytest.FixtureRequest, name: str = "target") -> Database:
    where = tmp_path / name
    where.mkdir()
    return make_database(db.dialect, where, request)


def backup(capsys: pytest.CaptureFixture[str], db: Database, dest: Path, *extra: str) -> dict[str, Any]:
    """``backup create``, leaving out by name the baselinr_* table no migration made (when ``populate`` made it)."""
    engine = _engine(db)
    try:
        if "baselinr_not_ours" in inspect(engine).get_table_names():
            extra = ("--exclude-table", "baselinr_not_ours", *extra)
    finally:
        engine.dispose()
    r = run(capsys, "backup", "create", "--config", str(db.config), "--dest", str(dest), "--output", "json", *extra)
    assert r.code == 0, r.err + r.out
    data: dict[str, Any] = json.loads(r.out)
    return data


def test_round_trip_into_a_fresh_database_then_validate(
    database: Database, tmp_path: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    populate(database, capsys)
    before = snapshot(database)
    assert len(before["baselinr_results"]) == 500 and len(before["baselinr_pipeline_runs"]) == 3
    dest = tmp_path / "backups"
    made = backup(capsys, database, dest)
    assert made["ok"] and made["schema_version"] == CURRENT_SCHEMA_VERSION and made["dialect"] == database.dialect
    assert made["warnings"] == [
        "Left out as asked (recorded in the manifest; a restore will not have them): baselinr_not_ours"
    ]
    assert "baselinr_not_ours" not in {t["name"] for t in made["tables"]}
    assert made["name"].startswith("baselinr-") and Path(made["path"]).name == made["name"]
    assert {t["name"]: t["rows"] for t in made["tables"]}["baselinr_results"] == 500
    assert "password" not in r_text(made) and database.connection.get("password", "\0") not in r_text(made)

    manifest = json.loads((Path(made["path"]) / "manifest.json").read_text())
    assert manifest["format_version"] == 3 and manifest["complete"] is True and len(manifest["manifest_sha256"]) == 64
    assert manifest["excluded_tables"] == ["baselinr_not_ours"] and manifest["kept_columns"] == []
    assert {"created_at", "tool_version", "schema_version", "dialect", "tables"} <= set(manifest)
    assert all(len(t["sha256"]) == 64 and len(t["content_sha256"]) == 64 for t in manifest["tables"])

    r = run(capsys, "backup", "verify", made["path"], "--output", "json")
    assert r.code == 0, r.out
    assert json.loads(r.out)["ok"] is True

    target = fresh(database, tmp_path, request)
    r = run(capsys, "backup", "restore", made["name"], "--dest", str(dest), "--config", str(target.config), "--output", "json")
    assert r.code == 0, r.err + r.out
    restored = json.loads(r.out)
    assert restored["rows"] == made["rows"] and restored["schema_version"] == CURRENT_SCHEMA_VERSION
    assert restored["created_from_backup"] == ["baselinr_lineage_sync"]
    assert restored["atomic"] is (database.dialect != "mysql")

    assert_same(snapshot(target), ours(before))

    r = run(capsys, "migrate", "validate", "--config", str(target.config))
    assert r.code == 0, r.out
    r = run(capsys, "migrate", "status", "--config", str(target.config), "--output", "json")
    assert json.loads(r.out)["state"] == "up_to_date"

    # Auto-increment ids continue after the restored ones (PostgreSQL sequences were reset).
    engine = _engine(target)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO baselinr_results (run_id, dataset_name, column_name, metric_name, profiled_at) "
                    "VALUES ('n', 'n', 'n', 'n', :p)"
                ),
                {"p": dt.datetime(2025, 1, 1)},
            )
            top = conn.execute(text("SELECT MAX(id) FROM baselinr_results")).scalar()
    finally:
        engine.dispose()
    assert top == 501


def r_text(data: dict[str, Any]) -> str:
    return json.dumps(data)


def test_restore_refuses_a_non_empty_database_and_replace_restores_it(
    database: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    populate(database, capsys, results=50)
    before = snapshot(database)
    dest = tmp_path / "backups"
    made = backup(capsys, database, dest)

    r = run(capsys, "backup", "restore", "latest", "--dest", str(dest), "--config", str(database.config))
    assert r.code == 2
    assert "already has Baselinr tables" in r.err and "--replace" in r.err

    engine = _engine(database)
    try:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM baselinr_results WHERE id > 10"))
            conn.execute(text("UPDATE baselinr_runs SET status = 'changed'"))
            conn.exec_driver_sql("CREATE TABLE baselinr_scratch (x INTEGER)")
    finally:
        engine.dispose()
    assert snapshot(database) != before

    r = run(capsys, "backup", "restore", made["path"], "--config", str(database.config), "--replace")
    assert r.code == 0, r.err
    assert "Restored" in r.out
    # Tables that are not Baselinr's are neither in the backup nor dropped by --replace.
    assert "left alone (not Baselinr tables): baselinr_not_ours, baselinr_scratch" in r.out
    assert_same(snapshot(database), {**before, "baselinr_scratch": []})
    assert run(capsys, "migrate", "validate", "--config", str(database.config)).code == 0


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "corrupted":
        middle = len(data) // 2
        path.write_bytes(data[:middle] + bytes([data[middle] ^ 0x5A]) + data[middle + 1 :])
    else:
        path.unlink()


@pytest.mark.parametrize("how", ["truncated", "corrupted", "missing"])
def test_verify_catches_damage_and_restore_changes_nothing(
    database: Database, how: str, tmp_path: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    populate(database, capsys, results=3000)
    dest = tmp_path / "backups"
    made = backup(capsys, database, dest)
    damaged = Path(made["path"]) / next(
        t["file"]
        for t in json.loads((Path(made["path"]) / "manifest.json").read_text())["tables"]
        if t["name"] == "baselinr_results"
    )
    _damage(damaged, how)

    r = run(capsys, "backup", "verify", made["name"], "--dest", str(dest), "--output", "json")
    assert r.code == 1
    result = json.loads(r.out)
    assert result["ok"] is False
    bad = [t for t in result["tables"] if not t["ok"]]
    assert [t["name"] for t in bad] == ["baselinr_results"]
    expected = {"truncated": "truncated", "corrupted": "", "missing": "missing"}[how]
    assert expected in bad[0]["problem"]

    r = run(capsys, "backup", "verify", made["path"])
    assert r.code == 1 and "damaged" in r.out

    # Every file is verified before the target is touched: the (empty) target stays empty.
    target = fresh(database, tmp_path, request)
    r = run(capsys, "backup", "restore", made["path"], "--config", str(target.config))
    assert r.code == 1, r.out + r.err
    assert "baselinr_results" in r.err and "Nothing was changed" in r.err
    assert snapshot(target) == {}

    # Over an existing database too, on every dialect (MySQL included): its rows are as they were.
    before = snapshot(database)
    r = run(capsys, "backup", "restore", made["path"], "--config", str(database.config), "--replace")
    assert r.code == 1, r.err
    assert "is damaged" in r.err and len(r.err.strip().splitlines()) == 1
    assert snapshot(database) == before


def test_backup_killed_midway_is_never_listed_as_valid(
    database: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    populate(database, capsys, results=60_000)
    dest = tmp_path / "backups"
    good = backup(capsys, database, dest)
    cmd = [sys.executable, "-m", "baselinr", "backup", "create", "--config", str(database.config), "--dest", str(dest),
           "--exclude-table", "baselinr_not_ours"]  # fmt: skip
    proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        partial: list[Path] = []
        while time.monotonic() < deadline and proc.poll() is None:
            partial = [p for p in dest.glob(".*.partial") if any(f.stat().st_size > 0 for f in p.iterdir())]
            if partial:
                break
            time.sleep(0.005)
        assert partial, f"the backup finished (or never started) before it could be killed: rc={proc.poll()}"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL

    r = run(capsys, "backup", "list", "--dest", str(dest), "--output", "json")
    assert r.code == 0
    listed = json.loads(r.out)["backups"]
    assert [b["name"] for b in listed if b["status"] == "complete"] == [good["name"]]
    assert [b["status"] for b in listed if b["name"] != good["name"]] == ["partial"]

    r = run(capsys, "backup", "list", "--dest", str(dest))
    assert "PARTIAL" in r.out and "not usable" in r.out

    # 'latest' is the complete backup, never the partial one; the partial one neither verifies nor restores.
    r = run(capsys, "backup", "verify", "latest", "--dest", str(dest), "--output", "json")
    assert r.code == 0 and json.loads(r.out)["name"] == good["name"]
    r = run(capsys, "backup", "verify", str(partial[0]))
    assert r.code == 1 and "not a complete backup" in r.err
    r = run(capsys, "backup", "restore", str(partial[0]), "--config", str(database.config), "--replace")
    assert r.code == 1 and "not a complete backup" in r.err


def test_restore_of_an_older_version_then_apply_reaches_the_latest(
    database: Database, tmp_path: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    populate(database, capsys, results=100, migrations=V1)
    before = snapshot(database)
    dest = tmp_path / "backups"
    made = backup(capsys, database, dest, "--migrations", V1)
    assert made["schema_version"] == 1

    # The code (V2) is newer than the backup: restore at v1, then migrate.
    target = fresh(database, tmp_path, request)
    r = run(capsys, "backup", "restore", made["path"], "--config", str(target.config), "--migrations", V2)
    assert r.code == 0, r.err
    assert "Next: baselinr migrate apply" in r.out
    assert_same(snapshot(target), ours(before))
    r = run(capsys, "migrate", "status", "--config", str(target.config), "--migrations", V2, "--output", "json")
    assert json.loads(r.out)["database_version"] == 1 and json.loads(r.out)["state"] == "behind"
    r = run(capsys, "migrate", "apply", "--config", str(target.config), "--migrations", V2)
    assert r.code == 0, r.err
    r = run(capsys, "migrate", "validate", "--config", str(target.config), "--migrations", V2, "--output", "json")
    assert r.code == 0, r.out
    assert json.loads(r.out)["version"] == 2
    after = snapshot(target)
    assert after["baselinr_notes"] == [] and len(after["baselinr_runs"]) == len(before["baselinr_runs"])

    # A v2 backup is refused by code that only knows v1.
    newer = backup(capsys, target, tmp_path / "newer", "--migrations", V2)
    assert newer["schema_version"] == 2
    other = fresh(database, tmp_path, request, "other")
    r = run(capsys, "backup", "restore", newer["path"], "--config", str(other.config), "--migrations", V1, "--output", "json")
    assert r.code == 2
    assert "newer than this code" in json.loads(r.out)["error"]
    assert snapshot(other) == {}


def test_keep_prunes_the_oldest_and_prune_command(database: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    r = run(capsys, "migrate", "apply", "--config", str(database.config))
    assert r.code == 0
    dest = tmp_path / "backups"
    names = [backup(capsys, database, dest, "--keep", "2")["name"] for _ in range(4)]
    r = run(capsys, "backup", "list", "--dest", str(dest), "--output", "json")
    assert [b["name"] for b in json.loads(r.out)["backups"]] == names[2:]
    r = run(capsys, "backup", "prune", "--dest", str(dest), "--keep", "1", "--output", "json")
    assert r.code == 0 and json.loads(r.out)["removed"] == [names[2]]
    assert [p.name for p in dest.iterdir()] == [names[3]]


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
def test_unreachable_database_exits_3_without_the_password(
    database: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.support.servers import free_port

    database.connection = {**database.connection, "port": free_port()}
    database.write_config()
    dest = tmp_path / "backups"
    r = run(capsys, "backup", "create", "--config", str(database.config), "--dest", str(dest), "--output", "json")
    assert r.code == 3
    assert database.connection["password"] not in r.out + r.err
    assert json.loads(r.out)["ok"] is False
    assert not dest.exists() or not any(dest.iterdir())


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    r = run(capsys, "backup", "list")
    assert r.code == 2 and "--dest" in r.err
    r = run(capsys, "backup", "verify", str(tmp_path / "nope"))
    assert r.code == 2 and "not found" in r.err
    r = run(capsys, "backup", "create", "--dest", str(tmp_path))
    assert r.code == 2 and "config" in r.err
    r = run(capsys, "backup", "prune", "--dest", str(tmp_path), "--keep", "0")
    assert r.code == 2


@pytest.mark.parametrize("database", ["sqlite", "postgres"], indirect=True)
def test_renamed_runs_and_results_tables_are_backed_up_and_restored(
    database: Database, tmp_path: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    names = {"runs_table": "profiling_runs", "results_table": "profiling_results"}
    database.write_config(**names)
    assert run(capsys, "migrate", "apply", "--config", str(database.config)).code == 0
    engine = _engine(database)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO profiling_results (run_id, dataset_name, column_name, metric_name, metric_value, profiled_at) "
                    "VALUES ('r', 'd', 'c', 'm', :v, :p)"
                ),
                [{"v": str(i), "p": dt.datetime(2024, 1, 1)} for i in range(10)],
            )
    finally:
        engine.dispose()
    before = snapshot(database, also=tuple(names.values()))
    made = backup(capsys, database, tmp_path / "backups")
    assert {t["name"] for t in made["tables"]} >= set(names.values())

    target = fresh(database, tmp_path, request)
    target.write_config(**names)
    r = run(capsys, "backup", "restore", made["path"], "--config", str(target.config), "--output", "json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["created_from_backup"] == []
    assert_same(snapshot(target, also=tuple(names.values())), before)
    assert run(capsys, "migrate", "validate", "--config", str(target.config)).code == 0
