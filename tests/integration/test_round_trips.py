"""What a SQL-only ``apply`` sends a real PostgreSQL server, counted on the wire.

The client connects through ``tests.support.wire.WireLog``, which records each
simple query a connection sends (one round trip each). On the bare driver a
migration costs four: BEGIN with its ``SET LOCAL lock_timeout``, each of its
two statements alone and exactly as written, the version row with the
COMMIT. The journal's DELETEs go only where the journal holds rows for that
version (and then clear them), the set-up under the lock is one transaction,
two connections serve the run (the lock keeps its own), and a no-op apply is
one connection and one history read. A failing statement and a failing
version row are reported as before (which statement, its text, exit 4).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import yaml

from baselinr.errors import MigrationFailed
from baselinr.storage.migrations.manager import MigrationManager
from tests.support.packages import sql_migration, write_package
from tests.support.servers import Server
from tests.support.wire import WireLog

HISTORY = "SELECT version, status, description"
JOURNAL_DELETE = "DELETE FROM _baselinr_migration_journal"
# The lock: its transaction opened and the lock tried in one round trip, then ROLLBACK ends both.
TAKE = "BEGIN ISOLATION LEVEL READ COMMITTED; SET LOCAL idle_in_transaction_session_timeout = 0; SELECT pg_try_advisory_xact_lock"


def statements(v: int) -> list[str]:
    return [f"CREATE TABLE rt_{v} (id INTEGER PRIMARY KEY, name VARCHAR(50))", f"CREATE INDEX ix_rt_{v} ON rt_{v} (name)"]


def package(tmp_path: Path, top: int, **override: str) -> str:
    versions = {
        v: sql_migration(v, override.get(f"v{v}", ";\n".join(statements(v))), f"DROP TABLE rt_{v}") for v in range(1, top + 1)
    }
    return write_package(tmp_path / "pkgs", versions)


class Wired:
    """A fresh database reached through the wire log, and a direct connection for checks."""

    def __init__(self, server: Server, wire: WireLog, tmp_path: Path) -> None:
        self.server, self.wire, self.tmp_path = server, wire, tmp_path
        self.name = server.create_database()
        self.config = tmp_path / "config.yml"
        connection = {**server.connection(self.name), "port": wire.port}
        self.config.write_text(yaml.safe_dump({"storage": {"connection": connection}}))

    def manager(self, pkg: str) -> MigrationManager:
        return MigrationManager.from_config(str(self.config), migrations_package=pkg)

    def sql(self, sql: str) -> list[tuple[Any, ...]]:
        conn = psycopg2.connect(
            host=self.server.host, port=self.server.port, user=self.server.user, password=self.server.password, dbname=self.name
        )
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                return list(cur.fetchall()) if cur.description else []
        finally:
            conn.close()


@pytest.fixture
def wired(pg_server: Server, tmp_path: Path) -> Iterator[Wired]:
    with WireLog(pg_server.port) as wire:
        yield Wired(pg_server, wire, tmp_path)


def migration_sends(sends: list[str], v: int) -> list[str]:
    """The sends of version ``v``'s transaction: from its BEGIN to its COMMIT."""
    first = sends.index(statements(v)[0])
    end = next(i for i in range(first, len(sends)) if sends[i].endswith("COMMIT") or sends[i] == "ROLLBACK")
    return sends[first - 1 : end + 1]


def applied_then_fresh(wired: Wired, pkg: str) -> MigrationManager:
    """Apply all of ``pkg``, then a new manager on a wire with nothing recorded yet."""
    mgr = wired.manager(pkg)
    mgr.apply()
    mgr.close()
    wired.wire.clear()
    return wired.manager(pkg)


def test_each_migration_is_four_round_trips_and_the_set_up_one_transaction(wired: Wired, tmp_path: Path) -> None:
    mgr = wired.manager(package(tmp_path, 5))
    assert [s.version for s in mgr.apply(2).steps] == [1, 2]
    mgr.close()
    wired.wire.clear()

    mgr = wired.manager(mgr.migrations_package)
    assert [s.version for s in mgr.apply().steps] == [3, 4, 5]
    assert not mgr.db.has_engine
    lock, runner = wired.wire.connections  # two connections: the lock keeps its own
    # The history read before the lock, on the connection that then holds it.
    assert [s.split("(")[0] for s in lock] == ["SELECT version, status, description, applied_at, checksum, migration_script, "
                                               "applied_by, execution_time_ms, statements_done, statements_total, error_message, "
                                               "checksum_algorithm FROM baselinr_schema_version ORDER BY version",
                                               TAKE, "ROLLBACK"]  # fmt: skip
    # Under the lock, one transaction: the history again, the journal's versions, the live
    # tables and the backend pid for the lock guard; nothing created, nothing read twice.
    setup = runner[: runner.index(statements(3)[0]) - 1]
    assert [s.split(" FROM ")[0] for s in setup] == [
        "BEGIN; " + lock[0].split(" FROM ")[0],
        "SELECT DISTINCT version, kind",
        "SELECT tablename",
        "SELECT pg_backend_pid()",
        "ROLLBACK",
    ]
    for v in (3, 4, 5):
        begin, *written, last = migration_sends(runner, v)
        assert begin == "BEGIN; SET LOCAL lock_timeout = '2000ms'; SELECT pg_backend_pid()"  # the guard's session
        assert written == statements(v)  # alone, as written
        assert last.startswith("INSERT INTO baselinr_schema_version (version") and last.endswith("; COMMIT")
        assert "DELETE" not in last  # the journal holds nothing for v
    assert len(runner) == len(setup) + 3 * 4
    assert [r[0] for r in wired.sql("SELECT version FROM baselinr_schema_version ORDER BY version")] == [1, 2, 3, 4, 5]
    mgr.close()


