"""The DDL lock guard on real PostgreSQL and MariaDB servers: a migration that
alters ``baselinr_results`` while a reader holds a lock on it waits only
briefly, lets the profiler's writes through, retries, and gives up naming the
reader; on MariaDB a retry (and ``--resume``) continues at the statement that
timed out. Readers and writers are real connections in other threads."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text

from baselinr.config import load_config
from baselinr.storage.migrations.manager import MigrationManager
from baselinr.storage.migrations.results import LockRetry
from tests.conftest import Database
from tests.support.cli import ROOT, run_process
from tests.support.packages import sql_migration, write_package

pytestmark = pytest.mark.parametrize("database", ["postgres", "mysql"], indirect=True)

# Statement 1 needs no lock the reader holds; statement 2 does. Run twice, statement 1 fails
# (the column exists), so a success after a retry shows it ran once.
TWO_STEPS = """
    ALTER TABLE baselinr_runs ADD COLUMN guard_a INTEGER;
    ALTER TABLE baselinr_results ADD COLUMN guard_b INTEGER;
"""
INSERT = (
    "INSERT INTO baselinr_results (run_id, dataset_name, column_name, metric_name, metric_value, profiled_at) "
    "VALUES ('r1', 'orders', 'id', 'count', '1', CURRENT_TIMESTAMP)"
)


def manager(db: Database, package: str, **guard: Any) -> MigrationManager:
    return MigrationManager.from_settings(load_config(db.config), migrations_package=package, **guard)


def columns(mgr: MigrationManager, table: str) -> set[str]:
    return {c["name"] for c in inspect(mgr.engine).get_columns(table)}


class Reader:
    """A dashboard-like session: an open transaction that read ``baselinr_results``."""

    def __init__(self, mgr: MigrationManager) -> None:
        self.conn = mgr.engine.connect()
        if mgr.dialect.name == "postgres":
            self.conn.exec_driver_sql("SET application_name = 'dashboard'")
            self.conn.commit()
        self.session = mgr.dialect.session_id(self.conn)
        self.conn.execute(text("SELECT COUNT(*) FROM baselinr_results")).scalar()  # the transaction stays open
        self.released = threading.Event()

    def release(self) -> None:
        if not self.released.is_set():
            self.released.set()
            self.conn.rollback()
            self.conn.close()


@contextmanager
def released_after_first_timeout(mgr: MigrationManager, reader: Reader) -> Iterator[None]:
    """Release ``reader`` once the guarded DDL has waited and stopped waiting
    while the reader still held the table: its first try timed out."""

    def release() -> None:
        wait_for(lambda: ddl_waiting(mgr), "the ALTER TABLE waiting")
        wait_for(lambda: not ddl_waiting(mgr), "the first try's timeout")
        reader.release()

    releaser = threading.Thread(target=release, daemon=True)
    releaser.start()
    try:
        yield
    finally:
        releaser.join(60)


@contextmanager
def reading(mgr: MigrationManager) -> Iterator[Reader]:
    reader = Reader(mgr)
    try:
        yield reader
    finally:
        reader.release()


def wait_for(check: Any, what: str, timeout: float = 60) -> None:
    """Poll ``check()`` until true (the bound only keeps a broken run from hanging)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"never saw: {what}"
        time.sleep(0.02)


def ddl_waiting(mgr: MigrationManager) -> bool:
    """Whether an ALTER TABLE of baselinr_results waits for its lock right now."""
    with mgr.engine.connect() as conn:
        if mgr.dialect.name == "postgres":
            sql = (
                "SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database() AND query LIKE 'ALTER TABLE baselinr_results%%'"
            )
        else:
            sql = (
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE STATE LIKE 'Waiting for table metadata lock' "
                "AND DB = DATABASE() AND INFO LIKE 'ALTER TABLE baselinr_results%%'"
            )
        return bool(conn.exec_driver_sql(sql).scalar())


