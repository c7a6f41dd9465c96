"""The migrate / status / validate / rollback / backup suite against a Snowflake emulator.

The emulator is ``fakesnow`` in server mode (``tests/support/snowflake.py``):
the real Snowflake connector and ``snowflake-sqlalchemy`` talk HTTP to it.
DuckDB runs underneath; where it cannot show a Snowflake behaviour the test
says so and checks the SQL instead (see ``test_snowflake_render.py``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from tests.support.cli import ROOT, run, run_process
from tests.support.hostile import KINDS, tamper
from tests.support.packages import sql_migration, write_package
from tests.support.snowflake import SF_PASSWORD, SnowflakeEmulator, start_emulator


@pytest.fixture(scope="session")
def snowflake_server(server_root: Path) -> Iterator[SnowflakeEmulator]:
    server = start_emulator(server_root)
    yield server
    server.stop()


class SF:
    def __init__(self, server: SnowflakeEmulator, tmp_path: Path) -> None:
        self.server = server
        self.connection = server.connection()
        self.config = tmp_path / "config.yml"
        self.config.write_text(yaml.safe_dump({"environment": "test", "storage": {"connection": self.connection}}))
        self.tmp = tmp_path

    def engine(self) -> sa.Engine:
        c = self.connection
        url = f"snowflake://u:p@acct/{c['database']}/PUBLIC?warehouse=WH"
        return sa.create_engine(url, connect_args=self.server.connect_args(), poolclass=sa.pool.NullPool)

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[Any]:
        engine = self.engine()
        try:
            with engine.connect() as conn:
                rows = list(conn.execute(sa.text(sql), params or {}).fetchall())
                conn.commit()
                return rows
        finally:
            engine.dispose()

    def columns(self, table: str) -> dict[str, str]:
        engine = self.engine()
        try:
            with engine.connect() as conn:
                return {c["name"]: type(c["type"]).__name__.upper() for c in sa.inspect(conn).get_columns(table)}
        finally:
            engine.dispose()


@pytest.fixture
def sf(snowflake_server: SnowflakeEmulator, tmp_path: Path) -> SF:
    return SF(snowflake_server, tmp_path)


def cli(capsys: pytest.CaptureFixture[str], sf: SF, *args: str) -> Any:
    return run(capsys, *args, "--config", str(sf.config))


def test_workflow_status_apply_validate_rollback(capsys: pytest.CaptureFixture[str], sf: SF, tmp_path: Path) -> None:
    pkg = write_package(tmp_path / "pkgs", {})  # Baselinr's v1 only: its model is exact
    r = cli(capsys, sf, "migrate", "status", "--migrations", pkg)
    assert "Current database version: not initialized" in r.out
    r = cli(capsys, sf, "migrate", "apply", "--migrations", pkg)
    assert r.code == 0, r.out + r.err
    assert "✅ Successfully migrated to version 1" in r.out
    r = cli(capsys, sf, "migrate", "status", "--migrations", pkg)
    assert r.code == 0 and "✅ Schema version is up to date" in r.out
    r = cli(capsys, sf, "migrate", "validate", "--migrations", pkg)
    assert r.code == 0, r.out + r.err
    assert "Valid: ✅ Yes" in r.out and "Warning" not in r.out
    cols = sf.columns("baselinr_events")
    assert cols["metadata"] == "VARIANT" and cols["timestamp"] == "TIMESTAMP_TZ"
    row = sf.query("SELECT version, status, statements_done, statements_total, checksum FROM baselinr_schema_version")
    assert row[0][:4] == (1, "applied", 4, 4) and len(row[0][4]) == 64
    r = cli(capsys, sf, "migrate", "rollback", "--target", "0", "--migrations", pkg)
    assert r.code == 0, r.out + r.err
    assert sf.query("SELECT COUNT(*) FROM information_schema.tables WHERE table_name LIKE 'BASELINR_R%'") == [(0,)]
    assert sf.query("SELECT COUNT(*) FROM baselinr_schema_version") == [(0,)]


def test_whole_chain_applies_and_validates(capsys: pytest.CaptureFixture[str], sf: SF) -> None:
    r = cli(capsys, sf, "migrate", "apply")
    assert r.code == 0, r.out + r.err
    r = cli(capsys, sf, "migrate", "validate", "--output", "json")
    data = json.loads(r.out)
    # The emulator's SHOW UNIQUE KEYS lists nothing (DuckDB keeps them elsewhere);
    # Snowflake lists declared unique keys, so only those may be reported missing here.
    assert all(e.startswith("Unique key on ") and e.endswith(" is missing") for e in data["errors"]), data["errors"]
    assert not [w for w in data["warnings"] if "migration_lock" in w]
    r = cli(capsys, sf, "migrate", "rollback", "--target", "0")
    assert r.code == 0, r.out + r.err


def test_guide_snowflake_example(capsys: pytest.CaptureFixture[str], sf: SF, tmp_path: Path) -> None:
    # The guide's Snowflake example, verbatim (trailing blanks included).
    up_sql = (
        "\n    ALTER TABLE baselinr_runs \n    ADD COLUMN new_field VARCHAR(100);\n    \n"
        "    -- Snowflake uses VARIANT for JSON\n    ALTER TABLE baselinr_runs \n    ADD COLUMN metadata VARIANT;\n"
    )
    pkg = write_package(tmp_path / "pkgs", {2: sql_migration(2, up_sql)})
    r = cli(capsys, sf, "migrate", "apply", "--target", "2", "--dry-run", "--migrations", pkg)
    assert r.code == 0 and "[DRY RUN] Would apply v2" in r.out and "not atomic" in r.out
    r = cli(capsys, sf, "migrate", "apply", "--target", "2", "--migrations", pkg)
    assert r.code == 0, r.out + r.err
    cols = sf.columns("baselinr_runs")
    assert cols["metadata"] == "VARIANT" and cols["new_field"] == "VARCHAR"
    r = cli(capsys, sf, "migrate", "validate", "--migrations", pkg)
    assert r.code == 0 and "Valid: ✅ Yes" in r.out


def test_failure_is_recorded_then_resumed(capsys: pytest.CaptureFixture[str], sf: SF, tmp_path: Path) -> None:
    up = "ALTER TABLE baselinr_runs ADD COLUMN a1 VARCHAR(10); ALTER TABLE missing_t ADD COLUMN a2 VARCHAR(10); " \
         "ALTER TABLE baselinr_runs ADD COLUMN a3 VARIANT;"
    pkg = write_package(tmp_path / "pkgs", {2: sql_migration(2, up)})
    r = cli(capsys, sf, "migrate", "apply", "--migrations", pkg)
    assert r.code == 4, r.out + r.err
    assert "at statement 2 of 3" in r.err and "Traceback" not in r.err and SF_PASSWORD not in r.err + r.out
    assert sf.query("SELECT status, statements_done FROM baselinr_schema_version WHERE version = 2") == [("failed", 1)]
    r = cli(capsys, sf, "migrate", "validate", "--migrations", pkg)
    assert r.code == 1 and "Migration v2 failed after 1 of 3 statements" in r.out
    r = cli(capsys, sf, "migrate", "apply", "--migrations", pkg)
    assert r.code == 4 and "--resume" in r.err
    sf.query("CREATE TABLE missing_t (x INTEGER)")  # the fix, by hand
    r = cli(capsys, sf, "migrate", "apply", "--resume", "--migrations", pkg)
    assert r.code == 0, r.out + r.err
    assert sf.query("SELECT status, statements_done FROM baselinr_schema_version WHERE version = 2") == [("applied", 3)]
    assert {"a1", "a3"} <= set(sf.columns("baselinr_runs")) and "a2" in sf.columns("missing_t")


def test_repair_forgets_a_failed_row(capsys: pytest.CaptureFixture[str], sf: SF, tmp_path: Path) -> None:
    pkg = write_package(tmp_path / "pkgs", {2: sql_migration(2, "ALTER TABLE nope ADD COLUMN b VARCHAR(1);")})
    assert cli(capsys, sf, "migrate", "apply", "--migrations", pkg).code == 4
    r = cli(capsys, sf, "migrate", "repair", "--migrations", pkg)
    assert r.code == 0, r.out + r.err
    assert sf.query("SELECT version FROM baselinr_schema_version ORDER BY version") == [(1,)]


SLOW_V2 = """
import time

