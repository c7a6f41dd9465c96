"""Config compatibility with Baselinr's own config.yml, on real servers:
``BASELINR_*__*`` overrides keep a numeric-looking password a string,
``${VAR:default}`` expands, URL-special passwords work, ``extra_params`` reach
the driver, and PostgreSQL goes through psycopg2 explicitly."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from baselinr.config import load_config
from baselinr.storage.migrations.manager import MigrationManager
from baselinr.storage.schema_version import CURRENT_SCHEMA_VERSION as LATEST
from tests.support.cli import run_process
from tests.support.servers import Server

NUMERIC_PASSWORD = "00123"


def _user_with_numeric_password(server: Server) -> tuple[str, str]:
    """A database owned by a new user whose password looks like a number."""
    user = f"u_{uuid.uuid4().hex[:8]}"
    database = server.create_database()
    if server.kind == "postgres":
        server.admin(f"CREATE ROLE {user} LOGIN PASSWORD '{NUMERIC_PASSWORD}'")
        server.admin(f"ALTER DATABASE {database} OWNER TO {user}")
    else:
        server.admin(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{NUMERIC_PASSWORD}'")
        server.admin(f"GRANT ALL ON {database}.* TO '{user}'@'%'")
    return user, database


@pytest.mark.parametrize("kind", ["postgres", "mysql"])
def test_env_override_keeps_a_numeric_password_and_defaults_expand(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    server: Server = request.getfixturevalue("pg_server" if kind == "postgres" else "mysql_server")
    user, database = _user_with_numeric_password(server)
    cfg = tmp_path / "config.yml"
    cfg.write_text(
        "environment: production\nsource:\n  type: snowflake\n  account: x\n  database: y\n"
        f"storage:\n  connection:\n    type: {kind}\n    host: ${{BASELINR_TEST_HOST:{server.host}}}\n"
        f"    port: {server.port}\n    database: {database}\n    username: {user}\n    password: placeholder\n"
        "  runs_table: ${BASELINR_TEST_RUNS:profiler_runs}\n"
    )
    env = {"BASELINR_STORAGE__CONNECTION__PASSWORD": NUMERIC_PASSWORD}
    r = run_process("migrate", "apply", "--config", str(cfg), env=env)
    assert r.code == 0, r.err
    assert f"Successfully migrated to version {LATEST}" in r.out
    assert NUMERIC_PASSWORD not in r.out + r.err
    r = run_process("migrate", "validate", "--config", str(cfg), env=env)
    assert r.code == 0, r.out
    # Without the override the placeholder is used, and refused: the override really was applied.
    r = run_process("migrate", "status", "--config", str(cfg))
    assert r.code == 3 and "placeholder" not in r.out + r.err
    settings = load_config(cfg, env=env)
    assert settings.storage.connection.password == NUMERIC_PASSWORD and settings.storage.runs_table == "profiler_runs"


def test_postgres_driver_is_explicit_url_escaped_and_extra_params_reach_it(pg_server: Server, tmp_path: Path) -> None:
    database = pg_server.create_database()
    cfg = tmp_path / "config.yml"
    conn = pg_server.connection(database)
    cfg.write_text(
        "storage:\n  connection:\n"
        + "".join(f"    {k}: {v!r}\n" for k, v in conn.items())
        + "    extra_params:\n      connect_args:\n        application_name: from-extra-params\n"
    )
    settings = load_config(cfg, env={})
    url = settings.storage.connection.url()
    assert url.drivername == "postgresql+psycopg2"
    # The test server's password holds a space, '@', ':', '/' and '%': escaped in the URL, intact after parsing.
    assert set("@:/%") <= set(pg_server.password)
    assert make_url(url.render_as_string(hide_password=False)).password == pg_server.password
    mgr = MigrationManager.from_settings(settings)
    try:
        with mgr.engine.connect() as c:
            assert c.execute(text("SELECT current_setting('application_name')")).scalar() == "from-extra-params"
        assert mgr.apply().to_version == LATEST and mgr.validate().valid
    finally:
        mgr.close()
