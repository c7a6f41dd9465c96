"""Batched, resumable backfills (``baselinr.storage.migrations.backfill``) on SQLite, PostgreSQL and MariaDB.

A test migration backfills 1,000,000 rows generated server-side
(``generate_series`` on PostgreSQL, MariaDB's sequence engine, a recursive
CTE on SQLite) with ``x = x + 1``, which is not idempotent: a batch applied
twice leaves its rows at +2. A full run must equal one ``UPDATE`` of a copy
of the table; a real ``baselinr migrate apply`` process killed mid-backfill
(``os._exit`` through the ``BASELINR_TEST_KILL_AT`` hook, as a SIGKILL
would: no rollback, no cleanup) must leave the migration interrupted with
its committed batches in place, and ``apply --resume`` must finish it with
every row incremented exactly once. Smaller tables check that each batch
runs under the lock guard (a row lock held by another session times the
batch out, it is retried, the retry shows in ``status``) and that a
transactional migration refuses to backfill.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from baselinr.config import load_config
from baselinr.storage.migrations.manager import MigrationManager
from baselinr.storage.migrations.results import BackfillProgress
from tests.conftest import Database
from tests.support.cli import ROOT, run, run_process
from tests.support.packages import write_package

ROWS = 1_000_000
BATCH = 20_000

TABLE = """
migration = Migration(
    version=2,
    description="Backfill target",
    up_sql="CREATE TABLE bf_items (id INTEGER NOT NULL PRIMARY KEY, x INTEGER NOT NULL);",
    down_sql="DROP TABLE bf_items;",
)
"""


def backfill_migration(batch: int, *, transactional: bool = False) -> str:
    return f"""
from baselinr.storage.migrations.backfill import backfill


def up(conn):
    backfill(conn, table="bf_items", set_sql="x = x + 1", key="id", batch={batch})


migration = Migration(version=3, description="Increment x", up_python=up, transactional={transactional})
"""


def generate(db: Database, mgr: MigrationManager, rows: int) -> None:
    """``rows`` rows with x = id % 1000, made by the server itself."""
    sql = {
        "postgres": f"INSERT INTO bf_items (id, x) SELECT g, g % 1000 FROM generate_series(1, {rows}) g",
        "mysql": f"INSERT INTO bf_items (id, x) SELECT seq, seq % 1000 FROM seq_1_to_{rows}",
        "sqlite": (
            f"WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < {rows}) "
            "INSERT INTO bf_items (id, x) SELECT n, n % 1000 FROM g"
        ),
    }[db.dialect]
    with mgr.engine.begin() as conn:
        conn.execute(text(sql))


def setup(db: Database, tmp_path: Path, rows: int, batch: int, **guard: float) -> tuple[MigrationManager, str, dict[str, str]]:
    pkg = write_package(tmp_path / "p", {2: TABLE, 3: backfill_migration(batch)})
    mgr = MigrationManager.from_settings(load_config(db.config), migrations_package=pkg, **guard)  # type: ignore[arg-type]
    mgr.apply(2)
    generate(db, mgr, rows)
    return mgr, pkg, {"PYTHONPATH": f"{tmp_path / 'p'}:{ROOT}"}


def count(mgr: MigrationManager, where: str) -> int:
    with mgr.engine.connect() as conn:
        return int(conn.execute(text(f"SELECT COUNT(*) FROM bf_items WHERE {where}")).scalar_one())


class RowLock:
    """Another session's open transaction holding the row locks of ``sql``."""

    def __init__(self, mgr: MigrationManager, sql: str) -> None:
        self.conn = mgr.engine.connect()
        self.session = mgr.dialect.session_id(self.conn)
        self.conn.exec_driver_sql(sql)
        self._lock = threading.Lock()
        self._done = False

    def release(self) -> None:
        with self._lock:
            if not self._done:
                self._done = True
                self.conn.rollback()
                self.conn.close()


def cursor(mgr: MigrationManager) -> dict[str, object]:
    with mgr.engine.connect() as conn:
        detail = conn.execute(
            text("SELECT detail FROM _baselinr_migration_journal WHERE version = 3 AND kind = 'backfill'")
        ).scalar_one()
    return dict(json.loads(detail))


