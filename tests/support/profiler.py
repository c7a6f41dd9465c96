"""The released Baselinr profiler (PyPI ``baselinr``), driven as its users drive it.

``tests/profiler/setup.sh`` installs it into a virtualenv of its own (it is
also a package named ``baselinr``, so it can never share an environment with
ours). A ``World`` is what a data team has: a source database with a few
tables, a storage database, and one ``config.yml`` that both the profiler and
our tool read (ours reads only ``storage.connection``). The profiler runs as
a subprocess of that virtualenv, with ``PYTHONPATH`` removed so that it
imports its own package; ``client_api.py`` exercises its storage classes.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.cli import Result, run_process
from tests.support.servers import Server

PROFILER_VERSION = os.environ.get("BASELINR_PROFILER_VERSION", "0.9.0")
VENV = Path(
    os.environ.get("BASELINR_PROFILER_VENV") or Path.home() / ".cache" / "baselinr-test" / f"profiler-{PROFILER_VERSION}"
)
CLIENT_API = Path(__file__).resolve().parents[1] / "profiler" / "client_api.py"
# The profiler builds its connection URLs without escaping, so its user gets a plain password.
USER, PASSWORD = "profiler", "profiler-pw-42"

CUSTOMERS = [
    (i, f"name {i}", None if i % 5 == 0 else f"user{i}@example.com", 20 + i % 30, f"2024-01-{1 + i % 28:02d}") for i in range(50)
]
ORDERS = [(i, i % 10, round(i * 1.5, 2), None if i % 3 == 0 else "open", f"2024-02-{1 + i % 28:02d}") for i in range(60)]
CONTRACT = """\
kind: DataContract
apiVersion: v3.1.0
id: customers-contract
dataset:
  - name: customers
    columns:
      - name: id
        logicalType: integer
        isPrimaryKey: true
      - name: email
        logicalType: string
        isNullable: false
"""


def require_profiler() -> Path:
    """The virtualenv's ``baselinr`` script; a missing install fails the run (CI installs it)."""
    script = VENV / "bin" / "baselinr"
    if not (VENV / ".complete").exists() or not script.exists():
        pytest.fail(f"The released profiler is not installed in {VENV}: run tests/profiler/setup.sh (scripts/test does)")
    return script


def add_profiler_user(server: Server) -> None:
    """A login for both tools on ``server``, with a password the profiler's URLs survive."""
    if server.kind == "postgres":
        server.admin(
            f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{USER}') THEN "
            f"CREATE ROLE {USER} LOGIN SUPERUSER PASSWORD '{PASSWORD}'; END IF; END $$"
        )
    else:
        for host in ("127.0.0.1", "localhost"):
            server.admin(f"CREATE USER IF NOT EXISTS '{USER}'@'{host}' IDENTIFIED BY '{PASSWORD}'")
            server.admin(f"GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'{host}'")


