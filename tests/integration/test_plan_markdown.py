"""Plans as pull-request comments: ``apply --dry-run`` and ``validate`` with ``--output markdown``
on real SQLite and PostgreSQL databases; the dry run's lint findings in text and JSON too; and
``migrate new`` pointing at the command that lints the file it wrote.

The Markdown is read back as a reader would: its tables are parsed row by row, per section,
and compared with the facts the JSON output of the same command gives.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from sqlalchemy import text

from baselinr.config import load_config
from baselinr.storage.migrations.manager import MigrationManager
from tests.conftest import Database
from tests.support.cli import run
from tests.support.packages import write_package

DROP = "ALTER TABLE baselinr_runs DROP COLUMN environment"
INDEX = "CREATE INDEX idx_results_run ON baselinr_results (run_id)"
V2 = (
    "migration = Migration(version=2, description='Drop environment | index results', "
    f"up_sql={DROP + ';' + chr(10) + INDEX + ';'!r}, "
    "down_sql='DROP INDEX idx_results_run;\\nALTER TABLE baselinr_runs ADD COLUMN environment VARCHAR(50);')\n"
)
V3 = "migration = Migration(version=3, description='Add x', up_sql='ALTER TABLE baselinr_runs ADD COLUMN x INTEGER;')\n"


def md_tables(text: str) -> dict[str, list[list[str]]]:
    """Every Markdown table of ``text`` by the heading above it: rows of cells, header row first."""
    tables: dict[str, list[list[str]]] = {}
    section, fenced = "", False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        if fenced:
            continue
        if line.startswith("#"):
            section = line.lstrip("#").strip()
        elif line.startswith("|"):
            cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if not all(c and set(c) <= {"-"} for c in cells):
                tables.setdefault(section, []).append(cells)
    return tables


def code_blocks(text: str) -> list[list[str]]:
    """The lines of each fenced code block."""
    return [block.splitlines() for block in re.findall(r"^```[a-z]*\n(.*?)^```$", text, flags=re.S | re.M)]


def at_v1(database: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    pkg = write_package(tmp_path / "p", {2: V2, 3: V3})
    r = run(capsys, "migrate", "apply", "-c", str(database.config), "--migrations", pkg, "--target", "1")
    assert r.code == 0, r.err
    return pkg


@pytest.mark.parametrize("database", ["sqlite", "postgres"], indirect=True)
def test_dry_run_as_markdown(database: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pkg = at_v1(database, tmp_path, capsys)
    cfg = str(database.config)
    r = run(capsys, "migrate", "apply", "-c", cfg, "--migrations", pkg, "--dry-run", "--output", "markdown")
    assert r.code == 0, r.err
    data = json.loads(run(capsys, "migrate", "apply", "-c", cfg, "--migrations", pkg, "--dry-run", "-o", "json").out)
    tables = md_tables(r.out)
    assert r.out.startswith(f"### baselinr migrate apply --dry-run ({database.dialect})\n")

    versions = tables["Versions"]
    assert versions[0] == ["Version", "Description", "Statements", "Python", "Transaction"]
    assert [row[:4] for row in versions[1:]] == [
        ["v2", "Drop environment | index results", "2", "-"],
        ["v3", "Add x", "1", "-"],
    ]
    assert [row[0] for row in versions[1:]] == [f"v{s['version']}" for s in data["plan"]["steps"]]
    assert all(row[4].startswith("one transaction") for row in versions[1:])  # both dialects: transactional DDL

    # The statements, one block per version, then the rollback's.
    blocks = code_blocks(r.out)
    assert blocks[:2] == [[f"{DROP};", f"{INDEX};"], ["ALTER TABLE baselinr_runs ADD COLUMN x INTEGER;"]]
    assert blocks[2:] == [["DROP INDEX idx_results_run;", "ALTER TABLE baselinr_runs ADD COLUMN environment VARCHAR(50);"]]

    findings = tables["Lint findings"]
    assert findings[0] == ["", "Migration", "Statement", "Rule", "Severity", "Advice"]
    rows = {(row[1], row[3].strip("`"), row[4]) for row in findings[1:]}
    assert ("v2", "drop-column", "error") in rows
    assert rows == {(f"v{f['version']}", f["rule"], f["severity"]) for f in data["lint"]["findings"]}
    assert "**Failed**: 2 migration(s)" in r.out

    hazards = tables.get("Lock hazards", [])
    if database.dialect == "postgres":
        # CREATE INDEX without CONCURRENTLY blocks writes to one of Baselinr's big tables.
        assert [row[:3] for row in hazards[1:]] == [["v2", "2", "`pg-index-not-concurrent`"]]
    else:
        assert hazards == []
    assert [[h["version"], h["kind"]] for h in data["hazards"]] == [[int(r[0][1:]), r[2].strip("`")] for r in hazards[1:]]

    rollback = tables["Rollback"]
    assert rollback[1:] == [
        ["v3", "Add x", "-", ":x: no down migration"],
        ["v2", "Drop environment | index results", "2 statement(s)", "possible"],
    ]
    assert [(s["version"], s["reversible"]) for s in data["rollback"]] == [(3, False), (2, True)]

    # A dry run changes nothing.
    status = json.loads(run(capsys, "migrate", "status", "-c", cfg, "--migrations", pkg, "-o", "json").out)
    assert status["database_version"] == 1 and status["pending"] == [2, 3]


@pytest.mark.parametrize("database", ["sqlite", "postgres"], indirect=True)
def test_dry_run_text_shows_the_lint_findings(database: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pkg = at_v1(database, tmp_path, capsys)
    r = run(capsys, "migrate", "apply", "-c", str(database.config), "--migrations", pkg, "--dry-run")
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    head = ["🔍 DRY RUN MODE - No changes will be applied", "", "[DRY RUN] Would apply v2: Drop environment | index results"]
    assert lines[:3] == head
    lint = lines[lines.index("Lint of the planned migrations:") + 1 :]
    assert lint[0] == "❌ v2 statement 1 [drop-column] (error)"
    assert lint[1] == f"    {DROP}"
    as_json = run(capsys, "migrate", "apply", "-c", str(database.config), "--migrations", pkg, "--dry-run", "-o", "json")
    data = json.loads(as_json.out)
    errors = sum(1 for f in data["lint"]["findings"] if f["severity"] == "error")
    assert errors == (2 if database.dialect == "postgres" else 1)  # PostgreSQL: the index build blocks writes too
    assert lint[-2] == f"❌ 2 migration(s) on {database.dialect}: {errors} error(s), 0 warning(s), 0 acknowledged"
    assert lint[-1].startswith("This dry run exits 0; 'baselinr migrate lint' (same --config) exits 1 on these errors")
    marks = [line.split(" [")[0] for line in lint if line.startswith("❌ v")]
    assert len(marks) == errors


@pytest.mark.parametrize("database", ["sqlite", "postgres"], indirect=True)
def test_nothing_to_apply_as_markdown(database: Database, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(database.config)
    assert run(capsys, "migrate", "apply", "-c", cfg).code == 0
    r = run(capsys, "migrate", "apply", "-c", cfg, "--dry-run", "-o", "markdown")
    assert r.code == 0, r.err
    assert md_tables(r.out) == {}
    assert r.out.splitlines()[2].endswith("nothing to apply.")
    r = run(capsys, "migrate", "apply", "-c", cfg, "--dry-run")
    assert "Lint of the planned migrations" not in r.out


@pytest.mark.parametrize("database", ["sqlite", "postgres"], indirect=True)
def test_validate_as_markdown(database: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(database.config)
    assert run(capsys, "migrate", "apply", "-c", cfg).code == 0
    r = run(capsys, "migrate", "validate", "-c", cfg, "--output", "markdown")
    assert r.code == 0, r.err
    data = json.loads(run(capsys, "migrate", "validate", "-c", cfg, "-o", "json").out)
    summary = md_tables(r.out)["baselinr migrate validate"]
    assert summary[0] == ["Schema version", "Code version", "Result", "Errors", "Warnings"]
    assert summary[1] == [f"v{data['version']}", f"v{data['code_version']}", ":white_check_mark: valid", "0", "0"]

    # A table dropped by hand: validate fails, and says why in a row per problem.
    mgr = MigrationManager.from_settings(load_config(database.config))
    with mgr.engine.begin() as conn:
        conn.execute(text("DROP TABLE baselinr_events"))
    mgr.close()
    r = run(capsys, "migrate", "validate", "-c", cfg, "-o", "markdown")
    data = json.loads(run(capsys, "migrate", "validate", "-c", cfg, "-o", "json").out)
    assert r.code == 1 and data["valid"] is False
    tables = md_tables(r.out)["baselinr migrate validate"]
    assert tables[1][2:] == [":x: invalid", str(len(data["errors"])), str(len(data["warnings"]))]
    problems = tables[2:]
    assert problems[0] == ["", "Severity", "Problem"]
    assert [(p[1], p[2]) for p in problems[1:]] == [("error", e) for e in data["errors"]] + [
        ("warning", w) for w in data["warnings"]
    ]


def test_markdown_is_for_the_dry_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.yml"
    config.write_text(f"storage:\n  connection: {{type: sqlite, database: b, filepath: {tmp_path / 'b.db'}}}\n")
    r = run(capsys, "migrate", "apply", "-c", str(config), "-o", "markdown")
    assert r.code == 2 and r.out == ""
    assert r.err.strip() == "❌ --output markdown shows a plan: use it with --dry-run."
    assert not (tmp_path / "b.db").exists() or run(capsys, "migrate", "status", "-c", str(config)).code == 1


def scaffold_package(root: Path) -> str:
    """A package laid out like Baselinr's own versions package, which ``migrate new`` edits."""
    name = write_package(root, {2: V3.replace("version=3", "version=2")})
    (root / name / "__init__.py").write_text(
        "from baselinr.storage.migrations.versions.v1_initial import migration as v1_migration\n"
        "from .v2_test import migration as v2_migration\n\n"
        "ALL_MIGRATIONS = [\n    v1_migration,\n    v2_migration,\n]\nCURRENT_SCHEMA_VERSION = 2\n"
    )
    return name


