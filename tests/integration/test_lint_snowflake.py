"""``baselinr migrate lint --config`` against the Snowflake emulator (fakesnow):
the pending migrations of a real database, linted with Snowflake's rules."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.cli import run
from tests.support.packages import sql_migration, write_package
from tests.support.snowflake import SnowflakeEmulator, start_emulator

MIXED = "ALTER TABLE baselinr_runs ADD COLUMN note VARCHAR(10);\nUPDATE baselinr_runs SET note = 'x' WHERE note IS NULL;"
INDEX = "CREATE INDEX idx_runs_note ON baselinr_runs (note);"


@pytest.fixture(scope="module")
def emulator(server_root: Path) -> Iterator[SnowflakeEmulator]:
    server = start_emulator(server_root)
    yield server
    server.stop()


def test_lint_pending_snowflake_migrations(
    emulator: SnowflakeEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump({"environment": "test", "storage": {"connection": emulator.connection()}}))
    pkg = write_package(tmp_path / "p", {2: sql_migration(2, MIXED), 3: sql_migration(3, INDEX)})
    assert run(capsys, "migrate", "apply", "-c", str(config), "--migrations", pkg, "--target", "1").code == 0

    r = run(capsys, "migrate", "lint", "-c", str(config), "--migrations", pkg, "-o", "json")
    assert r.code == 1, r.err
    data = json.loads(r.out)
    assert data["dialect"] == "snowflake"
    assert [u["version"] for u in data["migrations"]] == [2, 3]
    assert [(f["rule"], f["severity"], f["version"], f["statement_index"]) for f in data["findings"]] == [
        ("snowflake-implicit-commit", "warning", 2, 2),
        ("snowflake-no-index", "error", 3, 1),
    ]
    # Up to v2 only: a warning does not fail the run.
    assert run(capsys, "migrate", "lint", "-c", str(config), "--migrations", pkg, "--target", "2").code == 0
