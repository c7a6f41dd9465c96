"""Every migration of the chain, rendered for Snowflake: VARIANT for JSON, TIMESTAMP_TZ, no index DDL.

Walks ``ALL_MIGRATIONS`` whatever its length, so it keeps covering the chain
as versions are added. No database needed: this checks the SQL text the
engine would send.
"""

from __future__ import annotations

import re

import pytest

from baselinr.config import settings_from_dict
from baselinr.errors import ConfigError
from baselinr.storage.dialects import SnowflakeDialect, dialect_for
from baselinr.storage.migrations.chain import load_chain
from baselinr.storage.model import CreateTable, RebuildTable
from baselinr.storage.snowflake import TAKE_SQL, create_table_sql

SF = SnowflakeDialect()
CHAIN = load_chain()


@pytest.mark.parametrize("version", sorted(CHAIN.migrations))
def test_every_migration_renders_for_snowflake(version: int) -> None:
    m = CHAIN.get(version)
    up = m.up_statements(SF)
    down = m.down_statements(SF)
    # v11 only rebuilds tables on the dialects that need it (its docstring says why not Snowflake).
    elsewhere = all(isinstance(op, RebuildTable) and op.dialects and "snowflake" not in op.dialects for op in m.operations)
    assert up or (m.operations and elsewhere), f"v{version} renders nothing for Snowflake"
    for stmt in up + down:
        assert not re.search(r"\b(CREATE|DROP)\s+(UNIQUE\s+)?INDEX\b", stmt, re.I), stmt
        assert not re.search(r"\bAUTO_INCREMENT\b|\bSERIAL\b|\bJSONB?\b|\bDATETIME\b", stmt, re.I), stmt
        # Every timestamp is zoned; TIMESTAMP alone would be TIMESTAMP_NTZ by default.
        assert not re.search(r"\bTIMESTAMP\b(?!_)", stmt.replace("CURRENT_TIMESTAMP", "")), stmt
    text = "\n".join(up)
    for op in m.operations:
        if isinstance(op, CreateTable):
            for col in op.table.columns:
                expected = {"json": "VARIANT", "timestamp": "TIMESTAMP_TZ", "text": "VARCHAR"}.get(col.type.family)
                if expected:
                    assert re.search(rf"\b{col.name} {expected}\b", text), f"v{version} {op.table.name}.{col.name}"
                if col.autoincrement:
                    assert f"{col.name} INTEGER AUTOINCREMENT PRIMARY KEY" in text


def test_chain_declares_indexes_that_snowflake_skips() -> None:
    # The check above must be able to fail: the same chain renders indexes elsewhere.
    pg = dialect_for("postgres")
    assert any("CREATE INDEX" in s for m in CHAIN.migrations.values() for s in m.up_statements(pg))


def test_lock_sql_is_a_conditional_update_on_one_row() -> None:
    assert "CREATE TABLE IF NOT EXISTS _baselinr_migration_lock" in create_table_sql("x")
    assert " AS SELECT 'x'" in create_table_sql("x")
    assert "WHERE lock_name = :name AND (owner IS NULL OR owner = :owner OR expires_at < CURRENT_TIMESTAMP())" in TAKE_SQL


def _sf(**conn: object) -> dict[str, object]:
    base = {"type": "snowflake", "account": "xy12345", "username": "u", "database": "ANALYTICS", "warehouse": "WH"}
    return {"storage": {"connection": {**base, **conn}}}


def test_url_and_private_key(tmp_path: object) -> None:
    from pathlib import Path

    key = Path(str(tmp_path)) / "rsa_key.p8"
    key.write_text("-----BEGIN PRIVATE KEY-----\n")
    s = settings_from_dict(_sf(private_key_path=str(key), private_key_passphrase="k3y pass", role="R"), env={})
    c = s.storage.connection
    url = c.url()
    assert (url.host, url.database) == ("xy12345", "ANALYTICS/PUBLIC")
    assert url.query["private_key_file"] == str(key) and url.query["authenticator"] == "SNOWFLAKE_JWT"
    assert url.query["warehouse"] == "WH" and url.query["role"] == "R"
    assert "k3y pass" not in str(url) and "k3y pass" not in repr(c)
    assert c.connect_args() == {"private_key_file_pwd": "k3y pass"}
    assert "k3y pass" in c.secrets


@pytest.mark.parametrize(
    ("conn", "message"),
    [
        ({"password": "p", "warehouse": None}, "warehouse is required for snowflake"),
        ({}, "snowflake needs a password or a private_key_path"),
        ({"private_key_path": "/nonexistent/key.p8"}, "private_key_path: no such file: /nonexistent/key.p8"),
        ({"password": "p", "account": None}, "account is required for snowflake"),
    ],
)
def test_config_errors(conn: dict[str, object], message: str) -> None:
    raw = _sf(**conn)
    raw["storage"]["connection"] = {k: v for k, v in raw["storage"]["connection"].items() if v is not None}  # type: ignore[index]
    with pytest.raises(ConfigError, match=re.escape(message)):
        settings_from_dict(raw, env={})
