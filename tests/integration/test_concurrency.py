"""Several real processes applying at once, lock timeouts, and a runner killed
with SIGKILL in the middle of a migration."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from baselinr.config import load_config
from baselinr.storage.migrations.manager import MigrationManager
from tests.conftest import Database
from tests.support.cli import ROOT, run_process
from tests.support.packages import write_package

SLOW_PYTHON = """
import time

def slow(conn):
    time.sleep(1.0)

migration = Migration(version=2, description="Slow", up_sql="CREATE TABLE baselinr_log (v VARCHAR(10));", up_python=slow)
"""
LOG_ONCE = """
migration = Migration(version=3, description="Log once", up_sql="INSERT INTO baselinr_log (v) VALUES ('v3');")
"""


def _env(tmp_path: Path) -> dict[str, str]:
    return {"PYTHONPATH": f"{tmp_path / 'p'}{os.pathsep}{ROOT}"}


def test_concurrent_appliers_apply_each_version_once(database: Database, tmp_path: Path) -> None:
    pkg = write_package(tmp_path / "p", {2: SLOW_PYTHON, 3: LOG_ONCE})
    cmd = [sys.executable, "-m", "baselinr", "migrate", "apply", "-c", str(database.config), "--migrations", pkg]
    env = {**os.environ, **_env(tmp_path)}
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(4)]
    outputs = [p.communicate(timeout=120) for p in procs]
    codes = [p.returncode for p in procs]
    assert codes == [0, 0, 0, 0], outputs
    mgr = MigrationManager.from_settings(load_config(database.config), migrations_package=pkg)
    with mgr.engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM baselinr_log")).scalar() == 1
        rows = conn.execute(text("SELECT version FROM baselinr_schema_version ORDER BY version")).scalars().all()
    assert rows == [1, 2, 3]
    announced = sum(out.count("Applying migration v3") for out, _ in outputs)
    assert announced >= 1
    assert mgr.validate().valid


@pytest.mark.parametrize("database", ["postgres", "mysql"], indirect=True)
def test_lock_timeout_names_the_holder(database: Database, tmp_path: Path) -> None:
    mgr = MigrationManager.from_settings(load_config(database.config))
    with mgr.engine.connect() as holder, mgr.dialect.lock(holder, 1):
        r = run_process("migrate", "apply", "-c", str(database.config), "--lock-timeout", "1")
    assert r.code == 3, r.err
    assert "Timed out after 1s waiting for the migration lock held by" in r.err
    assert database.connection["password"] not in r.err + r.out
    # Released: the next runner proceeds.
    assert run_process("migrate", "apply", "-c", str(database.config), "--lock-timeout", "5").code == 0


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_sqlite_lock_timeout(database: Database) -> None:
    import sqlite3

    holder = sqlite3.connect(database.connection["filepath"], isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        r = run_process("migrate", "apply", "-c", str(database.config), "--lock-timeout", "1")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert r.code == 3, r.err
    assert "waiting for the migration lock" in r.err
    assert run_process("migrate", "apply", "-c", str(database.config)).code == 0


KILLABLE = """
migration = Migration(
    version=2,
    description="Slow DDL",
    up_sql="CREATE TABLE baselinr_killed (id INTEGER); SELECT pg_sleep(2);",
)
"""


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
def test_sigkill_mid_migration_leaves_old_version(database: Database, tmp_path: Path) -> None:
    pkg = write_package(tmp_path / "p", {2: KILLABLE})
    mgr = MigrationManager.from_settings(load_config(database.config), migrations_package=pkg)
    mgr.apply(1)
    cmd = [sys.executable, "-m", "baselinr", "migrate", "apply", "-c", str(database.config), "--migrations", pkg]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **_env(tmp_path)})
    deadline = time.monotonic() + 30
    with mgr.engine.connect() as conn:
        while time.monotonic() < deadline:
            busy = conn.execute(
                text("SELECT COUNT(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(2)%' AND state = 'active'")
            ).scalar()
            conn.rollback()
            if busy:
                break
            time.sleep(0.05)
        else:
            proc.kill()
            pytest.fail("the runner never reached the migration's statements")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    status = mgr.status()
    assert status.database_version == 1 and not status.problems
    # The next apply waits for the dead session's lock to go, then completes.
    r = run_process("migrate", "apply", "-c", str(database.config), "--migrations", pkg, env=_env(tmp_path))
    assert r.code == 0, r.err
    assert "Successfully migrated to version 2" in r.out
    with mgr.engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM baselinr_schema_version WHERE version = 2")).scalar() == 1


SLOW_MYSQL = """
migration = Migration(
    version=2,
    description="Slow DDL",
    up_sql="CREATE TABLE baselinr_killed (id INTEGER); SELECT SLEEP(30); CREATE TABLE baselinr_after (id INTEGER);",
)
"""


@pytest.mark.parametrize("database", ["mysql"], indirect=True)
def test_sigkill_on_mysql_is_reported_and_resumable(database: Database, tmp_path: Path) -> None:
    pkg = write_package(tmp_path / "p", {2: SLOW_MYSQL})
    mgr = MigrationManager.from_settings(load_config(database.config), migrations_package=pkg)
    mgr.apply(1)
    cmd = [sys.executable, "-m", "baselinr", "migrate", "apply", "-c", str(database.config), "--migrations", pkg]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **_env(tmp_path)})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        st = mgr.status()
        if st.problems and st.problems[0].statements_done == 1:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    status = mgr.status()
    assert status.state == "failed"
    assert status.problems[0].status == "running"
    r = run_process("migrate", "status", "-c", str(database.config), "--migrations", pkg, env=_env(tmp_path))
    assert "Migration v2 was interrupted after 1 of 3 statements" in r.out
    fast = write_package(tmp_path / "p", {2: SLOW_MYSQL.replace("SLEEP(30)", "SLEEP(0)")})
    r = run_process("migrate", "apply", "-c", str(database.config), "--migrations", fast, "--resume", env=_env(tmp_path))
    assert r.code == 0, r.err
    final = MigrationManager.from_settings(load_config(database.config), migrations_package=fast)
    assert final.status().state == "up_to_date"
    assert final.validate().valid