def in_transaction(mgr: MigrationManager, session: int | None) -> bool:
    """Whether ``session`` still has its transaction open, as the server sees it."""
    with mgr.engine.connect() as conn:
        if mgr.dialect.name == "postgres":
            sql = "SELECT COUNT(*) FROM pg_stat_activity WHERE pid = %s AND xact_start IS NOT NULL"
        else:
            sql = "SELECT COUNT(*) FROM information_schema.INNODB_TRX WHERE trx_mysql_thread_id = %s"
        return bool(conn.exec_driver_sql(sql, (session,)).scalar())


def test_retries_until_the_reader_ends_and_applies_once(database: Database, tmp_path: Path) -> None:
    pkg = write_package(tmp_path / "p", {2: sql_migration(2, TWO_STEPS)})
    mgr = manager(database, pkg, ddl_lock_timeout=0.5, ddl_lock_tries=20)
    mgr.apply(1)
    seen: list[LockRetry] = []
    with reading(mgr) as reader:

        def on_retry(retry: LockRetry) -> None:
            seen.append(retry)
            reader.release()  # the dashboard query ends during the first backoff

        result = mgr.apply(on_retry=on_retry)
    [step] = result.steps
    assert step.version == 2 and not step.skipped
    assert step.retries == seen and len(seen) == 1
    [retry] = seen
    assert (retry.statement, retry.attempt, retry.tries) == (2, 1, 20)
    assert reader.session in [b.session for b in retry.blockers]
    assert retry.delay_seconds > 0
    assert {"guard_a"} <= columns(mgr, "baselinr_runs") and {"guard_b"} <= columns(mgr, "baselinr_results")
    with mgr.engine.connect() as conn:
        rows = conn.execute(text("SELECT version, status FROM baselinr_schema_version ORDER BY version")).all()
    assert [tuple(r) for r in rows] == [(1, "applied"), (2, "applied")]
    status = mgr.status()
    assert status.state == "up_to_date"
    # status reads the retry back from the journal: which migration, where, and who blocked it.
    [retried] = status.retried
    assert (retried.version, retried.status) == (2, "applied")
    assert [(r.statement, r.attempt) for r in retried.retries] == [(2, 1)]
    assert reader.session in [b.session for b in retried.retries[0].blockers]


def test_gives_up_naming_the_blocker_then_resumes(database: Database, tmp_path: Path) -> None:
    pkg = write_package(tmp_path / "p", {2: sql_migration(2, TWO_STEPS)})
    mgr = manager(database, pkg)
    mgr.apply(1)
    env = {"PYTHONPATH": f"{tmp_path / 'p'}:{ROOT}"}
    args = ["migrate", "apply", "-c", str(database.config), "--migrations", pkg, "--ddl-lock-timeout", "0.5"]
    with reading(mgr) as reader:
        r = run_process(*args, "--ddl-lock-tries", "3", env=env)
        assert in_transaction(mgr, reader.session)
    assert r.code == 4, r.err
    [line] = r.err.strip().splitlines()
    assert "Migration v2 at statement 2 of 2 gave up after 3 tries" in line
    assert f" {reader.session} (user {database.connection['username']}" in line
    assert database.connection["password"] not in r.err + r.out
    # One line per retry, as it happened.
    retries = [x for x in r.out.splitlines() if "waiting for a lock held by" in x]
    assert len(retries) == 2 and "retry 2/3" in retries[0] and "retry 3/3" in retries[1], r.out
    assert str(reader.session) in retries[0]
    if database.dialect == "postgres":
        assert "application dashboard" in line
        assert "query started" in line
        assert "guard_a" not in columns(mgr, "baselinr_runs")  # rolled back as a whole
        assert mgr.status().state == "behind"
        assert mgr.status().retried == []  # nothing of that run is in place
        again = run_process(*args, env=env)
    else:
        assert "transaction started" in line
        assert "--resume" in line
        assert "guard_a" in columns(mgr, "baselinr_runs")
        [problem] = mgr.status().problems
        assert (problem.status, problem.statements_done, problem.statements_total) == ("failed", 1, 2)
        assert "lock" in (problem.error_message or "")
        shown = run_process("migrate", "status", "-c", str(database.config), "--migrations", pkg, env=env)
        assert f"v2 failed after 3 lock timeouts (blocked by connection {reader.session} (" in shown.out, shown.out
        # The reader gone, --resume continues at the statement that timed out (statement 1 would fail twice).
        assert mgr.apply(dry_run=True, resume=True).plan.steps[0].resume_from == 1
        again = run_process(*args, "--resume", "--output", "json", env=env)
        [step] = json.loads(again.out)["steps"]
        assert step["retries"] == []
    assert again.code == 0, again.err
    assert "guard_b" in columns(mgr, "baselinr_results")
    status = mgr.status()
    assert status.state == "up_to_date"
    if database.dialect == "postgres":
        assert status.retried == []  # the run that applied it waited for no lock; the one that gave up is forgotten
    else:
        # Resumed: the timeouts of the run it continued are part of how it was applied.
        [retried] = status.retried
        assert (retried.version, retried.status, len(retried.retries)) == (2, "applied", 3)
        js = run_process("migrate", "status", "-c", str(database.config), "--migrations", pkg, "--output", "json", env=env)
        [entry] = json.loads(js.out)["retried"]
        assert entry["version"] == 2 and reader.session in [b["session"] for b in entry["retries"][-1]["blockers"]]


