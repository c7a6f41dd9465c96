"""Through a real PgBouncer, in transaction and in session pooling: one runner at a time.

Concurrent ``baselinr migrate apply`` processes on fresh databases apply each
version once and all exit 0; no advisory lock stays granted on the server
(looked up on PostgreSQL directly, under the pooler) once they have ended; a
runner killed with SIGKILL mid-migration leaves nothing that stops the next
one; and the rest of the tool (status, validate, repair, backups) works
through the pooler.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import yaml

from tests.conftest import Database
from tests.integration.test_backup import assert_same, backup, ours, populate, snapshot
from tests.support.cli import ROOT, run
from tests.support.packages import write_package
from tests.support.pooler import Pooler, Poolers

RUNNERS = 8
ROUNDS = 10

# v2 writes a row once per run, so a second run of it would show; v3 holds its transaction
# a moment, so runners arrive while another one is inside a migration.
ONCE = """
migration = Migration(
    version=2,
    description="Log once",
    up_sql="CREATE TABLE baselinr_log (v VARCHAR(10)); INSERT INTO baselinr_log (v) VALUES ('v2');",
)
"""
SLOW = """
migration = Migration(
    version=3,
    description="Slow",
    up_sql="INSERT INTO baselinr_log (v) VALUES ('v3'); SELECT pg_sleep(0.3);",
)
"""


def write_config(path: Path, connection: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump({"environment": "test", "storage": {"connection": connection}}))
    return path


def direct(pooler: Pooler, database: str) -> Any:
    """A connection to PostgreSQL itself, not through the pooler."""
    s = pooler.server
    conn = psycopg2.connect(host=s.host, port=s.port, user=s.user, password=s.password, dbname=database)
    conn.autocommit = True
    return conn


def query(pooler: Pooler, database: str, sql: str) -> list[tuple[Any, ...]]:
    conn = direct(pooler, database)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return list(cur.fetchall())
    finally:
        conn.close()


def execute(pooler: Pooler, database: str, sql: str) -> None:
    conn = direct(pooler, database)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


def advisory_locks(pooler: Pooler) -> list[tuple[Any, ...]]:
    """Every advisory lock granted on the server, whatever database and backend holds it."""
    return query(pooler, "postgres", "SELECT database, pid, classid, objid FROM pg_locks WHERE locktype = 'advisory'")


def apply_at_once(config: Path, pkg: str, tmp_path: Path, n: int) -> list[tuple[int, str, str]]:
    env = {**os.environ, "PYTHONPATH": f"{tmp_path / 'p'}{os.pathsep}{ROOT}"}
    cmd = [sys.executable, "-m", "baselinr", "migrate", "apply", "-c", str(config), "--migrations", pkg]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(n)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        results.append((p.returncode, out, err))
    return results


def test_concurrent_appliers_through_the_pooler(pgbouncer: Pooler, tmp_path: Path) -> None:
    pkg = write_package(tmp_path / "p", {2: ONCE, 3: SLOW})
    failures = []
    for round_ in range(ROUNDS):
        database = pgbouncer.create_database()
        config = write_config(tmp_path / f"config{round_}.yml", pgbouncer.connection(database))
        results = apply_at_once(config, pkg, tmp_path, RUNNERS)
        codes = [code for code, _, _ in results]
        if codes != [0] * RUNNERS:
            failures.append((round_, codes, [err.strip()[-400:] for code, _, err in results if code]))
            continue
        versions = query(
            pgbouncer, database, "SELECT version, status, COUNT(*) FROM baselinr_schema_version GROUP BY 1, 2 ORDER BY 1"
        )
        assert versions == [(1, "applied", 1), (2, "applied", 1), (3, "applied", 1)], (round_, versions)
        assert advisory_locks(pgbouncer) == [], round_  # on the server itself, once every runner has ended
        logged = query(pgbouncer, database, "SELECT v, COUNT(*) FROM baselinr_log GROUP BY v ORDER BY 1")
        assert logged == [("v2", 1), ("v3", 1)], (round_, logged)
        # Each version announced by one runner only; every other runner says why it had nothing to do.
        for v in (1, 2, 3):
            assert sum(out.count(f"Applying migration v{v}:") for _, out, _ in results) == 1, (round_, v)
        for _, out, _ in results:
            assert (
                "Successfully migrated to version 3" in out
                or "Already at version 3; nothing to apply" in out
                or "applied by another runner while this one waited" in out
            ), out
    assert not failures, failures
    assert advisory_locks(pgbouncer) == []


def pooled(pooler: Pooler, tmp_path: Path, name: str = "db") -> Database:
    """A fresh database, and a config that reaches it through ``pooler``."""
    where = tmp_path / name
    where.mkdir()
    db = Database("postgres", where / "config.yml", pooler.connection(pooler.create_database()), pooler.server)
    db.write_config()
    return db


def backends_of(pooler: Pooler, database: str, like: str) -> list[int]:
    sql = f"SELECT pid FROM pg_stat_activity WHERE datname = '{database}' AND query LIKE '{like}%' AND state = 'active'"
    return [r[0] for r in query(pooler, "postgres", sql)]


@pytest.fixture
def statement_pooler(poolers: Poolers) -> Pooler:
    return poolers.get("statement")


def test_statement_pooling_is_refused_in_one_line(
    statement_pooler: Pooler, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = pooled(statement_pooler, tmp_path)
    r = run(capsys, "migrate", "apply", "--config", str(db.config))
    assert r.code == 2, r.err
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and "statement pooling (pool_mode = statement)" in lines[0], r.err
    assert "Traceback" not in r.err and db.connection["password"] not in r.err
    nothing = "SELECT to_regclass('baselinr_schema_version') IS NULL"
    assert query(statement_pooler, db.connection["database"], nothing) == [(True,)]
    # The other commands, whose transactions the pooler cuts off too: exit 3, one line, no traceback.
    for command in (("migrate", "status"), ("migrate", "validate"), ("backup", "create", "--dest", str(tmp_path / "b"))):
        r = run(capsys, *command, "--config", str(db.config))
        assert r.code == 3 and len(r.err.strip().splitlines()) == 1, (command, r.err)
        assert "Unexpected error" not in r.err and "Traceback" not in r.err, r.err


TOUR = {
    2: """
