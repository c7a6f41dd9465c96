"""The guide's workflow end to end on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from baselinr.config import load_config
from baselinr.storage.migrations.versions import ALL_MIGRATIONS
from baselinr.storage.schema_version import CURRENT_SCHEMA_VERSION as LATEST
from tests.conftest import Database
from tests.support.cli import run

GUIDE_STATUS = """
============================================================
SCHEMA VERSION STATUS
============================================================
Current database version: {LATEST}
Current code version: {LATEST}

✅ Schema version is up to date
Database: {database}
"""


def test_fresh_database_to_latest_then_status_and_validate(database: Database, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(database.config)
    r = run(capsys, "migrate", "status", "--config", cfg)
    assert r.code == 1
    assert "Current database version: not initialized" in r.out

    r = run(capsys, "migrate", "apply", "--config", cfg, "--target", "1")
    assert r.code == 0, r.err
    assert r.out.splitlines() == [
        "Applying migration v1: Initial schema with runs, results, events, and table_state tables",
        "✅ Successfully migrated to version 1",
        f"Database: {load_config(database.config).storage.connection.describe()}",
    ]
    r = run(capsys, "migrate", "status", "--config", cfg)
    assert r.code == 1
    assert f"⚠️  Database schema is behind (v1 < v{LATEST})\nRun: baselinr migrate apply --target {LATEST}" in r.out

    r = run(capsys, "migrate", "apply", "--config", cfg)
    assert r.code == 0, r.err
    assert r.out.splitlines() == [
        *(f"Applying migration v{m.version}: {m.description}" for m in ALL_MIGRATIONS[1:]),
        f"✅ Successfully migrated to version {LATEST}",
        f"Database: {load_config(database.config).storage.connection.describe()}",
    ]

    r = run(capsys, "migrate", "status", "--config", cfg)
    assert r.code == 0
    assert r.out == GUIDE_STATUS.format(database=load_config(database.config).storage.connection.describe(), LATEST=LATEST)

    r = run(capsys, "migrate", "validate", "--config", cfg)
    assert r.code == 0, r.out
    assert r.out == f"Validating schema integrity...\n\nSchema Version: {LATEST}\nValid: ✅ Yes\n"

    r = run(capsys, "migrate", "status", "--config", cfg, "--output", "json")
    data = json.loads(r.out)
    assert data["database_version"] == LATEST and data["state"] == "up_to_date"

    r = run(capsys, "migrate", "apply", "--config", cfg)
    assert r.code == 0
    assert f"Already at version {LATEST}" in r.out


LOADED_MODULES = """
import sys
from baselinr.cli import main
code = main()
print("EXIT", code, "SQLALCHEMY", any(m == "sqlalchemy" or m.startswith("sqlalchemy.") for m in sys.modules))
"""


def test_status_and_a_no_op_apply_need_neither_sqlalchemy_nor_the_lock(database: Database) -> None:
    """The operator's Jobs and Helm hooks run `apply` on every sync: with nothing to do it
    reads the history with the bare driver, as `status` does, and SQLAlchemy's import
    (most of the start-up time) is never paid. Work to do takes the locked path, which
    runs SQL-only migrations on the bare driver too."""

    def cli(*args: str) -> str:
        argv = ["baselinr", *args, "--config", str(database.config)]
        code = f"import sys; sys.argv = {argv!r}\n" + LOADED_MODULES
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.splitlines()[-1]

    assert cli("migrate", "apply", "--target", "1") == "EXIT 0 SQLALCHEMY False"
    assert cli("migrate", "status") == "EXIT 1 SQLALCHEMY False"
    # Behind: apply has work, so it locks and migrates (SQL only: on the bare driver).
    assert cli("migrate", "apply", "--target", "2") == "EXIT 0 SQLALCHEMY False"
    assert cli("migrate", "apply", "--target", "2") == "EXIT 0 SQLALCHEMY False"
    # A target below the database version is still refused (exit 2), on the locked path.
    assert cli("migrate", "apply", "--target", "1") == "EXIT 2 SQLALCHEMY False"