def test_writer_is_not_queued_behind_the_waiting_ddl(database: Database, tmp_path: Path) -> None:
    pkg = write_package(tmp_path / "p", {2: sql_migration(2, TWO_STEPS)})
    mgr = manager(database, pkg, ddl_lock_timeout=1, ddl_lock_tries=100)
    mgr.apply(1)
    outcome: dict[str, Any] = {}

    def run_apply() -> None:
        try:
            outcome["result"] = mgr.apply()
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            outcome["error"] = exc

    def write() -> None:
        with mgr.engine.connect() as conn:
            conn.execute(text(INSERT))
            conn.commit()
        outcome["written"] = True

    with reading(mgr) as reader:
        applier = threading.Thread(target=run_apply, daemon=True)
        applier.start()
        wait_for(lambda: ddl_waiting(mgr), "the migration's ALTER TABLE waiting for its lock")
        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        writer.join(60)
        # The profiler's insert got through while the reader still holds its lock.
        assert outcome.get("written"), "the writer was queued behind the waiting DDL"
        assert in_transaction(mgr, reader.session)
        assert "result" not in outcome and "error" not in outcome
    applier.join(120)
    assert "error" not in outcome, outcome.get("error")
    [step] = outcome["result"].steps
    assert step.retries and all(r.statement == 2 for r in step.retries)
    with mgr.engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM baselinr_results WHERE run_id = 'r1'")).scalar() == 1
    assert "guard_b" in columns(mgr, "baselinr_results")


def test_json_output_shows_the_retries(database: Database, tmp_path: Path) -> None:
    pkg = write_package(tmp_path / "p", {2: sql_migration(2, TWO_STEPS)})
    mgr = manager(database, pkg)
    mgr.apply(1)
    env = {"PYTHONPATH": f"{tmp_path / 'p'}:{ROOT}"}
    with reading(mgr) as reader, released_after_first_timeout(mgr, reader):
        r = run_process(
            "migrate", "apply", "-c", str(database.config), "--migrations", pkg,
            "--ddl-lock-timeout", "0.5", "--ddl-lock-tries", "20", "--output", "json", env=env,
        )  # fmt: skip
    assert r.code == 0, r.err
    [step] = json.loads(r.out)["steps"]
    assert step["version"] == 2 and step["retries"]
    first = step["retries"][0]
    assert (first["statement"], first["attempt"], first["tries"]) == (2, 1, 20)
    assert reader.session in [b["session"] for b in first["blockers"]]
    assert "guard_b" in columns(mgr, "baselinr_results")


SLOW = """
migration = Migration(
    version=2,
    description="Slow backfill",
    up_sql={"postgres": "SELECT pg_sleep(5)", "default": (
        "SELECT COUNT(*) FROM information_schema.COLUMNS a, information_schema.COLUMNS b, information_schema.COLUMNS c"
    )},
    statement_timeout=0.3,
)
"""


