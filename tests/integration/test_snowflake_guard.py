"""The DDL lock guard and batched backfills on Snowflake, as far as the ``fakesnow`` emulator goes.

On Snowflake the guard's settings are the session parameters
``LOCK_TIMEOUT`` and ``STATEMENT_TIMEOUT_IN_SECONDS`` (whole seconds), set
with ``ALTER SESSION`` on the tracked run's own connection and unset after
it. The emulator implements neither ``ALTER SESSION SET`` nor those
parameters (``SHOW PARAMETERS`` answers nothing) and has no lock waits, so
what is checked against it: the engine asks the server whether it knows the
parameter and, told no, runs guarded migrations (and backfills) unguarded
instead of failing. The statements a real account gets are checked as
rendered, with the probe's answer set to "known", and the lock timeout is
recognised on a real ``snowflake.connector`` error object carrying the
service's error number. That a real account aborts a statement after
``LOCK_TIMEOUT`` with that number cannot be tested here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from snowflake.connector.errors import ProgrammingError

from baselinr.config import load_config
from baselinr.storage.dialects import SnowflakeDialect
from baselinr.storage.migrations.manager import MigrationManager
from baselinr.storage.migrations.results import BackfillProgress
from tests.integration.test_snowflake import SF
from tests.support.packages import write_package
from tests.support.snowflake import SnowflakeEmulator, start_emulator

GUARDED = """
migration = Migration(
    version=2,
    description="Guarded DDL",
    up_sql="ALTER TABLE baselinr_runs ADD COLUMN guard_a INTEGER;",
    lock_timeout=1.5,
    statement_timeout=30,
)
"""

TABLE = """
migration = Migration(version=3, description="Backfill target", up_sql="CREATE TABLE bf_items (id INTEGER, x INTEGER);")
"""

BACKFILL = """
from baselinr.storage.migrations.backfill import backfill


def up(conn):
    backfill(conn, table="bf_items", set_sql="x = x + 1", key="id", batch=300)


migration = Migration(version=4, description="Increment x", up_python=up, transactional=False)
"""


@pytest.fixture(scope="module")
def emulator(server_root: Path) -> Iterator[SnowflakeEmulator]:
    server = start_emulator(server_root)
    yield server
    server.stop()


@pytest.fixture
def sf(emulator: SnowflakeEmulator, tmp_path: Path) -> SF:
    return SF(emulator, tmp_path)


def test_the_statements_a_snowflake_account_gets() -> None:
    d = SnowflakeDialect()
    d._guard_parameters = True  # what SHOW PARAMETERS says on a real account
    conn: sa.Connection = None  # type: ignore[assignment]  # not used once the probe has answered
    assert d.guard_statements(conn, 1.5, 30.2, in_transaction=False) == (
        ["ALTER SESSION SET LOCK_TIMEOUT = 2, STATEMENT_TIMEOUT_IN_SECONDS = 31"],
        ["ALTER SESSION UNSET LOCK_TIMEOUT, STATEMENT_TIMEOUT_IN_SECONDS"],
    )
    assert d.guard_statements(conn, 0.0, None, in_transaction=False) == ([], [])
    assert d.lock_wait_seconds(0.2) == 1.0
    locked = ProgrammingError(
        msg="Statement '01a' has locked table 'BASELINR_RESULTS' in transaction 1 and this lock has not yet been released.",
        errno=625,
        sqlstate="57014",
    )
    timed_out = ProgrammingError(msg="Statement reached its statement or warehouse timeout of 30 second(s)", errno=630)
    assert d.is_lock_wait_timeout(locked) and not d.is_lock_wait_timeout(timed_out)


def test_an_emulator_without_the_parameters_runs_unguarded(sf: SF, tmp_path: Path) -> None:
    pkg = write_package(tmp_path / "p", {2: GUARDED})
    mgr = MigrationManager.from_settings(load_config(sf.config), migrations_package=pkg, ddl_lock_timeout=1)
    with mgr.engine.connect() as conn:
        assert SnowflakeDialect()._knows_guard_parameters(conn) is False
    result = mgr.apply()
    assert [s.version for s in result.steps] == [1, 2]
    assert mgr.status().state == "up_to_date"


def test_a_backfill_on_snowflake_commits_per_batch(sf: SF, tmp_path: Path) -> None:
    pkg = write_package(tmp_path / "p", {2: GUARDED, 3: TABLE, 4: BACKFILL})
    mgr = MigrationManager.from_settings(load_config(sf.config), migrations_package=pkg)
    mgr.apply(3)
    with mgr.engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO bf_items (id, x) VALUES " + ", ".join(f"({i}, 0)" for i in range(1, 1001))))
    seen: list[BackfillProgress] = []
    mgr.apply(on_progress=seen.append)
    assert [(p.rows_done, p.batches) for p in seen] == [(300, 1), (600, 2), (900, 3), (1000, 4)]
    with mgr.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*), MIN(x), MAX(x) FROM bf_items")).one() == (1000, 1, 1)
    assert mgr.status().state == "up_to_date"
