"""PostgreSQL backups on the bare driver: no SQLAlchemy imported, and the same backup as its path.

``backup create`` and ``backup restore`` on PostgreSQL run on psycopg2
alone (``Database.connect(bare=True)``) and describe every table with one
catalog query (``storage.reflection.pg_describe``) instead of SQLAlchemy's inspector.
These tests show, on a real server, that the catalog gives exactly what the
inspector gives (names, type spellings, nullability, key order) for every
Baselinr table and for a table of many other types; that a backup and a
restore import no SQLAlchemy; that a config with an engine option, which only
SQLAlchemy can apply, takes the SQLAlchemy path and makes the same manifest
and the same restored rows; and that the files are standard gzip whichever
deflate implementation wrote them.
"""

from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path
from typing import Any

import pytest

from baselinr.backup import deflate, tables
from baselinr.backup.streams import HashingGzipReader, HashingGzipWriter
from baselinr.storage import reflection
from tests.conftest import Database, make_database
from tests.integration.test_backup import _engine, assert_same, ours, populate, snapshot
from tests.integration.test_bare_apply import _imported
from tests.support.cli import run_process

# format_type spellings of types outside the model, each with a column of its own.
MANY_TYPES = (
    "a_varchar VARCHAR(12) NOT NULL, a_plain_varchar VARCHAR, a_char CHAR(3), a_text TEXT, a_small SMALLINT, "
    "a_int INTEGER, a_big BIGINT NOT NULL, a_num NUMERIC(10, 2), a_plain_num NUMERIC, a_real REAL, "
    "a_double DOUBLE PRECISION, a_bool BOOLEAN, a_date DATE, a_ts TIMESTAMP, a_ts3 TIMESTAMP(3), "
    "a_tstz TIMESTAMPTZ, a_tstz0 TIMESTAMP(0) WITH TIME ZONE, a_time TIME, a_timetz TIME(2) WITH TIME ZONE, "
    "a_interval INTERVAL, a_json JSON, a_jsonb JSONB, a_uuid UUID, a_bytea BYTEA, a_ints INTEGER[], "
    '"MixedCase" TEXT, PRIMARY KEY (a_big, a_varchar)'
)


def _postgres(tmp_path: Path, request: pytest.FixtureRequest, name: str) -> Database:
    where = tmp_path / name
    where.mkdir()
    return make_database("postgres", where, request)


def test_the_catalog_describes_every_table_as_sqlalchemys_inspector_does(
    tmp_path: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    db = _postgres(tmp_path, request, "source")
    populate(db, capsys, results=5)
    engine = _engine(db)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"CREATE TABLE baselinr_many_types ({MANY_TYPES})")
        with engine.connect() as conn:
            names = tables.table_names(conn)
            assert sorted(reflection.pg_table_names(conn)) == sorted(names)
            assert "baselinr_many_types" in names and len(names) >= 15
            by_inspector = tables.describe(conn, names)
            by_catalog = tables.entries(reflection.pg_describe(conn, names))
            many = by_inspector["baselinr_many_types"][0]
            assert reflection.pg_column_names(conn, "baselinr_many_types") == [c.name for c in many]
    finally:
        engine.dispose()
    assert by_catalog == by_inspector
    columns, pk = by_catalog["baselinr_many_types"]
    assert pk == ["a_big", "a_varchar"]  # key order, not table order
    spelled = {c.name: c.type for c in columns}
    assert spelled["a_ts3"] == "TIMESTAMP(3) WITHOUT TIME ZONE" and spelled["a_varchar"] == "VARCHAR(12)"


def _backup(db: Database, dest: Path) -> tuple[dict[str, Any], set[str]]:
    r = run_process(
        "backup", "create", "--config", str(db.config), "--dest", str(dest), "--output", "json",
        "--exclude-table", "baselinr_not_ours",  # made by populate(): no migration makes it
        env={"PYTHONPROFILEIMPORTTIME": "1"},
    )  # fmt: skip
    assert r.code == 0, r.err[-3000:]
    return json.loads(r.out), _imported(r.err)


def _restore(path: str, db: Database) -> set[str]:
    env = {"PYTHONPROFILEIMPORTTIME": "1"}
    r = run_process("backup", "restore", path, "--config", str(db.config), "--output", "json", env=env)
    assert r.code == 0, r.err[-3000:]
    return _imported(r.err)