def test_statement_timeout_of_a_migration(database: Database, tmp_path: Path) -> None:
    pkg = write_package(tmp_path / "p", {2: SLOW})
    mgr = manager(database, pkg)
    mgr.apply(1)
    env = {"PYTHONPATH": f"{tmp_path / 'p'}:{ROOT}"}
    r = run_process("migrate", "apply", "-c", str(database.config), "--migrations", pkg, env=env)
    assert r.code == 4, r.err
    assert "Migration v2 at statement 1 of 1 failed" in r.err
    assert "waiting for a lock" not in r.out  # a statement timeout is not retried
    assert 2 not in {row.version for row in (mgr._history() or []) if row.status == "applied"}


def test_operator_job_logs_each_retry(database: Database, tmp_path: Path) -> None:
    pkg = write_package(tmp_path / "p", {2: sql_migration(2, TWO_STEPS)})
    mgr = manager(database, pkg)
    mgr.apply(1)
    env = {"PYTHONPATH": f"{tmp_path / 'p'}:{ROOT}"}
    result_file = tmp_path / "result.json"
    with reading(mgr) as reader, released_after_first_timeout(mgr, reader):
        r = run_process(
            "job", "migrate", "--config", str(database.config), "--target", "2",
            "--result-file", str(result_file), "--migrations", pkg, env=env,
        )  # fmt: skip
    result = json.loads(result_file.read_text())
    assert result["applied"] == [2], (r.err, result)
    assert result["lock_retries"] >= 1
    assert "waiting for a lock held by" in r.err and f" {reader.session} (" in r.err, r.err


def test_rollback_is_guarded_too(database: Database, tmp_path: Path) -> None:
    down = "ALTER TABLE baselinr_results DROP COLUMN guard_b;"
    pkg = write_package(tmp_path / "p", {2: sql_migration(2, "ALTER TABLE baselinr_results ADD COLUMN guard_b INTEGER;", down)})
    mgr = manager(database, pkg)
    mgr.apply()
    env = {"PYTHONPATH": f"{tmp_path / 'p'}:{ROOT}"}
    args = ["migrate", "rollback", "-c", str(database.config), "--migrations", pkg, "--target", "1"]
    with reading(mgr) as reader:
        r = run_process(*args, "--ddl-lock-timeout", "0.5", "--ddl-lock-tries", "2", env=env)
    assert r.code == 4, r.err
    assert "Migration v2 (rollback) at statement 1 of 1 gave up after 2 tries" in r.err
    assert str(reader.session) in r.err
    assert "guard_b" in columns(mgr, "baselinr_results")
    if database.dialect == "mysql":
        assert "baselinr migrate rollback --target 1 --resume" in r.err
        args.append("--resume")
    assert run_process(*args, env=env).code == 0
    assert "guard_b" not in columns(mgr, "baselinr_results")
    assert mgr.status().database_version == 1
    assert mgr.status().retried == []  # rolled back: its retries no longer describe anything in place
    mgr.apply()
    assert mgr.status().retried == []  # applied again without a wait: the old rows are gone


def test_by_default_a_long_reader_is_ridden_out(database: Database, tmp_path: Path) -> None:
    """No --ddl-lock-tries: the migration is tried past the old default of five tries, as long as
    the reader holds the table (here until the fifth try timed out), and applies once it lets go."""
    import os
    import subprocess
    import sys

    pkg = write_package(tmp_path / "p", {2: sql_migration(2, TWO_STEPS)})
    mgr = manager(database, pkg)
    mgr.apply(1)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path / 'p'}:{ROOT}"}
    cmd = [sys.executable, "-m", "baselinr", "migrate", "apply", "-c", str(database.config), "--migrations", pkg]
    cmd += ["--ddl-lock-timeout", "0.2"]
    with reading(mgr) as reader, subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    ) as proc:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "retry 6 in" in line:  # the fifth try timed out (the old default gave up there): let go
                reader.release()
        code = proc.wait(timeout=120)
    out = "".join(lines)
    assert code == 0, out
    assert "retry 6 in" in out and "Successfully migrated to version 2" in out, out
    assert "guard_b" in columns(mgr, "baselinr_results")
