"""``baselinr migrate lint --config``: the pending migrations of a real SQLite database,
and the project's own chain on every dialect (no unacknowledged error)."""

from __future__ import annotations

import glob
import json
from pathlib import Path

import pytest

from baselinr.lint import lint
from baselinr.lint.sources import units_from_files
from baselinr.storage.schema_version import CURRENT_SCHEMA_VERSION
from tests.conftest import make_database
from tests.support.cli import run_process

ROOT = Path(__file__).resolve().parents[2]


def test_lint_pending_migrations_of_a_sqlite_database(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    db = make_database("sqlite", tmp_path, request)
    assert run_process("migrate", "apply", "--config", str(db.config), "--target", "9").code == 0
    r = run_process("migrate", "lint", "--config", str(db.config), "-o", "json")
    assert r.code == 0, r.err
    data = json.loads(r.out)
    assert data["dialect"] == "sqlite"
    assert [u["version"] for u in data["migrations"]] == list(range(10, CURRENT_SCHEMA_VERSION + 1))
    assert not [f for f in data["findings"] if f["severity"] == "error" and not f["acknowledged"]]

    only_10 = json.loads(run_process("migrate", "lint", "--config", str(db.config), "-o", "json", "--target", "10").out)
    assert [u["version"] for u in only_10["migrations"]] == [10]

    assert run_process("migrate", "apply", "--config", str(db.config)).code == 0
    done = run_process("migrate", "lint", "--config", str(db.config))
    assert done.code == 0 and "Nothing to lint" in done.out


@pytest.mark.parametrize("dialect", ["postgres", "mysql", "sqlite", "snowflake"])
def test_the_project_chain_has_no_unacknowledged_error(dialect: str) -> None:
    files = sorted(
        glob.glob(str(ROOT / "baselinr/storage/migrations/versions/v*.py")),
        key=lambda p: int(Path(p).name[1:].split("_")[0]),
    )
    report = lint(units_from_files(files, dialect), dialect)
    assert [u.version for u in report.units] == list(range(1, CURRENT_SCHEMA_VERSION + 1))
    assert report.ok, [f for f in report.findings if f.blocking]
    # v11 rebuilds baselinr_rca_results (copy, drop, rename): not a lost table.
    assert "drop-table" not in {f.rule for f in report.findings}
