"""A compact tier on a second PostgreSQL major (16, the pgserver wheel's binaries): apply,
validate, lint, adopting a database Baselinr's profiler made, and a backup round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import Database
from tests.integration.test_adopt import test_profiler_database_is_adopted_and_brought_to_the_latest_version as adopt_tour
from tests.integration.test_backup import assert_same, backup, ours, populate, snapshot
from tests.support.cli import run
from tests.support.servers import Server


def fresh16(server: Server, where: Path) -> Database:
    where.mkdir()
    db = Database("postgres", where / "config.yml", server.connection(server.create_database()), server)
    db.write_config()
    return db


@pytest.fixture
def pg16(pg16_server: Server, tmp_path: Path) -> Database:
    return fresh16(pg16_server, tmp_path / "pg16")


def test_lint_apply_validate_on_postgres_16(pg16: Database, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(pg16.config)
    r = run(capsys, "migrate", "lint", "--config", cfg, "-o", "json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["dialect"] == "postgres"
    r = run(capsys, "migrate", "apply", "--config", cfg)
    assert r.code == 0, r.err
    r = run(capsys, "migrate", "validate", "--config", cfg)
    assert r.code == 0, r.out + r.err
    from baselinr.storage.migrations.manager import MigrationManager

    mgr = MigrationManager.from_config(cfg)
    with mgr.engine.connect() as conn:
        assert conn.exec_driver_sql("SHOW server_version_num").scalar().startswith("16")  # type: ignore[union-attr]
    mgr.close()


def test_adopt_on_postgres_16(pg16: Database, capsys: pytest.CaptureFixture[str]) -> None:
    adopt_tour(pg16, capsys)


def test_backup_round_trip_on_postgres_16(
    pg16: Database, pg16_server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    populate(pg16, capsys, results=200)
    before = snapshot(pg16)
    made = backup(capsys, pg16, tmp_path / "backups")
    target = fresh16(pg16_server, tmp_path / "target")
    r = run(capsys, "backup", "restore", made["path"], "--config", str(target.config))
    assert r.code == 0, r.err
    assert_same(snapshot(target), ours(before))
