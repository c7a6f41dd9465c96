"""Bad input through the real CLI: one clear line, the documented exit code,
no traceback, no password in any output."""

from __future__ import annotations

from pathlib import Path

import pytest

from baselinr.storage.schema_version import CURRENT_SCHEMA_VERSION
from tests.conftest import Database
from tests.support.cli import run_process
from tests.support.servers import Server, free_port


def assert_clean(err: str) -> None:
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize(
    ("content", "code", "message"),
    [
        (None, 2, "Config file not found"),
        ("storage: [", 2, "invalid YAML"),
        ("storage:\n  connection:\n    type: oracle\n    database: x\n", 2, "type 'oracle' is unknown"),
        ("storage:\n  connection:\n    type: postgres\n", 2, "database is required"),
    ],
)
def test_config_errors(tmp_path: Path, content: str | None, code: int, message: str) -> None:
    cfg = tmp_path / "config.yml"
    if content is not None:
        cfg.write_text(content)
    for command in ("status", "apply", "validate"):
        r = run_process("migrate", command, "--config", str(cfg))
        assert r.code == code, (command, r.err)
        assert message in r.err
        assert_clean(r.err)


def test_no_config_at_all() -> None:
    r = run_process("migrate", "status")
    assert r.code == 2 and "--config" in r.err
    assert_clean(r.err)


def test_unreachable_server_exits_3_without_password(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yml"
    cfg.write_text(
        "storage:\n  connection:\n    type: postgres\n    host: 127.0.0.1\n"
        f"    port: {free_port()}\n    database: x\n    username: u\n    password: 'Sup3r$ecret'\n"
    )
    for command in ("status", "apply", "validate"):
        r = run_process("migrate", command, "--config", str(cfg))
        assert r.code == 3, r.err
        assert "Cannot connect to postgres://u@127.0.0.1" in r.err
        assert "Sup3r$ecret" not in r.out + r.err
        assert_clean(r.err)


def test_wrong_password_is_not_echoed(mysql_server: Server, pg_server: Server, tmp_path: Path) -> None:
    for server in (mysql_server, pg_server):
        cfg = tmp_path / f"{server.kind}.yml"
        cfg.write_text(
            f"storage:\n  connection:\n    type: {server.kind}\n    host: 127.0.0.1\n    port: {server.port}\n"
            f"    database: x\n    username: {server.user}\n    password: 'Wr0ng-Pa55word'\n"
        )
        r = run_process("migrate", "apply", "--config", str(cfg), "--output", "json")
        assert r.code == 3
        assert "Wr0ng-Pa55word" not in r.out + r.err
        assert '"exit_code": 3' in r.out


def test_plain_markers_when_the_terminal_cannot_encode_emoji(database: Database) -> None:
    env = {"PYTHONIOENCODING": "ascii"}
    r = run_process("migrate", "apply", "--config", str(database.config), env=env)
    assert r.code == 0, r.err
    assert f"[OK] Successfully migrated to version {CURRENT_SCHEMA_VERSION}" in r.out
    r = run_process("migrate", "validate", "--config", str(database.config), env=env)
    assert "Valid: [OK] Yes" in r.out
    r = run_process("migrate", "apply", "--config", str(database.config), "--dry-run", env=env)
    assert r.out.startswith("[DRY RUN] DRY RUN MODE - No changes will be applied")
