"""The engine's traces, read back from a real receiver (Jaeger's all-in-one, ``tests/support/jaeger.py``).

Each test runs the CLI as a real process against the PostgreSQL test server
with ``OTEL_EXPORTER_OTLP_ENDPOINT`` pointing at Jaeger's OTLP/HTTP receiver
and a service name of its own, then reads the trace back through Jaeger's
query API: the command's span under the caller's ``TRACEPARENT``, the lock,
one span per migration with its attributes, one per statement under it, a
lock wait as an event, a backup's span per table, and never a password, a
row's value or (unless ``BASELINR_TRACE_SQL=1``) the SQL text.
"""

from __future__ import annotations

import json
import secrets
import uuid
from pathlib import Path

import psycopg2
import pytest

from tests.conftest import Database, make_database
from tests.support.cli import ROOT, run_process
from tests.support.jaeger import Jaeger, Span
from tests.support.servers import PG_PASSWORD, free_port

pytestmark = pytest.mark.postgres

ROW_VALUE = "row-value-7f3a9c"  # a value only the database holds: never in a trace


@pytest.fixture()
def db(tmp_path: Path, request: pytest.FixtureRequest) -> Database:
    return make_database("postgres", tmp_path, request)


def service() -> str:
    return f"baselinr-test-{uuid.uuid4().hex[:10]}"


def sql(db: Database, statement: str) -> None:
    c = db.connection
    conn = psycopg2.connect(host=c["host"], port=c["port"], dbname=c["database"], user=c["username"], password=c["password"])
    try:
        with conn, conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()


def chain(root: Path, *migrations: str) -> tuple[str, dict[str, str]]:
    """A versions package of plain SQL migrations (one string each); its name and the PYTHONPATH for it."""
    name = f"trace_chain_{uuid.uuid4().hex[:8]}"
    pkg = root / name
    pkg.mkdir(parents=True)
    for v, up in enumerate(migrations, 1):
        (pkg / f"v{v}.py").write_text(
            "from baselinr.storage.migrations.manager import Migration\n\n"
            f"migration = Migration(version={v}, description='step {v}', up_sql={up!r})\n"
        )
    imports = "".join(f"from .v{v} import migration as m{v}\n" for v in range(1, len(migrations) + 1))
    listed = ", ".join(f"m{v}" for v in range(1, len(migrations) + 1))
    (pkg / "__init__.py").write_text(f"{imports}\nALL_MIGRATIONS = [{listed}]\nCURRENT_SCHEMA_VERSION = {len(migrations)}\n")
    return name, {"PYTHONPATH": f"{ROOT}:{root}"}


def command_spans(jaeger: Jaeger, name: str, command: str) -> list[Span]:
    """The spans of ``name``'s traces, once the command's own span (which ends last) has arrived."""
    for _ in range(3):
        spans = jaeger.spans(name)
        if any(s.name == command for s in spans):
            return spans
    raise AssertionError(f"no span {command!r} of {name} arrived: {sorted({s.name for s in spans})}")


def no_secret_in(jaeger: Jaeger, name: str, *secret_values: str) -> None:
    everything = json.dumps(jaeger.raw_traces(name))
    for value in secret_values:
        assert value not in everything


def test_apply_is_one_trace_under_the_callers_traceparent(db: Database, jaeger: Jaeger) -> None:
    name = service()
    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    env = jaeger.env(name, TRACEPARENT=f"00-{trace_id}-{parent_id}-01")
    r = run_process("migrate", "apply", "--target", "3", "--config", str(db.config), env=env)
    assert r.code == 0, r.out + r.err
    spans = command_spans(jaeger, name, "baselinr migrate apply")

    assert {s.trace_id for s in spans} == {trace_id}
    (command,) = [s for s in spans if s.name == "baselinr migrate apply"]
    assert command.parent_id == parent_id  # a child of the caller's span (the operator's, in a Job)
    assert command.tags["baselinr.exit_code"] == 0 and command.service == name
    (lock,) = [s for s in spans if s.name == "lock"]
    assert lock.parent_id == command.span_id and lock.tags["baselinr.dialect"] == "postgres"
    migrations = sorted((s for s in spans if s.name.startswith("migration ")), key=lambda s: s.start_us)
    assert [s.name for s in migrations] == ["migration v1", "migration v2", "migration v3"]
    for number, m in enumerate(migrations, 1):
        assert m.parent_id == command.span_id
        assert m.tags["baselinr.version"] == number
        assert m.tags["baselinr.outcome"] == "applied" and m.tags["baselinr.retries"] == 0
        assert m.tags["baselinr.direction"] == "up" and m.tags["db.system.name"] == "postgresql"
        assert m.tags["baselinr.description"]
        statements = [s for s in spans if s.parent_id == m.span_id]
        assert statements and {s.name for s in statements} == {"statement"}
        assert len(statements) == m.tags["baselinr.statements"]
        assert all(s.tags["db.operation.name"] in ("CREATE", "ALTER", "INSERT", "UPDATE", "DROP") for s in statements)
        assert not any("db.query.text" in s.tags for s in statements)  # not asked for
        assert all(m.start_us <= s.start_us and s.start_us + s.duration_us <= m.start_us + m.duration_us for s in statements)
    assert all(s.service == name for s in spans)
    no_secret_in(jaeger, name, PG_PASSWORD, PG_PASSWORD.replace(" ", "%20"), "p@ss")


