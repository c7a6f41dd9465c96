"""A SQLite storage database filled by the released profiler moves to PostgreSQL and to MariaDB.

Its incremental profiling leaves table state with a NULL ``database_name``
(SQLite's key takes it, the servers' do not): the first move is refused,
naming it, and docs/MOVE.md's advice is followed before the second.

The database is made by our ``migrate apply`` and filled by the profiler as
its users fill it (two ``profile`` runs, ``drift``, ``validate``, its storage
classes' writes). ``baselinr migrate move`` takes it to the server; then
every row is equal under this tier's reading of each dialect's values,
``migrate validate`` is green on the target, the profiler's storage classes
read back there what they read on SQLite, and its ``profile`` runs there,
its new result rows taking ids after the highest one moved.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect

from tests.conftest import Database
from tests.integration.test_move import rows_of
from tests.support.cli import run_process
from tests.support.profiler import World, add_profiler_user, require_profiler

pytestmark = pytest.mark.profiler

# What docs/MOVE.md says to run on the SQLite source before a move to a server.
FILL_NULL_KEYS = (
    "UPDATE baselinr_table_state SET database_name = COALESCE(database_name, ''), "
    "schema_name = COALESCE(schema_name, '') WHERE database_name IS NULL OR schema_name IS NULL"
)


def _rows(world: World) -> dict[str, list[tuple[Any, ...]]]:
    return rows_of(Database(world.dialect, world.config, {}, world.server))


def _failed(value: Any) -> bool:
    return isinstance(value, dict) and "error" in value


def _tables(world: World) -> list[str]:
    engine = create_engine(world.storage_url())
    try:
        return list(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _results(world: World) -> tuple[int, int]:
    engine = create_engine(world.storage_url())
    try:
        with engine.connect() as conn:
            count, top = conn.exec_driver_sql("SELECT COUNT(*), MAX(id) FROM baselinr_results").one()
            return int(count), int(top)
    finally:
        engine.dispose()


@pytest.mark.parametrize("dialect", ["postgres", "mysql"])
def test_a_database_the_profiler_filled_moves_from_sqlite_and_the_profiler_works_on_the_target(
    dialect: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    require_profiler()
    server = request.getfixturevalue("pg_server" if dialect == "postgres" else "mysql_server")
    add_profiler_user(server)
    lite = World("sqlite", tmp_path / "sqlite")
    assert lite.ours("apply").code == 0
    r = lite.profiler("profile")
    assert r.code == 0, r.err[-2000:]
    lite.change_source()
    assert lite.profiler("profile").code == 0
    lite.profiler("drift", "--dataset", "customers")
    lite.profiler("validate")
    lite.client("write")
    read_on_sqlite = lite.client("read")
    moved_rows, _ = _results(lite)
    assert moved_rows > 0

    target = World(dialect, tmp_path / "target", server)
    move = ("migrate", "move", "--config", str(lite.config), "--to", str(target.config), "--output", "json")
    # Incremental profiling left table state with a NULL database_name, which SQLite's key takes and
    # the server's does not: refused before anything is written, naming it.
    r = run_process(*move)
    assert r.code == 2, r.out + r.err
    assert "baselinr_table_state.database_name" in r.err and "holds None" in r.err and "NOT NULL" in r.err
    assert _tables(target) == []
    # docs/MOVE.md's advice, followed: the '' that v10 held there.
    with sqlite3.connect(lite.storage_db) as conn:
        conn.execute(FILL_NULL_KEYS)
    r = run_process(*move)
    assert r.code == 0, r.err
    out = json.loads(r.out)
    assert out["verified"] is True and out["source_dialect"] == "sqlite" and out["target_dialect"] == dialect
    assert _rows(target) == _rows(lite)
    r = target.ours("validate")
    assert r.code == 0, r.out + r.err

    # The profiler's storage classes read the moved records on the target: every call that worked on
    # SQLite works there (what they return differs by dialect in the profiler itself, e.g. how it
    # parses a timestamp, so it is compared within one dialect in test_released_profiler.py).
    read_on_target = target.client("read")
    assert sorted(read_on_target) == sorted(read_on_sqlite)
    failed = {k: v for k, v in read_on_target.items() if _failed(v) and not _failed(read_on_sqlite[k])}
    assert failed == {}
    # ...and its profile runs there: new result rows, ids after the highest one moved.
    _, top = _results(target)
    r = target.profiler("profile")
    assert r.code == 0, r.out[-2000:] + r.err[-2000:]
    count, new_top = _results(target)
    assert count > moved_rows and new_top > top
    r = target.ours("validate")
    assert r.code == 0, r.out + r.err