@dataclass
class World:
    """A source database, a storage database and the ``config.yml`` both tools read."""

    dialect: str
    root: Path
    server: Server | None = None

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "contracts").mkdir(exist_ok=True)
        (self.root / "contracts" / "customers.odcs.yaml").write_text(CONTRACT)
        if self.server is None:
            self.source_db, self.storage_db = str(self.root / "source.db"), str(self.root / "storage.db")
        else:
            self.source_db, self.storage_db = self.server.create_database("src"), self.server.create_database("store")
        self._load_source()
        self.config = self.root / "config.yml"
        self.config.write_text(yaml.safe_dump(self._config()))

    # --- the databases ------------------------------------------------------

    def _connection(self, database: str) -> dict[str, Any]:
        if self.server is None:
            return {"type": "sqlite", "database": Path(database).stem, "filepath": database}
        return {
            "type": self.server.kind,
            "host": self.server.host,
            "port": self.server.port,
            "database": database,
            "username": USER,
            "password": PASSWORD,
        }

    def _config(self) -> dict[str, Any]:
        if self.server is None:
            # No database in the pattern: incremental profiling keys table state with NULLs.
            tables: list[dict[str, Any]] = [{"table": "customers"}, {"table": "orders"}]
        else:
            # Its own PostgreSQL and MySQL tables refuse NULL keys, so the pattern names the database.
            extra = {"schema": "public" if self.server.kind == "postgres" else self.source_db}
            tables = [{"table": t, "database": self.source_db, **extra} for t in ("customers", "orders")]
        return {
            "environment": "development",
            "source": self._connection(self.source_db),
            "storage": {"connection": self._connection(self.storage_db), "create_tables": True},
            "profiling": {"tables": tables},
            # Incremental profiling writes table state with NULL keys on SQLite, the case that needs
            # v11. On PostgreSQL and MySQL its second run fails on its own database too ("can't compare
            # offset-naive and offset-aware datetimes"), which would leave drift nothing to compare;
            # there client_api.py exercises table state through its TableStateStore instead.
            "incremental": {"enabled": self.server is None},
            "validation": {"enabled": True},
            "contracts": {"directory": str(self.root / "contracts")},
        }

    def _dbapi(self, database: str) -> Any:
        if self.server is None:
            return sqlite3.connect(database)
        if self.server.kind == "postgres":
            import psycopg2

            conn = psycopg2.connect(
                host=self.server.host, port=self.server.port, user=USER, password=PASSWORD, dbname=database
            )
        else:
            import pymysql

            conn = pymysql.connect(host=self.server.host, port=self.server.port, user=USER, password=PASSWORD, database=database)
        return conn

    def source_sql(self, *statements: str, rows: tuple[str, list[tuple[Any, ...]]] | None = None) -> None:
        conn = self._dbapi(self.source_db)
        try:
            cur = conn.cursor()
            for stmt in statements:
                cur.execute(stmt)
            if rows is not None:
                sql, values = rows
                cur.executemany(sql.replace("?", "?" if self.server is None else "%s"), values)
            conn.commit()
        finally:
            conn.close()

    def _load_source(self) -> None:
        self.source_sql(
            "CREATE TABLE customers (id INTEGER PRIMARY KEY, name VARCHAR(100), email VARCHAR(200), age INTEGER, signup DATE)",
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, amount FLOAT, status VARCHAR(20), "
            "ordered_at DATE)",
            rows=("INSERT INTO customers VALUES (?, ?, ?, ?, ?)", CUSTOMERS),
        )
        self.source_sql(rows=("INSERT INTO orders VALUES (?, ?, ?, ?, ?)", ORDERS))

    def change_source(self) -> None:
        """New rows with more NULLs and older customers: the next profile sees drift."""
        self._changes = getattr(self, "_changes", 0) + 1
        start = 50 + 40 * (self._changes - 1)
        more = [(i, f"name {i}", None, 70 + i % 5, "2024-03-01") for i in range(start, start + 40)]
        insert = ("INSERT INTO customers VALUES (?, ?, ?, ?, ?)", more)
        self.source_sql("UPDATE customers SET age = age + 25 WHERE id < 25", rows=insert)

    # --- the two tools ------------------------------------------------------

    def profiler(self, *args: str, timeout: float = 300) -> Result:
        """``baselinr ARGS --config config.yml`` of the released profiler."""
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        proc = subprocess.run(
            [str(require_profiler()), *args, "--config", str(self.config)],
            capture_output=True,
            text=True,
            env=env,
            cwd=self.root,
            timeout=timeout,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def profiler_python(self, *args: str, timeout: float = 300) -> Result:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        proc = subprocess.run(
            [str(VENV / "bin" / "python"), "-I", *args], capture_output=True, text=True, env=env, cwd=self.root, timeout=timeout
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def client(self, action: str) -> dict[str, Any]:
        """The profiler's storage classes (``client_api.py write|read``): what each call returned or raised."""
        r = self.profiler_python(str(CLIENT_API), str(self.config), action)
        assert r.code == 0, f"client_api.py {action} failed ({r.code}): {r.err[-2000:]}"
        result: dict[str, Any] = json.loads(r.out)
        return result

    def ours(self, *args: str) -> Result:
        """Our ``baselinr migrate ...`` as a real process, on the same config.yml."""
        return run_process("migrate", *args, "--config", str(self.config), timeout=300)

    # --- what the storage database holds -------------------------------------

    def storage_url(self) -> str:
        if self.server is None:
            return f"sqlite:///{self.storage_db}"
        driver = "postgresql+psycopg2" if self.server.kind == "postgres" else "mysql+pymysql"
        return f"{driver}://{USER}:{PASSWORD}@{self.server.host}:{self.server.port}/{self.storage_db}"

    def snapshot(self) -> dict[str, list[dict[str, str]]]:
        """Every row of every Baselinr table but the version table, by column name, order-free."""
        from sqlalchemy import create_engine, inspect

        engine = create_engine(self.storage_url())
        try:
            with engine.connect() as conn:
                tables = [t for t in inspect(conn).get_table_names() if t.lower().startswith("baselinr_")]
                out: dict[str, list[dict[str, str]]] = {}
                for t in sorted(tables):
                    if t.lower() == "baselinr_schema_version":
                        continue
                    result = conn.exec_driver_sql(f"SELECT * FROM {t}")
                    cols = list(result.keys())
                    rows = [{c.lower(): repr(v) for c, v in zip(cols, r, strict=True)} for r in result.fetchall()]
                    out[t.lower()] = sorted(rows, key=lambda d: json.dumps(d, sort_keys=True))
                return out
        finally:
            engine.dispose()

    def version_rows(self) -> list[tuple[Any, ...]]:
        from sqlalchemy import create_engine

        engine = create_engine(self.storage_url())
        try:
            with engine.connect() as conn:
                return [tuple(r) for r in conn.exec_driver_sql("SELECT version FROM baselinr_schema_version ORDER BY version")]
        finally:
            engine.dispose()


def _ids_filled(before: list[dict[str, str]], after: list[dict[str, str]]) -> bool:
    """The same rows, except that ids the profiler left NULL now have values.

    Its SQLite ``id SERIAL PRIMARY KEY`` is no rowid alias, so its ids are all
    NULL; a table that v11 rebuilds (RCA results) gets real ones."""
    if len(before) != len(after):
        return False
    strip = [{k: v for k, v in r.items() if k != "id"} for r in before]
    rest = [{k: v for k, v in r.items() if k != "id"} for r in after]
    key = lambda d: json.dumps(d, sort_keys=True)  # noqa: E731
    return all(r.get("id") == "None" for r in before) and sorted(strip, key=key) == sorted(rest, key=key)


def kept(before: dict[str, list[dict[str, str]]], after: dict[str, list[dict[str, str]]]) -> list[str]:
    """Rows that changed or went missing between two snapshots (new columns and new tables aside)."""
    changed = []
    for table, rows in before.items():
        cols = set(rows[0]) if rows else set()
        projected = [{c: r.get(c) for c in cols} for r in after.get(table, [])]
        projected.sort(key=lambda d: json.dumps(d, sort_keys=True))
        if projected != rows and not _ids_filled(rows, projected):
            lost = [r for r in rows if r not in projected][:2]
            changed.append(f"{table}: {len(rows)} rows before, {len(projected)} after; e.g. {lost}")
    return changed