def test_a_full_backfill_equals_one_update(database: Database, tmp_path: Path) -> None:
    mgr, pkg, env = setup(database, tmp_path, ROWS, BATCH)
    with mgr.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE bf_expected (id INTEGER NOT NULL PRIMARY KEY, x INTEGER NOT NULL)")
        conn.exec_driver_sql("INSERT INTO bf_expected (id, x) SELECT id, x FROM bf_items")
        conn.exec_driver_sql("UPDATE bf_expected SET x = x + 1")
    r = run_process("migrate", "apply", "-c", str(database.config), "--migrations", pkg, env=env)
    assert r.code == 0, r.err
    lines = [x for x in r.out.splitlines() if "backfill bf_items" in x]
    assert len(lines) == ROWS // BATCH, r.out  # one line per committed batch
    assert f"{BATCH:,} of {ROWS:,} rows (2%), 1 batches" in lines[0]
    assert f"{ROWS:,} of {ROWS:,} rows (100%), {ROWS // BATCH} batches" in lines[-1]
    with mgr.engine.connect() as conn:
        differing = conn.exec_driver_sql(
            "SELECT COUNT(*) FROM bf_items i JOIN bf_expected e ON e.id = i.id WHERE i.x = e.x"
        ).scalar_one()
    assert differing == ROWS
    assert count(mgr, "x <> id % 1000 + 1") == 0
    assert cursor(mgr)["finished"] is True and cursor(mgr)["rows_done"] == ROWS
    assert mgr.status().state == "up_to_date"


@pytest.mark.parametrize("side", ["before-commit", "after-commit"])
def test_a_killed_backfill_resumes_after_its_last_committed_batch(database: Database, tmp_path: Path, side: str) -> None:
    mgr, pkg, env = setup(database, tmp_path, ROWS, BATCH)
    args = ["migrate", "apply", "-c", str(database.config), "--migrations", pkg]
    killed = run_process(*args, env={**env, "BASELINR_TEST_KILL_AT": f"v3:up:backfill-batch-7:{side}"})
    assert killed.code == 137, (killed.out, killed.err)
    committed = 7 if side == "after-commit" else 6
    # The committed batches are in place (the server rolled the killed one back), the rest untouched.
    assert count(mgr, f"id <= {committed * BATCH} AND x = id % 1000 + 1") == committed * BATCH
    assert count(mgr, f"id > {committed * BATCH} AND x = id % 1000") == ROWS - committed * BATCH
    assert (cursor(mgr)["rows_done"], cursor(mgr)["batches"], cursor(mgr)["finished"]) == (committed * BATCH, committed, False)
    [problem] = mgr.status().problems
    assert (problem.version, problem.status) == (3, "running")
    refused = run_process(*args, env=env)
    assert refused.code == 4 and "--resume" in refused.err, refused.err
    resumed = run_process(*args, "--resume", env=env)
    assert resumed.code == 0, resumed.err
    lines = [x for x in resumed.out.splitlines() if "backfill bf_items" in x]
    assert len(lines) == ROWS // BATCH - committed, resumed.out  # no committed batch ran again
    assert f"resumed after {committed * BATCH:,}" in lines[0]
    assert count(mgr, "x <> id % 1000 + 1") == 0  # every row once: none left at +0, none at +2
    assert mgr.status().state == "up_to_date"
    assert mgr.validate().valid, mgr.validate().errors


def test_progress_reaches_a_library_caller(database: Database, tmp_path: Path) -> None:
    mgr, _, _ = setup(database, tmp_path, 1000, 300)
    seen: list[BackfillProgress] = []
    mgr.apply(on_progress=seen.append)
    assert [(p.rows_done, p.batches, p.finished) for p in seen] == [
        (300, 1, False),
        (600, 2, False),
        (900, 3, False),
        (1000, 4, True),
    ]
    assert all(p.rows_total == 1000 and p.version == 3 for p in seen)
    assert count(mgr, "x <> id % 1000 + 1") == 0


