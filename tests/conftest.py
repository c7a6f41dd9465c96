"""Fixtures shared by every tier: real database servers and config files.

``database`` is parametrised over SQLite, PostgreSQL and MariaDB and yields a
fresh, empty database with a ``config.yml`` pointing at it. The servers are
started once per session; a server that cannot start fails the run (never a
skip), since CI installs them.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.jaeger import Jaeger, start_jaeger
from tests.support.pg16 import start_postgres16
from tests.support.pooler import Pooler, Poolers
from tests.support.s3server import S3Server, start_s3
from tests.support.servers import Server, start_mariadb, start_postgres

DIALECTS = ("sqlite", "postgres", "mysql")


@pytest.fixture(scope="session")
def server_root() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="baselinr-servers-") as d:
        path = Path(d)
        path.chmod(0o755)
        yield path


@pytest.fixture(scope="session")
def pg_server(server_root: Path) -> Iterator[Server]:
    server = start_postgres(server_root)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def poolers(pg_server: Server, server_root: Path) -> Iterator[Poolers]:
    """Real PgBouncers in front of ``pg_server``, one per pooling mode, each started on first use."""
    started = Poolers(pg_server, server_root)
    yield started
    started.stop()


@pytest.fixture(scope="session", params=("transaction", "session"))
def pgbouncer(request: pytest.FixtureRequest, poolers: Poolers) -> Pooler:
    """PgBouncer in transaction pooling, and in session pooling."""
    return poolers.get(request.param)


@pytest.fixture(scope="session")
def pg16_server(server_root: Path) -> Iterator[Server]:
    """A second PostgreSQL major: 16, from the pgserver wheel's binaries."""
    server = start_postgres16(server_root)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def jaeger(server_root: Path) -> Iterator[Jaeger]:
    """Jaeger's all-in-one on loopback: the OTLP receiver traces go to, and its query API."""
    with start_jaeger(server_root / "jaeger") as receiver:
        yield receiver


@pytest.fixture(scope="session")
def mysql_server(server_root: Path) -> Iterator[Server]:
    server = start_mariadb(server_root)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_server(server_root: Path) -> Iterator[S3Server]:
    """A real S3 server (SeaweedFS's S3 gateway) on loopback, built once per machine."""
    server = start_s3(server_root)
    yield server
    server.stop()


@dataclass
class Database:
    """A fresh database and a config file that points at it."""

    dialect: str
    config: Path
    connection: dict[str, Any]
    server: Server | None = None

    def write_config(self, **storage: Any) -> Path:
        data = {"environment": "test", "storage": {"connection": self.connection, **storage}}
        self.config.write_text(yaml.safe_dump(data))
        return self.config


def make_database(dialect: str, tmp_path: Path, request: pytest.FixtureRequest) -> Database:
    if dialect == "sqlite":
        conn: dict[str, Any] = {"type": "sqlite", "database": "baselinr", "filepath": str(tmp_path / "baselinr.db")}
        server = None
    else:
        server = request.getfixturevalue("pg_server" if dialect == "postgres" else "mysql_server")
        conn = server.connection(server.create_database())
    db = Database(dialect, tmp_path / "config.yml", conn, server)
    db.write_config()
    return db


@pytest.fixture(params=DIALECTS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    return make_database(request.param, tmp_path, request)
