"""Bad input keeps the README's promises: a documented exit code, one line
(one JSON document under ``--output json``), no traceback, no password, at once.

Users with fewer rights are real PostgreSQL and MariaDB users created here.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import yaml

from baselinr.config import load_config
from baselinr.errors import UsageError
from baselinr.storage.migrations.manager import MigrationManager
from tests.conftest import Database, make_database
from tests.support.cli import Result, run, run_process
from tests.support.servers import Server

SECRET = "Bad-Input-Pa55word"


def one_line(r: Result) -> None:
    assert "Traceback" not in r.out + r.err, r.err
    assert len(r.err.strip().splitlines()) == 1, r.err
    assert SECRET not in r.out + r.err


def config(tmp_path: Path, connection: dict[str, Any], name: str = "config.yml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"storage": {"connection": connection}}))
    return str(path)


def sqlite_config(tmp_path: Path) -> str:
    return config(tmp_path, {"type": "sqlite", "filepath": str(tmp_path / "b.db")})


# --- arguments -----------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("migrate", "apply", "--target", "100000000000000000000"),
        ("migrate", "apply", "--dry-run", "--target", "100000000000000000000"),
        ("migrate", "rollback", "--target", "100000000000000000000"),
        ("migrate", "rollback", "--dry-run", "--target", "-100000000000000000000"),
    ],
)
def test_huge_target_is_exit_2_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...]) -> None:
    r = run(capsys, *args, "--config", sqlite_config(tmp_path))
    assert r.code == 2, r.err
    assert "--target" in r.err and len(r.err) < 300
    one_line(r)


def test_target_far_above_the_code_is_one_short_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = sqlite_config(tmp_path)
    for args in (("--target", "10000000"), ("--target", "10000000", "--dry-run")):
        r = run(capsys, "migrate", "apply", "--config", cfg, *args)
        assert r.code == 2, r.err
        assert "Missing migrations for versions: {" in r.err and "..10000000}" in r.err
        assert len(r.err) < 400
        one_line(r)
    mgr = MigrationManager.from_settings(load_config(cfg))
    with pytest.raises(UsageError, match=r"\.\.100000000000000000000\}"):
        mgr.plan(10**20)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e309", "-1", "abc"])
def test_lock_timeout_must_be_finite(tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str) -> None:
    cfg = sqlite_config(tmp_path)
    for command in (("migrate", "apply"), ("migrate", "rollback", "--target", "0"), ("migrate", "repair")):
        r = run(capsys, *command, "--config", cfg, "--lock-timeout", value)
        assert r.code == 2, (command, r.err)
        assert "--lock-timeout" in r.err
        one_line(r)


def test_usage_errors_are_one_json_document(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = sqlite_config(tmp_path)
    for args in (
        ("migrate", "apply", "--config", cfg, "--output", "json", "--target", "abc"),
        ("migrate", "apply", "--output", "json", "--config", cfg, "--no-such-option"),
        ("migrate", "status", "-o", "json", "--config", cfg, "extra"),
        ("migrate", "nope", "-o", "json"),
        ("migrate", "apply", "--output=json", "--config", cfg, "--lock-timeout", "nan"),
    ):
        r = run(capsys, *args)
        assert r.code == 2, (args, r.err)
        doc = json.loads(r.out)  # the whole of stdout is one document
        assert doc["ok"] is False and doc["exit_code"] == 2 and doc["error"]
        one_line(r)
    r = run(capsys, "migrate", "apply", "--config", cfg, "--target", "abc")
    assert r.code == 2 and r.out == ""
    assert "Invalid value for '--target'" in r.err and "--help" in r.err
    one_line(r)


def test_debug_adds_a_traceback_and_keeps_the_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "missing.yml")
    plain = run(capsys, "migrate", "status", "--config", missing)
    debug = run(capsys, "--debug", "migrate", "status", "--config", missing)
    assert plain.code == debug.code == 2
    assert "Traceback" in debug.err and "Config file not found" in debug.err.strip().splitlines()[-1]
    usage = run(capsys, "--debug", "migrate", "apply", "--config", missing, "--lock-timeout", "nan")
    assert usage.code == 2
    pg = {"type": "postgres", "host": "127.0.0.1", "port": 9, "database": "x", "password": SECRET}
    unreachable = run_process("--debug", "migrate", "status", "--config", config(tmp_path, pg))
    assert unreachable.code == 3 and "Traceback" in unreachable.err
    assert SECRET not in unreachable.err.strip().splitlines()[-1]


def test_apply_target_0_on_a_fresh_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = sqlite_config(tmp_path)
    r = run(capsys, "migrate", "apply", "--config", cfg, "--target", "0")
    assert r.code == 0, r.err
    assert "None" not in r.out
    assert "Already at version 0" in r.out
    r = run(capsys, "migrate", "apply", "--config", cfg, "--target", "0", "--dry-run")
    assert r.code == 0 and "None" not in r.out


# --- config files ----------------------------------------------------------------

BOMB = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
storage: {connection: {type: sqlite, filepath: x.db}}
"""