def test_a_failed_migration_names_its_error_type_never_the_row(db: Database, jaeger: Jaeger, tmp_path: Path) -> None:
    package, path = chain(tmp_path / "pkgs", "CREATE TABLE traced (x TEXT UNIQUE)", "INSERT INTO traced (x) SELECT x FROM traced")
    r = run_process("migrate", "apply", "--target", "1", "--migrations", package, "--config", str(db.config), env=path)
    assert r.code == 0, r.out + r.err
    sql(db, f"INSERT INTO traced (x) VALUES ('{ROW_VALUE}')")
    name = service()
    env = {**path, **jaeger.env(name, BASELINR_TRACE_SQL="1")}
    r = run_process("migrate", "apply", "--migrations", package, "--config", str(db.config), env=env)
    assert r.code == 4, r.out + r.err  # the driver's error holds the row (DETAIL: Key (x)=(...)): the trace must not
    spans = command_spans(jaeger, name, "baselinr migrate apply")

    (command,) = [s for s in spans if s.name == "baselinr migrate apply"]
    assert command.tags["baselinr.exit_code"] == 4 and command.tags["otel.status_code"] == "ERROR"
    (m,) = [s for s in spans if s.name == "migration v2"]
    assert m.tags["baselinr.outcome"] == "failed" and m.tags["otel.status_code"] == "ERROR"
    (statement,) = [s for s in spans if s.parent_id == m.span_id]
    assert statement.tags["db.query.text"] == "INSERT INTO traced (x) SELECT x FROM traced"  # asked for: the text as written
    assert statement.tags["error.type"] == "UniqueViolation" and statement.tags["otel.status_code"] == "ERROR"
    no_secret_in(jaeger, name, ROW_VALUE, PG_PASSWORD, "p@ss")


def test_a_lock_wait_is_an_event_of_its_migration(db: Database, jaeger: Jaeger, tmp_path: Path) -> None:
    package, path = chain(tmp_path / "pkgs", "CREATE TABLE waited (x INTEGER)", "ALTER TABLE waited ADD COLUMN y INTEGER")
    r = run_process("migrate", "apply", "--target", "1", "--migrations", package, "--config", str(db.config), env=path)
    assert r.code == 0, r.out + r.err
    c = db.connection
    reader = psycopg2.connect(host=c["host"], port=c["port"], dbname=c["database"], user=c["username"], password=c["password"])
    try:
        with reader.cursor() as cur:  # a long reader: ALTER TABLE waits behind its lock
            cur.execute("SELECT count(*) FROM waited")
        name = service()
        env = {**path, **jaeger.env(name)}
        args = ("--ddl-lock-timeout", "0.2", "--ddl-lock-tries", "2")
        r = run_process("migrate", "apply", "--migrations", package, *args, "--config", str(db.config), env=env)
    finally:
        reader.close()
    assert r.code == 4, r.out + r.err  # gave up after two tries
    spans = command_spans(jaeger, name, "baselinr migrate apply")
    (m,) = [s for s in spans if s.name == "migration v2"]
    waits = [e for e in m.events if e.get("event") == "lock wait timeout"]
    assert [e["baselinr.attempt"] for e in waits] == [1, 2]
    assert [e["baselinr.last"] for e in waits] == [False, True]
    assert m.tags["baselinr.outcome"] == "failed"
    tries = [s for s in spans if s.parent_id == m.span_id]
    assert len(tries) == 2 and all(s.tags["otel.status_code"] == "ERROR" for s in tries)  # the ALTER, twice


def test_a_backup_is_a_span_per_table_with_counts_not_values(db: Database, jaeger: Jaeger, tmp_path: Path) -> None:
    r = run_process("migrate", "apply", "--config", str(db.config))
    assert r.code == 0, r.out + r.err
    sql(db, f"INSERT INTO baselinr_runs (run_id, dataset_name, profiled_at) VALUES ('{ROW_VALUE}', 'orders', now())")
    name = service()
    dest = tmp_path / "backups"
    r = run_process("backup", "create", "--config", str(db.config), "--dest", str(dest), env=jaeger.env(name))
    assert r.code == 0, r.out + r.err
    spans = command_spans(jaeger, name, "baselinr backup create")
    (command,) = [s for s in spans if s.name == "baselinr backup create"]
    tables = {s.tags["baselinr.table"]: s for s in spans if s.name == "backup table"}
    assert "baselinr_runs" in tables and "baselinr_results" in tables
    assert all(s.parent_id == command.span_id for s in tables.values())
    assert tables["baselinr_runs"].tags["baselinr.rows"] == 1 and tables["baselinr_results"].tags["baselinr.rows"] == 0
    assert tables["baselinr_runs"].tags["baselinr.bytes"] > 0
    no_secret_in(jaeger, name, ROW_VALUE, PG_PASSWORD, "p@ss")


def test_a_receiver_that_is_down_is_one_warning_and_changes_no_result(db: Database) -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{free_port()}"}  # nothing listens there
    r = run_process("migrate", "apply", "--target", "2", "--config", str(db.config), env=env)
    assert r.code == 0 and "Successfully migrated to version 2" in r.out, r.out + r.err
    (line,) = r.err.splitlines()
    assert "Tracing: spans could not be exported" in line and "Traceback" not in r.err
    r = run_process("migrate", "status", "--output", "json", "--config", str(db.config), env=env)
    assert r.code == 1 and json.loads(r.out)["database_version"] == 2  # stdout stays the command's own
    assert len(r.err.splitlines()) == 1