def _manifest(path: str) -> list[tuple[Any, ...]]:
    m = json.loads((Path(path) / "manifest.json").read_text())
    return [(t["name"], t["columns"], t["primary_key"], t["rows"], t["content_sha256"]) for t in m["tables"]]


def test_backup_and_restore_run_without_sqlalchemy_and_match_the_sqlalchemy_path(
    tmp_path: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _postgres(tmp_path, request, "source")
    populate(source, capsys, results=300)
    before = ours(snapshot(source))

    made, imported = _backup(source, tmp_path / "bare-backups")
    assert "sqlalchemy" not in imported and "psycopg2" in imported
    bare_target = _postgres(tmp_path, request, "bare-target")
    assert "sqlalchemy" not in _restore(made["path"], bare_target)
    assert_same(snapshot(bare_target), before)

    # An engine option only SQLAlchemy can apply: the same backup and restore through SQLAlchemy.
    source.connection = {**source.connection, "extra_params": {"pool_pre_ping": True}}
    source.write_config()
    via_sqlalchemy, imported = _backup(source, tmp_path / "sqla-backups")
    assert "sqlalchemy" in imported
    assert _manifest(via_sqlalchemy["path"]) == _manifest(made["path"])
    sqla_target = _postgres(tmp_path, request, "sqla-target")
    sqla_target.connection = {**sqla_target.connection, "extra_params": {"pool_pre_ping": True}}
    sqla_target.write_config()
    assert "sqlalchemy" in _restore(made["path"], sqla_target)
    assert_same(snapshot(sqla_target), before)


def test_table_files_are_standard_gzip_and_zlib_written_files_still_read(tmp_path: Path) -> None:
    content = b"".join(b"%d\trow %d\t\\N\n" % (i, i * 7) for i in range(200_000))
    written = tmp_path / "ours.gz"
    with open(written, "wb") as f:
        writer = HashingGzipWriter(f)
        writer.write(content)
        summary = writer.close()
    assert gzip.decompress(written.read_bytes()) == content  # any gzip reader reads what we write
    assert summary.rows == 200_000

    # A file written by zlib itself (what backups made before ISA-L are) reads back with its checksums.
    legacy = tmp_path / "legacy.gz"
    packer = zlib.compressobj(1, zlib.DEFLATED, 31)
    legacy.write_bytes(packer.compress(content) + packer.flush())
    for path in (written, legacy):
        with open(path, "rb") as f:
            reader = HashingGzipReader(f)
            assert reader.read() == content
            assert reader.summary().content_sha256 == summary.content_sha256

    # Corrupt data is a zlib.error whichever implementation decompressed it.
    broken = bytearray(legacy.read_bytes())
    broken[len(broken) // 2 : len(broken) // 2 + 64] = bytes(64)
    legacy.write_bytes(bytes(broken))
    with open(legacy, "rb") as f, pytest.raises(zlib.error):
        HashingGzipReader(f).read()
    assert deflate.IMPLEMENTATION in ("isa-l", "zlib")


def test_the_bare_snapshot_is_one_repeatable_read_read_only_transaction(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Every table of a backup is read in one REPEATABLE READ, READ ONLY transaction on the bare driver too."""
    from baselinr.backup.codecs import codec_for
    from baselinr.config import settings_from_dict
    from baselinr.storage.database import Database as StorageDatabase

    db = _postgres(tmp_path, request, "snap")
    storage = StorageDatabase.from_settings(settings_from_dict({"storage": {"connection": db.connection}}, env={}))
    assert storage.bare_available
    with storage.connect(bare=True) as raw:
        conn = codec_for("postgres").snapshot(raw)
        started = conn.exec_driver_sql("SELECT now()").scalar()
        assert conn.exec_driver_sql("SHOW transaction_isolation").scalar() == "repeatable read"
        assert conn.exec_driver_sql("SHOW transaction_read_only").scalar() == "on"
        # One transaction: now() is the transaction's start, the same for every statement in it.
        assert conn.exec_driver_sql("SELECT now()").scalar() == started
        assert conn.in_transaction()