def test_yaml_alias_bomb_is_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "bomb.yml"
    cfg.write_text(BOMB)
    r = run_process("migrate", "status", "--config", str(cfg), timeout=60)
    assert r.code == 2, r.err
    assert "expands to more than" in r.err
    one_line(r)
    cfg.write_text("a: &a [*a]\nstorage: {connection: {type: sqlite, filepath: x.db}}\n")
    r = run_process("migrate", "status", "--config", str(cfg), timeout=60)
    assert r.code == 2 and "refers to itself" in r.err
    # A few aliases, as real configs use them, are fine.
    cfg.write_text("c: &c {type: sqlite, filepath: " + str(tmp_path / "ok.db") + "}\nstorage: {connection: *c}\n")
    assert run_process("migrate", "status", "--config", str(cfg)).code == 1  # not initialized


@pytest.mark.parametrize("port", ["true", "5432.9", "0", "65536", "'54x'", "[1]", "1e3"])
def test_port_must_be_a_whole_number(tmp_path: Path, capsys: pytest.CaptureFixture[str], port: str) -> None:
    cfg = tmp_path / "c.yml"
    cfg.write_text(f"storage:\n  connection:\n    type: postgres\n    database: x\n    password: {SECRET}\n    port: {port}\n")
    r = run(capsys, "migrate", "status", "--config", str(cfg))
    assert r.code == 2, r.err
    assert "storage.connection.port" in r.err
    one_line(r)


