"""``baselinr migrate lint FILES``: output formats, exit codes, acknowledgements, usage errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli import run, run_process

INDEX = "CREATE INDEX idx_runs_env ON baselinr_runs (environment);\n"
ADD = "ALTER TABLE baselinr_runs ADD COLUMN note VARCHAR(100) DEFAULT 'x';\n"


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_text_output_and_exit_1_on_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    r = run(capsys, "migrate", "lint", write(tmp_path, "v12_index.sql", INDEX))
    assert r.code == 1
    assert "v12 statement 1 [pg-index-not-concurrent] (error)" in r.out
    assert "CONCURRENTLY" in r.out
    assert "1 error(s), 0 warning(s), 0 acknowledged" in r.out


def test_clean_file_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    r = run(capsys, "migrate", "lint", write(tmp_path, "v12_add.sql", ADD))
    assert r.code == 0, r.out
    assert "0 error(s), 0 warning(s)" in r.out


def test_dialect_changes_the_rules(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "v12_index.sql", INDEX)
    assert run(capsys, "migrate", "lint", "--dialect", "mysql", path).code == 0
    assert run(capsys, "migrate", "lint", "--dialect", "postgres", path).code == 1


def test_json_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    r = run(capsys, "migrate", "lint", "-o", "json", write(tmp_path, "v12_index.sql", INDEX), write(tmp_path, "v13.sql", ADD))
    data = json.loads(r.out)
    assert r.code == 1 and data["ok"] is False
    assert [u["version"] for u in data["migrations"]] == [12, 13]
    (finding,) = data["findings"]
    assert finding["rule"] == "pg-index-not-concurrent" and finding["severity"] == "error"
    assert finding["version"] == 12 and finding["statement_index"] == 1 and finding["table"] == "baselinr_runs"
    assert finding["acknowledged"] is False


def test_markdown_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    r = run(capsys, "migrate", "lint", "-o", "markdown", write(tmp_path, "v12_index.sql", INDEX))
    assert r.code == 1
    lines = r.out.splitlines()
    assert "| | Migration | Statement | Rule | Severity | Advice |" in lines
    row = next(line for line in lines if "pg-index-not-concurrent" in line)
    assert row.startswith("| :x: | v12 | 1: `CREATE INDEX idx_runs_env")
    assert "**Failed**" in r.out


def test_acknowledged_error_is_listed_and_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sql = "-- baselinr-lint: ignore pg-index-not-concurrent table is tiny in every deployment\n" + INDEX
    r = run(capsys, "migrate", "lint", write(tmp_path, "v12_index.sql", sql))
    assert r.code == 0, r.out
    assert "(error, acknowledged: table is tiny in every deployment)" in r.out
    md = run(capsys, "migrate", "lint", "-o", "markdown", write(tmp_path, "v12_index.sql", sql))
    assert ":white_check_mark:" in md.out and md.code == 0


def test_acknowledgement_without_reason_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sql = "-- baselinr-lint: ignore pg-index-not-concurrent\n" + INDEX
    r = run(capsys, "migrate", "lint", "-o", "json", write(tmp_path, "v12_index.sql", sql))
    assert r.code == 1
    rules = sorted(f["rule"] for f in json.loads(r.out)["findings"])
    assert rules == ["ack-without-reason", "pg-index-not-concurrent"]


def test_python_migration_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    module = (
        '"""v12: drop the old column.\n\nbaselinr-lint: ignore drop-column nothing has read it since v9\n"""\n'
        "from baselinr.storage.migrations.manager import Migration\n\n"
        'migration = Migration(version=12, description="drop", up_sql="ALTER TABLE baselinr_runs DROP COLUMN status")\n'
    )
    r = run(capsys, "migrate", "lint", "-o", "json", write(tmp_path, "v12_drop.py", module))
    data = json.loads(r.out)
    assert r.code == 0
    assert [(f["rule"], f["acknowledged"], f["version"]) for f in data["findings"]] == [("drop-column", True, 12)]


@pytest.mark.parametrize(
    "args",
    [
        ["migrate", "lint"],  # neither --config nor FILES (and no BASELINR_CONFIG)
        ["migrate", "lint", "--config", "c.yml", "x.sql"],
        ["migrate", "lint", "--target", "3", "x.sql"],
        ["migrate", "lint", "--output", "yaml", "x.sql"],
    ],
)
def test_usage_errors_exit_2(args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BASELINR_CONFIG", raising=False)
    r = run(capsys, *args)
    assert r.code == 2, (r.out, r.err)
    assert "Traceback" not in r.err


def test_unreadable_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    r = run(capsys, "migrate", "lint", str(tmp_path / "missing.sql"))
    assert r.code == 2
    assert "Cannot read" in r.err


def test_markdown_keeps_backticks_in_a_code_span(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sql = "ALTER TABLE `baselinr_runs` DROP COLUMN `status`;\n"
    r = run(capsys, "migrate", "lint", "-o", "markdown", "--dialect", "mysql", write(tmp_path, "v12.sql", sql))
    row = next(line for line in r.out.splitlines() if "drop-column" in line)
    assert "| 1: `` ALTER TABLE `baselinr_runs` DROP COLUMN `status` `` |" in row


def test_plain_markers_on_an_ascii_stream(tmp_path: Path) -> None:
    r = run_process("migrate", "lint", write(tmp_path, "v12_index.sql", INDEX), env={"PYTHONIOENCODING": "ascii"})
    assert r.code == 1
    assert "[ERROR] v12 statement 1 [pg-index-not-concurrent] (error)" in r.out


def test_python_step_is_reported_as_not_linted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    module = (
        "from baselinr.storage.migrations.manager import Migration\n\n"
        "def backfill(conn):\n    pass\n\n"
        'migration = Migration(version=12, description="backfill", up_sql="ALTER TABLE baselinr_runs ADD COLUMN n INTEGER",\n'
        "                      up_python=backfill)\n"
    )
    r = run(capsys, "migrate", "lint", "-o", "json", write(tmp_path, "v12_backfill.py", module))
    assert r.code == 0
    (finding,) = json.loads(r.out)["findings"]
    assert (finding["rule"], finding["severity"], finding["statement_index"]) == ("python-step", "warning", 0)
    assert finding["statement"] == "backfill(connection)"


def test_files_win_over_baselinr_config_from_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BASELINR_CONFIG", str(tmp_path / "absent.yml"))
    r = run(capsys, "migrate", "lint", write(tmp_path, "v12_add.sql", ADD))
    assert r.code == 0, r.err