def slow(conn):
    time.sleep(4)

migration = Migration(version=2, description="Slow step", up_sql="ALTER TABLE baselinr_runs ADD COLUMN slow_col VARCHAR(5);",
                      up_python=slow)
"""


def test_two_concurrent_runners(sf: SF, tmp_path: Path) -> None:
    pkg = write_package(tmp_path / "pkgs", {2: SLOW_V2})
    env = {"PYTHONPATH": f"{ROOT}:{tmp_path / 'pkgs'}"}
    results: list[Any] = []

    def runner() -> None:
        results.append(run_process("migrate", "apply", "--config", str(sf.config), "--migrations", pkg, env=env, timeout=300))

    threads = [threading.Thread(target=runner) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.code for r in results] == [0, 0], [r.out + r.err for r in results]
    outs = "".join(r.out for r in results)
    assert outs.count("Applying migration v2") == 1 and outs.count("Applying migration v1") == 1, outs
    assert sf.query("SELECT version, status FROM baselinr_schema_version ORDER BY version") == [(1, "applied"), (2, "applied")]
    assert sf.query("SELECT owner FROM _baselinr_migration_lock") == [(None,)]


HOLDER = """
import sys, time
sys.path.insert(0, {root!r})
import sqlalchemy as sa
from baselinr.storage.snowflake import Lease
engine = sa.create_engine({url!r}, connect_args={args!r}, poolclass=sa.pool.NullPool)
conn = engine.connect()
conn.execution_options(isolation_level="AUTOCOMMIT")
lease = Lease(conn, "baselinr_schema_migration", "crashing-runner@test", lease_seconds={lease})
lease.ensure_table()
assert lease.try_take()
{beat}
print("held", flush=True)
time.sleep(600)
"""


def _hold(sf: SF, lease: int, heartbeat: bool) -> subprocess.Popen[str]:
    c = sf.connection
    code = HOLDER.format(
        root=str(ROOT),
        url=f"snowflake://u:p@acct/{c['database']}/PUBLIC?warehouse=WH",
        args=sf.server.connect_args(),
        lease=lease,
        beat="lease.start_heartbeat()" if heartbeat else "",
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "held", proc.stderr.read() if proc.stderr else ""
    return proc


def _kill(proc: subprocess.Popen[str]) -> None:
    proc.kill()
    proc.communicate()


def test_lock_timeout_names_the_holder(capsys: pytest.CaptureFixture[str], sf: SF) -> None:
    holder = _hold(sf, lease=60, heartbeat=True)
    try:
        r = cli(capsys, sf, "migrate", "apply", "--lock-timeout", "2")
        assert r.code == 3, r.out + r.err
        assert "held by crashing-runner@test" in r.err and " until " in r.err
    finally:
        _kill(holder)


def test_crashed_holder_expires(capsys: pytest.CaptureFixture[str], sf: SF) -> None:
    holder = _hold(sf, lease=3, heartbeat=False)
    _kill(holder)  # SIGKILL: no release, the lease row still names it
    assert sf.query("SELECT owner FROM _baselinr_migration_lock")[0][0].startswith("crashing-runner@test")
    r = cli(capsys, sf, "migrate", "apply", "--lock-timeout", "120")
    assert r.code == 0, r.out + r.err
    assert sf.query("SELECT owner FROM _baselinr_migration_lock") == [(None,)]


def test_heartbeat_keeps_a_live_lease(sf: SF) -> None:
    holder = _hold(sf, lease=3, heartbeat=True)
    try:
        first = sf.query("SELECT expires_at FROM _baselinr_migration_lock")[0][0]
        deadline = time.monotonic() + 60
        while sf.query("SELECT expires_at FROM _baselinr_migration_lock")[0][0] == first:
            assert time.monotonic() < deadline, "the heartbeat never renewed the lease"
            time.sleep(0.5)
        assert sf.query("SELECT owner FROM _baselinr_migration_lock")[0][0].startswith("crashing-runner@test")
    finally:
        _kill(holder)


def test_unreachable_emulator_is_exit_3(capsys: pytest.CaptureFixture[str], sf: SF, tmp_path: Path) -> None:
    from tests.support.servers import free_port

    args = {**sf.server.connect_args(), "port": free_port(), "login_timeout": 5}
    conn = {**sf.connection, "extra_params": {"connect_args": args}}
    cfg = tmp_path / "bad.yml"
    cfg.write_text(yaml.safe_dump({"storage": {"connection": conn}}))
    r = run(capsys, "migrate", "apply", "--config", str(cfg))
    assert r.code == 3, r.out + r.err
    assert "Cannot connect to snowflake://baselinr@baselinr_test/" in r.err
    assert "Traceback" not in r.err and SF_PASSWORD not in r.err + r.out and len(r.err.strip().splitlines()) <= 2


def _seed(sf: SF) -> None:
    sf.query(
        "INSERT INTO baselinr_runs (run_id, dataset_name, profiled_at, status, row_count) "
        "VALUES ('r1', 'orders', '2024-05-01 10:00:00+02', 'completed', 42)"
    )
    sf.query(
        "INSERT INTO baselinr_events (event_id, event_type, timestamp, metadata) "
        "SELECT 'e1', 'drift', '2024-05-01 10:00:00+00', PARSE_JSON('{\"k\": [1, 2]}')"
    )


def test_portable_backup_round_trip(capsys: pytest.CaptureFixture[str], sf: SF, snowflake_server: SnowflakeEmulator) -> None:
    assert cli(capsys, sf, "migrate", "apply").code == 0
    _seed(sf)
    dest = sf.tmp / "backups"
    r = cli(capsys, sf, "backup", "create", "--dest", str(dest), "--name", "b1")
    assert r.code == 0, r.out + r.err
    (sf.tmp / "other").mkdir()
    other = SF(snowflake_server, sf.tmp / "other")
    other.config.write_text(yaml.safe_dump({"storage": {"connection": other.connection}}))
    r = run(capsys, "backup", "restore", "b1", "--dest", str(dest), "--config", str(other.config))
    assert r.code == 0, r.out + r.err
    for s in (sf, other):
        assert s.query("SELECT run_id, status, row_count FROM baselinr_runs") == [("r1", "completed", 42)]
    meta = other.query("SELECT metadata:k[1]::INTEGER, TYPEOF(metadata) FROM baselinr_events")
    assert meta[0][0] == 2
    assert other.query("SELECT profiled_at FROM baselinr_runs") == sf.query("SELECT profiled_at FROM baselinr_runs")
    r = run(capsys, "migrate", "validate", "--config", str(other.config), "--output", "json")
    # As in test_whole_chain_applies_and_validates: only the emulator's unlisted unique keys may be reported.
    errors = json.loads(r.out)["errors"]
    assert all(e.startswith("Unique key on ") for e in errors), errors


def test_portable_backup_hostile_manifests_change_nothing(capsys: pytest.CaptureFixture[str], sf: SF) -> None:
    # Every tampering kind of tests/support/hostile.py, each on a copy of one backup: the portable restore
    # shares its checks with the other dialects, and they run before the warehouse is touched.
    assert cli(capsys, sf, "migrate", "apply").code == 0
    _seed(sf)
    sf.query("CREATE TABLE victim (id INTEGER, body VARCHAR(20))")
    sf.query("INSERT INTO victim (id, body) VALUES (1, 'precious')")
    dest = sf.tmp / "backups"
    assert cli(capsys, sf, "backup", "create", "--dest", str(dest), "--name", "b1").code == 0

    def state() -> list[Any]:
        return [
            sf.query("SELECT id, body FROM victim"),
            sf.query("SELECT run_id, status, row_count FROM baselinr_runs"),
            sf.query("SELECT COUNT(*) FROM baselinr_events"),
            sf.query("SELECT COUNT(*) FROM baselinr_schema_version"),
        ]

    before = state()
    assert before[0] == [(1, "precious")] and before[1] == [("r1", "completed", 42)]
    for kind in sorted(KINDS):
        copy = sf.tmp / f"hostile-{kind}"
        shutil.copytree(dest / "b1", copy)
        tamper(copy, kind)
        says = KINDS[kind][2]
        r = run(capsys, "backup", "verify", str(copy), "--output", "json")
        assert r.code == 1 and any(says in p for p in json.loads(r.out)["problems"]), (kind, r.out)
        r = cli(capsys, sf, "backup", "restore", str(copy), "--replace")
        assert r.code == (2 if kind == "version_newer" else 1), (kind, r.err)
        assert says in r.err and len(r.err.strip().splitlines()) == 1, (kind, r.err)
        assert state() == before, kind


def test_clone_backup_create_list_restore_drop(capsys: pytest.CaptureFixture[str], sf: SF) -> None:
    assert cli(capsys, sf, "migrate", "apply").code == 0
    _seed(sf)
    r = cli(capsys, sf, "backup", "clone", "create", "before_change")
    assert r.code == 0, r.out + r.err
    assert "Clone backup before_change created" in r.out
    r = cli(capsys, sf, "backup", "clone", "list")
    assert r.code == 0 and r.out.startswith("before_change  (") and "baselinr_schema_version" in r.out
    sf.query("DELETE FROM baselinr_runs")
    sf.query("DROP TABLE baselinr_events")
    r = cli(capsys, sf, "backup", "clone", "restore", "before_change")
    assert r.code == 0, r.out + r.err
    assert sf.query("SELECT run_id FROM baselinr_runs") == [("r1",)]
    assert sf.query("SELECT event_id FROM baselinr_events") == [("e1",)]
    r = cli(capsys, sf, "backup", "clone", "create", "before_change")
    assert r.code == 2 and "already exists" in r.err
    r = cli(capsys, sf, "backup", "clone", "drop", "before_change")
    assert r.code == 0, r.out + r.err
    assert cli(capsys, sf, "backup", "clone", "list").out.strip() == "No clone backups."
    r = cli(capsys, sf, "backup", "clone", "restore", "before_change")
    assert r.code == 2 and "No clone backup named before_change" in r.err


def test_clone_is_refused_elsewhere(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    cfg = tmp_path / "c.yml"
    conn = {"type": "sqlite", "database": "x", "filepath": str(tmp_path / "x.db")}
    cfg.write_text(yaml.safe_dump({"storage": {"connection": conn}}))
    r = run(capsys, "backup", "clone", "create", "b", "--config", str(cfg))
    assert r.code == 2 and "Clone backups are a Snowflake feature" in r.err


def test_clone_sql_is_zero_copy() -> None:
    from baselinr.backup.snowflake_clone import create_sql, restore_sql

    assert create_sql("DB", "PUBLIC", "b1", "baselinr_runs") == (
        "CREATE TABLE DB.BASELINR_BACKUPS.b1__baselinr_runs CLONE DB.PUBLIC.baselinr_runs"
    )
    assert restore_sql("DB", "PUBLIC", "b1", "baselinr_runs") == [
        "DROP TABLE IF EXISTS DB.PUBLIC.baselinr_runs",
        "CREATE TABLE DB.PUBLIC.baselinr_runs CLONE DB.BASELINR_BACKUPS.b1__baselinr_runs",
    ]



SF_MODEL_SQL = {
    # The guide's Step 2 without its index (Snowflake has none), its Snowflake example, and a new table.
    2: "ALTER TABLE baselinr_runs ADD COLUMN cost_dollars DECIMAL(10, 4);\n"
    "ALTER TABLE baselinr_runs ADD COLUMN bytes_scanned BIGINT;",
    3: "ALTER TABLE baselinr_runs ADD COLUMN new_field VARCHAR(100);\nALTER TABLE baselinr_runs ADD COLUMN metadata VARIANT;",
    4: "CREATE TABLE baselinr_new_feature (\n    id INTEGER AUTOINCREMENT PRIMARY KEY,\n"
    "    feature_name VARCHAR(255) NOT NULL,\n    created_at TIMESTAMP_NTZ DEFAULT CURRENT_TIMESTAMP()\n);",
}


def test_sql_migrations_round_trip_through_backup_with_every_value(
    capsys: pytest.CaptureFixture[str], sf: SF, snowflake_server: SnowflakeEmulator, tmp_path: Path
) -> None:
    pkg = write_package(tmp_path / "pkgs", {v: sql_migration(v, s) for v, s in SF_MODEL_SQL.items()})
    r = cli(capsys, sf, "migrate", "apply", "--migrations", pkg)
    assert r.code == 0, r.out + r.err
    sf.query(
        "INSERT INTO baselinr_runs (run_id, dataset_name, profiled_at, cost_dollars, bytes_scanned, new_field, metadata) "
        "SELECT 'r1', 'orders', '2024-05-01 10:00:00', 1.5, 1000, 'x', PARSE_JSON('{\"k\": 1}')"
    )
    sf.query("INSERT INTO baselinr_new_feature (feature_name, created_at) VALUES ('a', '2024-03-01 12:00:00')")
    sf.query("ALTER TABLE baselinr_runs ADD COLUMN notes VARCHAR(50)")  # by hand: kept by the backup
    sf.query("UPDATE baselinr_runs SET notes = 'by hand'")
    r = cli(capsys, sf, "migrate", "validate", "--migrations", pkg, "--output", "json")
    warnings = json.loads(r.out)["warnings"]
    assert [w.split(":")[0] for w in warnings if "schema model" in w] == ["Column baselinr_runs.notes is not in the schema model"]
    dest = sf.tmp / "backups"
    r = cli(capsys, sf, "backup", "create", "--dest", str(dest), "--name", "b1", "--migrations", pkg, "--output", "json")
    assert r.code == 0, r.out + r.err
    assert json.loads((dest / "b1" / "manifest.json").read_text())["kept_columns"] == ["baselinr_runs.notes"]
    (sf.tmp / "other").mkdir()
    other = SF(snowflake_server, sf.tmp / "other")
    r = run(capsys, "backup", "restore", "b1", "--dest", str(dest), "--config", str(other.config), "--migrations", pkg)
    assert r.code == 0, r.out + r.err
    q = "SELECT run_id, cost_dollars, bytes_scanned, new_field, metadata:k::INTEGER, notes FROM baselinr_runs"
    assert other.query(q) == sf.query(q) and sf.query(q)[0][1:] == (1.5, 1000, "x", 1, "by hand")
    q = "SELECT id, feature_name, created_at FROM baselinr_new_feature"
    assert other.query(q) == sf.query(q) and len(sf.query(q)) == 1


def test_a_type_change_and_a_rename_round_trip_through_backup(
    capsys: pytest.CaptureFixture[str], sf: SF, snowflake_server: SnowflakeEmulator, tmp_path: Path
) -> None:
    versions = {
        2: "ALTER TABLE baselinr_runs ALTER COLUMN status SET DATA TYPE VARCHAR(200);",
        # An INTEGER column: the emulator (DuckDB underneath) forgets a VARCHAR's declared length on RENAME,
        # which Snowflake keeps.
        3: "ALTER TABLE baselinr_runs RENAME COLUMN row_count TO row_total;",
    }
    pkg = write_package(tmp_path / "pkgs", {v: sql_migration(v, s) for v, s in versions.items()})
    r = cli(capsys, sf, "migrate", "apply", "--migrations", pkg)
    assert r.code == 0, r.out + r.err
    sf.query(
        "INSERT INTO baselinr_runs (run_id, dataset_name, profiled_at, status, row_total) "
        f"VALUES ('r1', 'orders', '2024-05-01 10:00:00', '{'x' * 150}', 42)"
    )
    r = cli(capsys, sf, "migrate", "validate", "--migrations", pkg, "--output", "json")
    data = json.loads(r.out)
    # As in test_whole_chain_applies_and_validates: only the emulator's unlisted unique keys may be reported.
    assert all(e.startswith("Unique key on ") for e in data["errors"]), data["errors"]
    assert not [w for w in data["warnings"] if "schema model" in w], r.out
    dest = sf.tmp / "backups"
    r = cli(capsys, sf, "backup", "create", "--dest", str(dest), "--name", "b1", "--migrations", pkg, "--output", "json")
    assert r.code == 0 and json.loads(r.out)["warnings"] == [], r.out + r.err
    (sf.tmp / "other").mkdir()
    other = SF(snowflake_server, sf.tmp / "other")
    r = run(capsys, "backup", "restore", "b1", "--dest", str(dest), "--config", str(other.config), "--migrations", pkg)
    assert r.code == 0, r.out + r.err
    q = "SELECT run_id, status, row_total FROM baselinr_runs"
    assert other.query(q) == sf.query(q) == [("r1", "x" * 150, 42)]
