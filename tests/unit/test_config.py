"""Config loading: Baselinr's format, env expansion and overrides, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from baselinr.config import load_config, settings_from_dict
from baselinr.errors import ConfigError

REAL_CONFIG = """
environment: production
source:
  type: snowflake
  account: xy12345
  database: ANALYTICS
profiling:
  tables:
    - table: orders
      schema: public
drift_detection:
  strategy: absolute_threshold
hooks:
  enabled: true
storage:
  connection:
    type: postgres
    host: ${PGHOST:db.internal}
    port: 5432
    database: baselinr
    username: baselinr
    password: ${DB_PASSWORD}
    schema: analytics
  results_table: baselinr_results
  runs_table: baselinr_runs
  create_tables: true
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "config.yml"
    p.write_text(text)
    return p


def test_real_baselinr_config_is_accepted(tmp_path: Path) -> None:
    s = load_config(write(tmp_path, REAL_CONFIG), env={"DB_PASSWORD": "s3cr@t:/%"})
    c = s.storage.connection
    assert (c.type, c.host, c.port, c.database, c.schema) == ("postgres", "db.internal", 5432, "baselinr", "analytics")
    url = c.url()
    assert url.drivername == "postgresql+psycopg2"
    # Credentials survive the URL round trip (escaped, not mangled).
    back = make_url(url.render_as_string(hide_password=False))
    assert back.password == "s3cr@t:/%" and back.host == "db.internal"
    assert "s3cr@t" not in repr(s) and "s3cr@t" not in c.describe()


def test_env_overrides_keep_strings_strings() -> None:
    raw = {"storage": {"connection": {"type": "mysql", "database": "b", "password": "x"}}}
    env = {
        "BASELINR_STORAGE__CONNECTION__PASSWORD": "0123",
        "BASELINR_STORAGE__CONNECTION__PORT": "3307",
        "BASELINR_STORAGE__CONNECTION__HOST": "true",
        "BASELINR_STORAGE__RUNS_TABLE": "my_runs",
    }
    s = settings_from_dict(raw, env=env)
    assert s.storage.connection.password == "0123"
    assert s.storage.connection.port == 3307
    assert s.storage.connection.host == "true"
    assert s.storage.runs_table == "my_runs"


def test_expansion_defaults_and_empty_default() -> None:
    raw = {"storage": {"connection": {"type": "postgres", "database": "${DB:baselinr}", "host": "${H:}", "username": "u"}}}
    s = settings_from_dict(raw, env={})
    assert s.storage.connection.database == "baselinr"
    assert s.storage.connection.host == ""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("storage: [unclosed", "invalid YAML at line 1"),
        ("environment: x\n", "missing section 'storage'"),
        ("storage:\n  connection:\n    type: oracle\n    database: x\n", "type 'oracle' is unknown"),
        ("storage:\n  connection:\n    type: bigquery\n    database: x\n", "not a supported storage database"),
        ("storage:\n  connection:\n    type: postgres\n", "storage.connection.database is required"),
        ("storage:\n  connection:\n    database: x\n", "storage.connection.type is required"),
        ("storage:\n  connection:\n    type: postgres\n    database: x\n    port: abc\n", "port must be a number"),
        ("storage:\n  connection:\n    type: sqlite\n", "filepath (or database) is required"),
        ("storage:\n  connection:\n    type: postgres\n    database: x\n    password: ${NOPE}\n", "${NOPE} but that"),
        ("- a\n- b\n", "top level must be a mapping"),
    ],
)
def test_bad_config_is_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), env={})
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert info.value.exit_code == 2


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Config file not found"):
        load_config(tmp_path / "nope.yml")


def test_password_never_in_errors(tmp_path: Path) -> None:
    text = "storage:\n  connection:\n    type: postgres\n    database: x\n    password: hunter2secret\n    port: 99999\n"
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), env={})
    assert "hunter2secret" not in str(info.value)


def test_sqlite_and_mysql_urls() -> None:
    s = settings_from_dict({"storage": {"connection": {"type": "sqlite", "database": "x", "filepath": "/tmp/b.db"}}}, env={})
    assert str(s.storage.connection.url()) == "sqlite:////tmp/b.db"
    m = settings_from_dict(
        {"storage": {"connection": {"type": "mariadb", "database": "b", "username": "u", "password": "p@ss/w:rd%"}}}, env={}
    )
    url = m.storage.connection.url()
    assert url.drivername == "mysql+pymysql" and url.port == 3306
    assert make_url(url.render_as_string(hide_password=False)).password == "p@ss/w:rd%"
