"""Faults from the worst day in production, on real processes and servers.

* A MySQL port that answers but is not MySQL (a silent listener, an HTTP
  server on 127.0.0.1): every command ends in bounded time with exit 3 (and
  a silent PostgreSQL port too).
* The PostgreSQL server dies in the middle of ``apply`` (``pg_ctl stop -m
  immediate`` on a server of this test's own, not the shared session one):
  exit 3 naming the lost connection, never "Unexpected error" from the lock
  release on the dead connection.
"""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
import yaml

from tests.support.cli import run, run_process
from tests.support.packages import sql_migration, write_package
from tests.support.servers import Server, _as_user, _pg_bin, start_postgres

SECRET = "Fault-Pa55word-7"


def assert_one_line(err: str) -> None:
    assert "Traceback" not in err and "Unexpected error" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert SECRET not in err


@pytest.fixture
def silent_port() -> Iterator[int]:
    """Accepts TCP connections and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def loop() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                accepted.append(conn)
            except OSError:
                continue

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    yield int(server.getsockname()[1])
    stop.set()
    t.join()
    for c in accepted:
        c.close()
    server.close()


@pytest.fixture
def http_port() -> Iterator[int]:
    """A real HTTP server: it waits for a request, as a MySQL client waits for a greeting."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield int(httpd.server_address[1])
    httpd.shutdown()
    httpd.server_close()


def mysql_config(tmp_path: Path, port: int, **connect_args: object) -> Path:
    conn: dict[str, object] = {
        "type": "mysql",
        "host": "127.0.0.1",
        "port": port,
        "database": "x",
        "username": "u",
        "password": SECRET,
    }
    if connect_args:
        conn["extra_params"] = {"connect_args": connect_args}
    path = tmp_path / f"mysql-{port}.yml"
    path.write_text(yaml.safe_dump({"storage": {"connection": conn}}))
    return path


def test_mysql_silent_listener_exits_3_with_the_default_bound(tmp_path: Path, silent_port: int) -> None:
    cfg = mysql_config(tmp_path, silent_port)
    # The default bound is 10 s; run_process fails the test if it is not kept (120 s).
    r = run_process("migrate", "status", "--config", str(cfg), timeout=60)
    assert r.code == 3, r.err
    assert "Cannot connect to mysql://u@127.0.0.1" in r.err
    assert_one_line(r.err)


@pytest.mark.parametrize("command", ["status", "apply", "validate"])
def test_mysql_http_server_exits_3(tmp_path: Path, http_port: int, silent_port: int, command: str) -> None:
    for port in (http_port, silent_port):
        cfg = mysql_config(tmp_path, port, connect_timeout=1)
        r = run_process("migrate", command, "--config", str(cfg), timeout=30)
        assert r.code == 3, (port, r.err)
        assert "Cannot connect to mysql://u@127.0.0.1" in r.err
        assert_one_line(r.err)


def test_postgres_silent_listener_exits_3(tmp_path: Path, silent_port: int) -> None:
    """The same fault on PostgreSQL: libpq's connect_timeout already covers the startup packet."""
    conn = {
        "type": "postgres",
        "host": "127.0.0.1",
        "port": silent_port,
        "database": "x",
        "password": SECRET,
        "extra_params": {"connect_args": {"connect_timeout": 1}},
    }
    cfg = tmp_path / "pg-silent.yml"
    cfg.write_text(yaml.safe_dump({"storage": {"connection": conn}}))
    for command in ("status", "validate"):
        r = run_process("migrate", command, "--config", str(cfg), timeout=30)
        assert r.code == 3, r.err
        assert "timeout expired" in r.err
        assert_one_line(r.err)


@pytest.fixture
def own_postgres(server_root: Path) -> Iterator[Server]:
    server = start_postgres(server_root)  # a directory the postgres user can reach
    yield server
    server.stop()


def stop_immediately(server: Server) -> None:
    data = next(server.root.glob("data"))
    subprocess.run(
        [*_as_user("postgres"), _pg_bin("pg_ctl"), "stop", "-D", str(data), "-m", "immediate"],
        check=True,
        capture_output=True,
    )


def test_postgres_dies_mid_apply(own_postgres: Server, tmp_path: Path) -> None:
    server = own_postgres
    conn = server.connection(server.create_database())
    cfg = tmp_path / "pg.yml"
    cfg.write_text(yaml.safe_dump({"storage": {"connection": conn}}))
    pkg_root = tmp_path / "pkgs"
    # v2 sleeps inside its transaction: the server is stopped while it runs.
    pkg = write_package(pkg_root, {2: sql_migration(2, "CREATE TABLE baselinr_f (id INTEGER); SELECT pg_sleep(30);")})
    env = {"PYTHONPATH": f"{pkg_root}:{Path(__file__).resolve().parents[2]}"}
    full_env = {**os.environ, **env}
    proc = subprocess.Popen(
        [sys.executable, "-m", "baselinr", "migrate", "apply", "--config", str(cfg), "--migrations", pkg],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full_env,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            admin = psycopg2.connect(
                host=server.host, port=server.port, user="postgres", password=server.password, dbname="postgres"
            )
            try:
                with admin.cursor() as cur:
                    cur.execute("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(30)%'")
                    sleeping = cur.fetchone()[0]
            finally:
                admin.close()
            if sleeping:
                break
            time.sleep(0.1)
        else:
            pytest.fail("the migration never reached its sleep")
        stop_immediately(server)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 3, err
    assert "Lost the connection to postgres://postgres@127.0.0.1" in err
    assert "during migration v2 at statement 2 of 2" in err
    assert_one_line(err)
    assert server.password not in out + err


@pytest.mark.parametrize("dialect", ["postgres", "mysql"])
def test_refused_credentials_are_authentication_failed(
    dialect: str, request: pytest.FixtureRequest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A wrong password is its own error type (the operator does not retry it: accounts lock), still exit 3."""
    server: Server = request.getfixturevalue("pg_server" if dialect == "postgres" else "mysql_server")
    conn = {**server.connection(server.create_database()), "password": "not-the-password-Zq9"}
    cfg = tmp_path / "config.yml"
    cfg.write_text(yaml.safe_dump({"storage": {"connection": conn}}))
    for command in ("status", "apply"):
        r = run(capsys, "migrate", command, "--config", str(cfg), "--output", "json")
        doc = json.loads(r.out)
        assert r.code == 3 and doc["error_type"] == "AuthenticationFailed", r.out
        assert "refused the credentials" in doc["error"] and "not-the-password-Zq9" not in r.out + r.err