def test_extra_params_mistakes_are_exit_2(database: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = dict(database.connection)
    cases: list[Any] = [
        {"connect_args": {"no_such_driver_option": 1}},
        {"no_such_engine_option": 1},
        {"connect_args": ["x"]},
        ["x"],
        {"connect_args": {"bad key": 1}},
    ]
    for i, extra in enumerate(cases):
        cfg = config(tmp_path, {**base, "extra_params": extra}, f"c{i}.yml")
        for command in ("status", "apply", "validate"):
            r = run(capsys, "migrate", command, "--config", cfg)
            assert r.code == 2, (extra, command, r.err)
            assert "extra_params" in r.err
            assert "Traceback" not in r.err and len(r.err.strip().splitlines()) == 1


# --- what the database says ----------------------------------------------------------


def test_garbage_sqlite_file_is_not_a_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "b.db"
    db.write_bytes(b"this is not a database, just text\n" * 200)
    cfg = sqlite_config(tmp_path)
    for args in (("status",), ("apply",), ("apply", "--dry-run"), ("validate",), ("repair", "--dry-run")):
        r = run(capsys, "migrate", *args, "--config", cfg)
        assert r.code == 3, (args, r.out, r.err)
        assert "not a database" in r.err
        assert "not initialized" not in r.out + r.err and "Would apply" not in r.out
        one_line(r)
    assert db.read_bytes().startswith(b"this is not a database")


def pg_exec(server: Server, database: str, *sql: str) -> None:
    conn = psycopg2.connect(host=server.host, port=server.port, user="postgres", password=server.password, dbname=database)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for s in sql:
                cur.execute(s)
    finally:
        conn.close()


def limited_user(db: Database, grants: list[str]) -> dict[str, Any]:
    """A real user of ``db``'s server with only ``grants`` (``{db}``/``{user}`` filled in)."""
    server = db.server
    assert server is not None
    user = f"lim_{uuid.uuid4().hex[:8]}"
    name = db.connection["database"]
    if db.dialect == "postgres":
        server.admin(f"CREATE ROLE {user} LOGIN PASSWORD '{SECRET}'")
        pg_exec(server, name, *(g.format(db=name, user=user) for g in grants))
    else:
        for host in ("127.0.0.1", "localhost"):
            server.admin(f"CREATE USER '{user}'@'{host}' IDENTIFIED BY '{SECRET}'")
            for g in grants:
                server.admin(g.format(db=name, user=f"'{user}'@'{host}'"))
    return {**db.connection, "username": user, "password": SECRET}


@pytest.mark.parametrize("dialect", ["postgres", "mysql"])
def test_no_select_on_the_version_table_is_a_permission_error(
    dialect: str, tmp_path: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    db = make_database(dialect, tmp_path, request)
    assert run(capsys, "migrate", "apply", "--config", str(db.config)).code == 0
    grants = (
        ["GRANT CONNECT ON DATABASE {db} TO {user}", "GRANT SELECT ON baselinr_runs TO {user}"]
        if dialect == "postgres"
        else ["GRANT SELECT ON {db}.baselinr_runs TO {user}"]
    )
    cfg = config(tmp_path, limited_user(db, grants), "limited.yml")
    for args in (("status",), ("apply",), ("apply", "--dry-run"), ("validate",)):
        r = run(capsys, "migrate", *args, "--config", cfg)
        assert r.code == 3, (args, r.out, r.err)
        assert "Cannot read baselinr_schema_version" in r.err
        assert "denied" in r.err
        assert "not initialized" not in r.out + r.err and "Would apply" not in r.out
        one_line(r)


@pytest.mark.parametrize("dialect", ["postgres", "mysql"])
def test_no_ddl_rights_is_exit_4(
    dialect: str, tmp_path: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    db = make_database(dialect, tmp_path, request)
    grants = (
        # PostgreSQL 15+: only the owner may create in schema public.
        ["GRANT CONNECT ON DATABASE {db} TO {user}", "REVOKE CREATE ON SCHEMA public FROM PUBLIC"]
        if dialect == "postgres"
        else ["GRANT SELECT, INSERT, UPDATE, DELETE ON {db}.* TO {user}"]
    )
    cfg = config(tmp_path, limited_user(db, grants), "limited.yml")
    r = run(capsys, "migrate", "apply", "--config", cfg)
    assert r.code == 4, r.err
    assert "Cannot write baselinr_schema_version" in r.err and "denied" in r.err
    one_line(r)


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
def test_postgres_schema_is_one_identifier(database: Database, tmp_path: Path) -> None:
    sneaky = "public -c statement_timeout=1"
    cfg = config(tmp_path, {**database.connection, "schema": sneaky}, "schema.yml")
    mgr = MigrationManager.from_settings(load_config(cfg))
    with mgr.engine.connect() as conn:
        assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "0"
        assert conn.exec_driver_sql("SHOW search_path").scalar() == f'"{sneaky}"'
    mgr.close()
    plain = config(tmp_path, {**database.connection, "schema": "public"}, "plain.yml")
    mgr = MigrationManager.from_settings(load_config(plain))
    with mgr.engine.connect() as conn:
        assert conn.exec_driver_sql("SHOW search_path").scalar() == "public"
    mgr.close()
