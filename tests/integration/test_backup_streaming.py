"""Restore's one pass over the data, on real SQLite, PostgreSQL and MariaDB.

Before it touches the target, a restore checks each file's stored bytes
(size, SHA-256); where the restore is one transaction it decompresses each
file only once, while loading, and commits nothing unless every table's
rows and content checksum match. These tests give it a backup whose files
match a resealed manifest byte for byte but whose content does not (only a
writer bug could make one): the restore must say the backup is damaged and
leave the target exactly as it was. Then PostgreSQL's load, which drops
and rebuilds indexes, primary keys and unique constraints around COPY,
must leave them as the migrations made them, and a duplicate key must
roll the restore back. Tables of several megabytes make the data cross
many blocks.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text

from baselinr.backup.manifest import DIGEST_FIELD, digest
from tests.conftest import Database
from tests.integration.test_backup import _engine, assert_same, backup, fresh, ours, populate, snapshot
from tests.support.cli import run

BULK = 3000  # results of 1,000 random hex characters each: about 3 MB of content, many blocks


def _bulk(db: Database) -> None:
    engine = _engine(db)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO baselinr_results (run_id, dataset_name, column_name, metric_name, metric_value, "
                    "profiled_at) VALUES ('run-1', 'orders', 'c', 'm', :v, :p)"
                ),
                [{"v": os.urandom(500).hex(), "p": dt.datetime(2024, 1, 1, 0, 0, i % 60)} for i in range(BULK)],
            )
    finally:
        engine.dispose()


def _rewrite(backup_dir: Path, table: str, edit: Callable[[bytes], bytes], *, recount: bool) -> None:
    """Replace ``table``'s file by ``edit(content)``, gzipped, and reseal the manifest.

    The stored size and SHA-256 always match the new file; the rows and the
    content checksum only if ``recount``.
    """
    path = backup_dir / "manifest.json"
    m = json.loads(path.read_text())
    entry = next(t for t in m["tables"] if t["name"] == table)
    content = edit(gzip.decompress((backup_dir / entry["file"]).read_bytes()))
    stored = gzip.compress(content, compresslevel=1)
    (backup_dir / entry["file"]).write_bytes(stored)
    entry["bytes"], entry["sha256"] = len(stored), hashlib.sha256(stored).hexdigest()
    if recount:
        entry["rows"], entry["content_bytes"] = content.count(b"\n"), len(content)
        entry["content_sha256"] = hashlib.sha256(content).hexdigest()
    m[DIGEST_FIELD] = digest(m)
    path.write_text(json.dumps(m, indent=2))


def test_a_large_round_trip_crosses_blocks(
    database: Database, tmp_path: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    populate(database, capsys, results=200)
    _bulk(database)
    before = snapshot(database)
    made = backup(capsys, database, tmp_path / "backups")
    results = next(t for t in made["tables"] if t["name"] == "baselinr_results")
    assert results["rows"] >= BULK and results["bytes"] > 1 << 20
    target = fresh(database, tmp_path, request)
    r = run(capsys, "backup", "restore", made["path"], "--config", str(target.config))
    assert r.code == 0, r.err
    assert_same(snapshot(target), ours(before))


def test_content_that_differs_from_its_manifest_is_damage_and_changes_nothing(
    database: Database, tmp_path: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    populate(database, capsys, results=200)
    _bulk(database)
    made = backup(capsys, database, tmp_path / "backups")
    path = Path(made["path"])

    # One value changes and the row count does not: only the content checksum can tell.
    def edit(content: bytes) -> bytes:
        at = content.rindex(b"orders")
        return content[:at] + b"ordert" + content[at + 6 :]

    _rewrite(path, "baselinr_results", edit, recount=False)

    r = run(capsys, "backup", "verify", str(path), "--output", "json")
    assert r.code == 1
    bad = [t for t in json.loads(r.out)["tables"] if not t["ok"]]
    assert [(t["name"], t["problem"]) for t in bad] == [("baselinr_results", "content checksum differs from the manifest")]

    target = fresh(database, tmp_path, request)
    r = run(capsys, "backup", "restore", str(path), "--config", str(target.config))
    assert r.code == 1, r.out + r.err
    assert len(r.err.strip().splitlines()) == 1 and "is damaged" in r.err and "content checksum differs" in r.err
    assert "Nothing was changed" in r.err
    assert snapshot(target) == {}

    before = snapshot(database)
    for replace in ((), ("--replace",)):
        r = run(capsys, "backup", "restore", str(path), "--config", str(database.config), *replace)
        assert r.code == 1, r.out + r.err
        assert len(r.err.strip().splitlines()) == 1 and "is damaged" in r.err, r.err
        assert snapshot(database) == before


def _keys(db: Database) -> list[tuple[str, str, str]]:
    engine = _engine(db)
    try:
        with engine.connect() as conn:
            constraints = conn.exec_driver_sql(
                "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE connamespace = current_schema()::regnamespace AND contype IN ('p', 'u', 'f')"
            ).fetchall()
            indexes = conn.exec_driver_sql(
                "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"
            ).fetchall()
            # Baselinr's tables: the migration journal (_baselinr_*, made by apply) is not backed up.
            found = [*constraints, *indexes]
            return sorted((str(a), str(b), str(c)) for a, b, c in found if str(a).startswith("baselinr_"))
    finally:
        engine.dispose()


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
def test_postgres_keys_and_indexes_are_rebuilt_as_they_were_and_a_duplicate_key_rolls_back(
    database: Database, tmp_path: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    populate(database, capsys, results=200)
    _bulk(database)
    made = backup(capsys, database, tmp_path / "backups")
    target = fresh(database, tmp_path, request)
    r = run(capsys, "backup", "restore", made["path"], "--config", str(target.config))
    assert r.code == 0, r.err
    keys = _keys(database)
    assert any(name == "baselinr_results_pkey" for _, name, _ in keys)
    assert _keys(target) == keys

    # A backup consistent with its manifest in every checksum, holding one row twice.
    path = Path(made["path"])
    _rewrite(path, "baselinr_results", lambda c: c + c[: c.index(b"\n") + 1], recount=True)
    assert run(capsys, "backup", "verify", str(path)).code == 0
    other = fresh(database, tmp_path, request, name="other")
    r = run(capsys, "backup", "restore", str(path), "--config", str(other.config))
    assert r.code == 4, r.out + r.err
    assert len(r.err.strip().splitlines()) == 1 and "baselinr_results_pkey" in r.err and "rolled back" in r.err
    assert snapshot(other) == {}
