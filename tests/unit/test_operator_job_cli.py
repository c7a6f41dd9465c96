"""``baselinr job ...``, the engine side of the operator's Jobs: JSON results in the termination file,
exit codes, a result that always fits Kubernetes' 4096 bytes, and no password in it (SQLite and an
unreachable PostgreSQL; the real runs against PostgreSQL are in the e2e tier)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from baselinr.cli.job import fit
from tests.support.cli import run
from tests.support.servers import free_port


def sqlite_config(tmp_path: Path) -> Path:
    config = tmp_path / "config.yml"
    conn = {"type": "sqlite", "database": "b", "filepath": str(tmp_path / "b.db")}
    config.write_text(yaml.safe_dump({"storage": {"connection": conn}}))
    return config


def test_backup_migrate_validate_write_results(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config, result = sqlite_config(tmp_path), tmp_path / "termination-log"
    common = ["--config", str(config), "--result-file", str(result)]
    r = run(capsys, "job", "backup", *common, "--dest", str(tmp_path / "backups"))
    data = json.loads(result.read_text())
    assert r.code == 0 and data["skipped"] is True and data["ok"] is True  # nothing to back up yet
    assert json.loads(r.out) == data
    r = run(capsys, "job", "migrate", *common, "--target", "1")
    data = json.loads(result.read_text())
    assert r.code == 0, r.err
    assert (data["from_version"], data["current_version"], data["applied"], data["valid"]) == (None, 1, [1], True)
    r = run(capsys, "job", "backup", *common, "--dest", str(tmp_path / "backups"))
    data = json.loads(result.read_text())
    assert r.code == 0 and data["skipped"] is False and data["current_version"] == 1
    assert (Path(data["location"]) / "manifest.json").is_file()
    r = run(capsys, "job", "validate", *common)
    assert r.code == 0 and json.loads(result.read_text())["valid"] is True


def test_refusals_have_engine_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config, result = sqlite_config(tmp_path), tmp_path / "termination-log"
    common = ["--config", str(config), "--result-file", str(result)]
    r = run(capsys, "job", "migrate", *common, "--target", "999")
    data = json.loads(result.read_text())
    assert r.code == 2 and data["exit_code"] == 2 and "beyond the latest version" in data["error"]
    assert "Traceback" not in r.err
    r = run(capsys, "job", "validate", "--config", str(tmp_path / "missing.yml"), "--result-file", str(result))
    assert r.code == 2 and json.loads(result.read_text())["error_type"] == "ConfigError"


def test_a_config_missing_from_its_secret_names_the_secret_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BASELINR_CONFIG_SOURCE", "key 'nope.yml' of Secret 'db'")
    result = tmp_path / "termination-log"
    r = run(capsys, "job", "migrate", "--config", str(tmp_path / "config.yml"), "--target", "1", "--result-file", str(result))
    data = json.loads(result.read_text())
    assert r.code == 2 and data["error_type"] == "ConfigError"
    assert "key 'nope.yml' of Secret 'db'" in data["error"] and "baselinr.io/retry" in data["error"]
    assert "Pass --config" not in data["error"]  # not the CLI's advice: the Job's command line is not the user's


def test_unreachable_database_is_exit_3_without_the_password(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    password = "s3cr:t/p@ss"
    conn = {"type": "postgres", "host": "127.0.0.1", "port": free_port(), "database": "x", "username": "u", "password": password}
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump({"storage": {"connection": conn}}))
    result = tmp_path / "termination-log"
    r = run(capsys, "job", "migrate", "--config", str(config), "--target", "1", "--result-file", str(result))
    text = result.read_text()
    assert r.code == 3 and json.loads(text)["exit_code"] == 3
    for out in (text, r.out, r.err):
        assert password not in out


def test_results_always_fit_a_termination_message() -> None:
    data = {"command": "validate", "ok": False, "exit_code": 1, "errors": [f"error {i}: " + "x" * 500 for i in range(50)],
            "warnings": ["w" * 3000], "error": "e" * 9000, "current_version": 7}  # fmt: skip
    text = fit(data)
    assert len(text.encode()) <= 4000
    short = json.loads(text)
    assert short["current_version"] == 7 and short["exit_code"] == 1 and short["errors"][-1].startswith("... and")
    small = {"command": "migrate", "ok": True}
    assert json.loads(fit(small)) == small