def test_a_version_with_journal_rows_still_gets_them_cleared(wired: Wired, tmp_path: Path) -> None:
    mgr = wired.manager(package(tmp_path, 3))
    mgr.apply(1)
    # An earlier run of v2 waited out a lock timeout, and a backfill left its cursor.
    wired.sql(
        "INSERT INTO _baselinr_migration_journal (version, kind, name, run_id, detail, recorded_at) VALUES "
        "(2, 'lock_retry', 'earlier:1', 'earlier', '{}', now()), (2, 'backfill', 'b', 'earlier', '{}', now())"
    )
    wired.wire.clear()
    assert [s.version for s in mgr.apply().steps] == [2, 3]
    _, runner = wired.wire.connections
    *_, last = migration_sends(runner, 2)
    assert f"{JOURNAL_DELETE} WHERE version = 2 AND kind = 'lock_retry'" in last
    assert f"{JOURNAL_DELETE} WHERE version = 2 AND kind = 'backfill'" in last
    assert last.endswith("; COMMIT")  # with the version row, in the migration's transaction
    *_, last = migration_sends(runner, 3)
    assert JOURNAL_DELETE not in last
    assert sum(JOURNAL_DELETE in s for s in runner) == 1
    assert wired.sql("SELECT version, kind FROM _baselinr_migration_journal") == []
    assert mgr.status().retried == []
    mgr.close()


def test_a_no_op_apply_is_one_connection_and_one_read(wired: Wired, tmp_path: Path) -> None:
    mgr = applied_then_fresh(wired, package(tmp_path, 3))
    result = mgr.apply()
    assert result.steps == [] and result.to_version == 3
    [[read]] = wired.wire.connections  # no lock: nothing to do is decided from committed rows
    assert read.startswith(HISTORY) and "pg_try_advisory" not in read
    mgr.close()


def test_a_failing_statement_is_sent_alone_and_reported_by_number(wired: Wired, tmp_path: Path) -> None:
    pkg = package(tmp_path, 2, v2=f"{statements(2)[0]};\nINSERT INTO nowhere VALUES (1)")
    mgr = wired.manager(pkg)
    with pytest.raises(MigrationFailed) as failed:
        mgr.apply()
    assert failed.value.message == 'Migration v2 at statement 2 of 2 failed: relation "nowhere" does not exist'
    assert failed.value.exit_code == 4
    # The server saw the statement alone: its error points into that statement's own text.
    assert "LINE 1: INSERT INTO nowhere VALUES (1)" in failed.value.__cause__.pgerror  # type: ignore[union-attr]
    _, runner = wired.wire.connections
    assert runner[runner.index("INSERT INTO nowhere VALUES (1)") + 1] == "ROLLBACK"
    assert wired.sql("SELECT to_regclass('rt_2') IS NULL") == [(True,)]  # rolled back as a whole
    assert [r[0] for r in wired.sql("SELECT version FROM baselinr_schema_version")] == [1]
    mgr.close()


def test_a_failing_version_row_fails_its_migration_and_rolls_it_back(wired: Wired, tmp_path: Path) -> None:
    pkg = package(tmp_path, 3)
    mgr = wired.manager(pkg)
    mgr.apply(1)
    wired.sql(
        "CREATE FUNCTION no_v3() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW.version = 3 THEN RAISE EXCEPTION 'no v3 here'; END IF; RETURN NEW; END $$"
    )
    wired.sql("CREATE TRIGGER no_v3 BEFORE INSERT ON baselinr_schema_version FOR EACH ROW EXECUTE FUNCTION no_v3()")
    wired.wire.clear()
    with pytest.raises(MigrationFailed) as failed:
        mgr.apply()
    # The version row travels with the COMMIT: its error is still the migration's (no statement number).
    assert failed.value.message == "Migration v3 failed: no v3 here"
    assert failed.value.exit_code == 4
    _, runner = wired.wire.connections
    assert runner[-2].startswith("INSERT INTO baselinr_schema_version") and runner[-2].endswith("; COMMIT")
    assert runner[-1] == "ROLLBACK"
    assert wired.sql("SELECT to_regclass('rt_3') IS NULL, to_regclass('rt_2') IS NOT NULL") == [(True, True)]
    assert [r[0] for r in wired.sql("SELECT version FROM baselinr_schema_version ORDER BY version")] == [1, 2]
    wired.sql("DROP TRIGGER no_v3 ON baselinr_schema_version")
    assert [s.version for s in mgr.apply().steps] == [3]  # the lock was released, the connection clean
    mgr.close()


def test_a_rollback_shares_the_lock_connection_and_batches_the_same_way(wired: Wired, tmp_path: Path) -> None:
    mgr = applied_then_fresh(wired, package(tmp_path, 3))
    assert [s.version for s in mgr.rollback(1).steps] == [3, 2]
    lock, runner = wired.wire.connections
    assert lock[0].startswith(HISTORY) and lock[1].startswith(TAKE) and len(lock) == 3
    for v in (3, 2):
        i = runner.index(f"DROP TABLE rt_{v}")
        assert runner[i - 1] == "BEGIN; SET LOCAL lock_timeout = '2000ms'; SELECT pg_backend_pid()"
        assert runner[i + 1] == f"DELETE FROM baselinr_schema_version WHERE version = {v}; COMMIT"
    assert [r[0] for r in wired.sql("SELECT version FROM baselinr_schema_version")] == [1]
    mgr.close()