def test_new_points_at_the_lint_of_its_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pkg = scaffold_package(tmp_path / "n")
    r = run(capsys, "migrate", "new", "Drop the environment", "--migrations", pkg)
    assert r.code == 0, r.err
    last = r.out.splitlines()[-1]
    assert last.startswith("   lint it once it is edited: baselinr migrate lint ")
    command = last.split(": ", 1)[1].split()
    path = Path(command[-1])
    assert path.resolve() == (tmp_path / "n" / pkg / "v3_drop_the_environment.py").resolve()
    other = scaffold_package(tmp_path / "j")
    data = json.loads(run(capsys, "migrate", "new", "Second one", "--migrations", other, "-o", "json").out)
    assert data["lint_command"] == f"baselinr migrate lint {data['path']}"

    # The hint's command, run once the file is edited, reports the file's hazards.
    source = re.sub(r'up_sql="""\n.*?"""', lambda _: f'up_sql="""{DROP};"""', path.read_text(), flags=re.DOTALL)
    assert source != path.read_text()
    # The template imports Migration relative to Baselinr's own versions package; this one sits elsewhere.
    absolute = "from baselinr.storage.migrations.manager import Migration"
    path.write_text(source.replace("from ..manager import Migration", absolute))
    lint = run(capsys, *command[1:], "-o", "json")
    assert lint.code == 1, lint.err
    assert [(f["version"], f["rule"]) for f in json.loads(lint.out)["findings"]] == [(3, "drop-column")]