migration = Migration(
    version=2,
    description="Items",
    up_sql="CREATE TABLE bf_items (id INTEGER NOT NULL PRIMARY KEY, x INTEGER NOT NULL);",
    down_sql="DROP TABLE bf_items;",
)
""",
    3: """
from baselinr.storage.migrations.backfill import backfill


def up(conn):
    backfill(conn, table="bf_items", set_sql="x = x + 1", key="id", batch=100)


migration = Migration(version=3, description="Increment x", up_python=up, transactional=False)
""",
    4: """
migration = Migration(
    version=4,
    description="Index concurrently",
    up_sql="CREATE INDEX CONCURRENTLY ix_bf_items_x ON bf_items (x);",
    down_sql="DROP INDEX CONCURRENTLY ix_bf_items_x;",
)
""",
}


def test_the_tool_works_through_the_pooler(pgbouncer: Pooler, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A backfill (its journal), a backup (COPY) restored into another database, CREATE INDEX
    CONCURRENTLY up and down, status and validate, all through the pooler."""
    pkg = write_package(tmp_path / "p", TOUR)
    db = pooled(pgbouncer, tmp_path)
    name = db.connection["database"]
    assert run(capsys, "migrate", "apply", "--target", "2", "--config", str(db.config), "--migrations", pkg).code == 0
    execute(pgbouncer, name, "INSERT INTO bf_items (id, x) SELECT g, g % 10 FROM generate_series(1, 1000) g")
    populate(db, capsys, results=50, migrations=pkg)
    execute(pgbouncer, name, "DROP TABLE baselinr_not_ours")  # populate's table that is not Baselinr's
    assert query(pgbouncer, name, "SELECT COUNT(*), SUM(x) FROM bf_items") == [(1000, 5500)]  # x + 1, once each
    assert query(pgbouncer, name, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'ix_bf_items_x'::regclass") == [(True,)]
    r = run(capsys, "migrate", "rollback", "--target", "3", "--config", str(db.config), "--migrations", pkg)
    assert r.code == 0, r.err
    assert query(pgbouncer, name, "SELECT to_regclass('ix_bf_items_x') IS NULL") == [(True,)]
    before = snapshot(db)
    made = backup(capsys, db, tmp_path / "backups", "--migrations", pkg)
    target = pooled(pgbouncer, tmp_path, "target")
    r = run(capsys, "backup", "restore", made["path"], "--config", str(target.config), "--migrations", pkg)
    assert r.code == 0, r.err
    assert_same(snapshot(target), ours(before))
    for where in (db, target):
        assert run(capsys, "migrate", "apply", "--config", str(where.config), "--migrations", pkg).code == 0
        for command in ("status", "validate"):
            r = run(capsys, "migrate", command, "--config", str(where.config), "--migrations", pkg)
            assert r.code == 0, (command, r.out, r.err)
    assert advisory_locks(pgbouncer) == []


BLOCKED = """
migration = Migration(version=2, description="Add a column", up_sql="ALTER TABLE baselinr_runs ADD COLUMN pooled INTEGER;")
"""


def test_the_ddl_lock_guard_names_a_session_idle_in_transaction(
    pgbouncer: Pooler, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pkg = write_package(tmp_path / "p", {2: BLOCKED})
    db = pooled(pgbouncer, tmp_path)
    name = db.connection["database"]
    assert run(capsys, "migrate", "apply", "--target", "1", "--config", str(db.config), "--migrations", pkg).code == 0
    holder = direct(pgbouncer, name)  # a dashboard's session, idle in a transaction that read the table
    try:
        with holder.cursor() as cur:
            cur.execute("BEGIN; SELECT COUNT(*) FROM baselinr_runs")
            cur.execute("SELECT pg_backend_pid()")
            pid = cur.fetchone()[0]
        guard = ("--ddl-lock-timeout", "0.2", "--ddl-lock-tries", "2")
        r = run(capsys, "migrate", "apply", "--config", str(db.config), "--migrations", pkg, *guard)
        assert r.code == 4, r.err
        assert "gave up after 2 tries" in r.err and f"PostgreSQL backend {pid} (" in r.err, r.err
    finally:
        holder.close()
    r = run(capsys, "migrate", "apply", "--config", str(db.config), "--migrations", pkg)
    assert r.code == 0, r.err
    assert advisory_locks(pgbouncer) == []


KILLABLE = """
migration = Migration(
    version=2,
    description="Slow DDL",
    up_sql="CREATE TABLE baselinr_killed (id INTEGER); SELECT pg_sleep(2);",
)
"""


def test_a_runner_killed_mid_migration_leaves_no_lock(
    pgbouncer: Pooler, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pkg = write_package(tmp_path / "p", {2: KILLABLE})
    db = pooled(pgbouncer, tmp_path)
    name = db.connection["database"]
    assert run(capsys, "migrate", "apply", "--target", "1", "--config", str(db.config), "--migrations", pkg).code == 0
    env = {**os.environ, "PYTHONPATH": f"{tmp_path / 'p'}{os.pathsep}{ROOT}"}
    cmd = [sys.executable, "-m", "baselinr", "migrate", "apply", "-c", str(db.config), "--migrations", pkg]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        assert wait_for(lambda: backends_of(pgbouncer, name, "SELECT pg_sleep(2)")), "the runner never reached v2"
        assert advisory_locks(pgbouncer) != []  # held while it runs
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    # The pooler closes the server connection its dead client left inside a transaction: the lock goes with it.
    assert wait_for(lambda: advisory_locks(pgbouncer) == []), advisory_locks(pgbouncer)
    r = run(capsys, "migrate", "status", "--config", str(db.config), "--migrations", pkg)
    assert r.code == 1 and "1" in r.out, r.out  # behind: v2 rolled back with its transaction
    # The next runner proceeds at once (a short lock timeout is enough) and applies v2 once.
    r = run(capsys, "migrate", "apply", "--lock-timeout", "2", "--config", str(db.config), "--migrations", pkg)
    assert r.code == 0, r.err
    assert query(pgbouncer, name, "SELECT version FROM baselinr_schema_version ORDER BY 1") == [(1,), (2,)]
    assert advisory_locks(pgbouncer) == []


def wait_for(check: Callable[[], bool], seconds: float = 30) -> bool:
    """Poll ``check`` until it holds or ``seconds`` pass; its last answer."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_schema_the_pooler_refuses_is_a_config_error(
    pgbouncer: Pooler, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = pooled(pgbouncer, tmp_path)
    db.connection["schema"] = "public"
    db.write_config()
    for command in ("apply", "status"):
        r = run(capsys, "migrate", command, "--config", str(db.config))
        assert r.code == 2, r.err
        assert len(r.err.strip().splitlines()) == 1 and "ALTER ROLE" in r.err and "Traceback" not in r.err, r.err


FAILS = """
migration = Migration(
    version=2,
    description="Index a column that is not there",
    up_sql="CREATE INDEX CONCURRENTLY ix_runs_nothing ON baselinr_runs (no_such_column);",
)
"""


def test_a_failed_migration_is_repaired_through_the_pooler(
    pgbouncer: Pooler, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pkg = write_package(tmp_path / "p", {2: FAILS})
    db = pooled(pgbouncer, tmp_path)
    args = ("--config", str(db.config), "--migrations", pkg)
    r = run(capsys, "migrate", "apply", *args)
    assert r.code == 4 and "Migration v2" in r.err and "no_such_column" in r.err, r.err
    assert "failed" in run(capsys, "migrate", "status", *args).out
    r = run(capsys, "migrate", "repair", *args)
    assert r.code == 0, r.err
    r = run(capsys, "migrate", "status", *args)
    assert r.code == 1 and "behind (v1 < v2)" in r.out, r.out
    assert advisory_locks(pgbouncer) == []
