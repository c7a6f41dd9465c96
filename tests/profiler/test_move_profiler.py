"""A SQLite storage database filled by the released profiler moves to PostgreSQL and to MariaDB.

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
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine

from tests.conftest import Database
from tests.integration.test_move import rows_of
from tests.support.cli import run_process
from tests.support.profiler import World, add_profiler_user, require_profiler

pytestmark = pytest.mark.profiler


def _rows(world: World) -> dict[str, list[tuple[Any, ...]]]:
    return rows_of(Database(world.dialect, world.config, {}, world.server))


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
    r = run_process("migrate", "move", "--config", str(lite.config), "--to", str(target.config), "--output", "json")
    assert r.code == 0, r.err
    out = json.loads(r.out)
    assert out["verified"] is True and out["source_dialect"] == "sqlite" and out["target_dialect"] == dialect
    assert _rows(target) == _rows(lite)
    r = target.ours("validate")
    assert r.code == 0, r.out + r.err

    # The profiler's storage classes read on the target what they read on SQLite.
    read_on_target = target.client("read")
    differ = {k: (v, read_on_target.get(k)) for k, v in read_on_sqlite.items() if read_on_target.get(k) != v}
    assert differ == {}
    # ...and its profile runs there: new result rows, ids after the highest one moved.
    _, top = _results(target)
    r = target.profiler("profile")
    assert r.code == 0, r.out[-2000:] + r.err[-2000:]
    count, new_top = _results(target)
    assert count > moved_rows and new_top > top
    r = target.ours("validate")
    assert r.code == 0, r.out + r.err