@pytest.mark.parametrize("database", ["postgres", "mysql"], indirect=True)
def test_each_batch_is_guarded_and_its_lock_retries_show_in_status(
    database: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mgr, pkg, _ = setup(database, tmp_path, 1000, 100, ddl_lock_timeout=0.5, ddl_lock_tries=20)
    holder = RowLock(mgr, "UPDATE bf_items SET x = x WHERE id = 250")  # a row of the third batch
    # Released during the first retry's backoff; the timer only keeps a broken guard from hanging the test.
    safety = threading.Timer(60.0, holder.release)
    safety.start()
    try:
        result = mgr.apply(on_retry=lambda _retry: holder.release())
    finally:
        safety.cancel()
        holder.release()
    [step] = result.steps
    assert step.retries and all(r.statement == 0 and r.version == 3 for r in step.retries)
    assert count(mgr, "x <> id % 1000 + 1") == 0  # the timed-out batch was rolled back and ran once
    [retried] = mgr.status().retried
    assert (retried.version, retried.status, len(retried.retries)) == (3, "applied", len(step.retries))
    assert holder.session in [b.session for r in retried.retries for b in r.blockers]
    out = run(capsys, "migrate", "status", "-c", str(database.config), "--migrations", pkg)
    assert f"v3 applied after {len(step.retries)} lock retr" in out.out and f" {holder.session} (" in out.out, out.out
    js = run(capsys, "migrate", "status", "-c", str(database.config), "--migrations", pkg, "--output", "json")
    [shown] = json.loads(js.out)["retried"]
    assert shown["version"] == 3 and len(shown["retries"]) == len(step.retries)


@pytest.mark.parametrize("database", ["sqlite", "postgres"], indirect=True)
def test_a_transactional_migration_refuses_to_backfill(database: Database, tmp_path: Path) -> None:
    pkg = write_package(tmp_path / "p", {2: TABLE, 3: backfill_migration(100, transactional=True)})
    mgr = MigrationManager.from_settings(load_config(database.config), migrations_package=pkg)
    mgr.apply(2)
    generate(database, mgr, 500)
    r = run_process(
        "migrate", "apply", "-c", str(database.config), "--migrations", pkg, env={"PYTHONPATH": f"{tmp_path / 'p'}:{ROOT}"}
    )
    assert r.code == 4, r.err
    assert "transactional=False" in r.err and len(r.err.strip().splitlines()) == 1, r.err
    assert count(mgr, "x <> id % 1000") == 0  # nothing changed
    assert mgr.status().database_version == 2


SLOW_BATCHES = """
from baselinr.storage.migrations.backfill import backfill


def up(conn):
    # Each batch's UPDATE sleeps longer than the migration's statement_timeout allows.
    slow = "(SELECT 0 FROM (SELECT pg_sleep(0.5)) s)" if conn.dialect.name == "postgresql" else "SLEEP(0.5) * 0"
    backfill(conn, table="bf_items", set_sql="x = x + 1 + " + slow, key="id", batch=10)


migration = Migration(version=3, description="Slow", up_python=up, transactional=False, statement_timeout=0.1)
"""


@pytest.mark.parametrize("database", ["postgres", "mysql"], indirect=True)
def test_statement_timeout_bounds_each_batch(database: Database, tmp_path: Path) -> None:
    pkg = write_package(tmp_path / "p", {2: TABLE, 3: SLOW_BATCHES})
    mgr = MigrationManager.from_settings(load_config(database.config), migrations_package=pkg)
    mgr.apply(2)
    generate(database, mgr, 30)
    r = run_process(
        "migrate", "apply", "-c", str(database.config), "--migrations", pkg, env={"PYTHONPATH": f"{tmp_path / 'p'}:{ROOT}"}
    )
    assert r.code == 4, (r.out, r.err)
    assert "statement timeout" in r.err or "max_statement_time" in r.err, r.err  # PostgreSQL's words, MariaDB's
    assert "waiting for a lock" not in r.out  # a statement timeout is not retried
    [problem] = mgr.status().problems
    assert (problem.version, problem.status) == (3, "failed")
    assert count(mgr, "x <> id % 1000") == 0  # the batch that ran out of time was rolled back
