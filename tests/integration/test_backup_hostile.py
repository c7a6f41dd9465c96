"""Hostile backups on real SQLite, PostgreSQL and MariaDB: a backup is data, never code.

For every way of tampering with ``manifest.json`` (``tests/support/hostile.py``)
``backup verify`` fails and ``backup restore`` refuses with one line and its
exit code, with and without ``--replace``, and the target database (which
holds a table ``victim`` and counted rows) is exactly as it was. Format 1
backups, which have no manifest digest, still verify and restore. Then the
files a backup writes are owner-only, and a destination that cannot be
written, or fills up, gives exit 2 and leaves nothing behind. The full disk
is a real 1 MB tmpfs (the tests run as root; it is unmounted afterwards);
the unwritable destination is a real directory of another user, written by a
real process that lacks root's permission-override capabilities.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from baselinr.backup.manifest import digest
from tests.conftest import Database
from tests.integration.test_adopt import build_profiler_database
from tests.integration.test_backup import _engine, backup, fresh, snapshot
from tests.support.cli import ROOT, run
from tests.support.hostile import INJECTION, KINDS, as_format_1, as_format_2, tamper
from tests.support.packages import sql_migration, write_package

RUNS = 30


def _seed(db: Database, capsys: pytest.CaptureFixture[str], *, bulk: int = 0) -> None:
    """Migrate ``db``, add RUNS runs, a table ``victim`` with one row, and ``bulk`` large incompressible results."""
    r = run(capsys, "migrate", "apply", "--config", str(db.config))
    assert r.code == 0, r.err
    engine = _engine(db)
    try:
        with engine.begin() as conn:
            conn.execute(
                text("INSERT INTO baselinr_runs (run_id, dataset_name, profiled_at, status) VALUES (:r, 'orders', :p, 'ok')"),
                [{"r": f"run-{i}", "p": dt.datetime(2024, 1, 1, 0, 0, i)} for i in range(RUNS)],
            )
            conn.exec_driver_sql("CREATE TABLE victim (id INTEGER PRIMARY KEY, body VARCHAR(20))")
            conn.exec_driver_sql("INSERT INTO victim (id, body) VALUES (1, 'precious')")
            if bulk:
                conn.execute(
                    text(
                        "INSERT INTO baselinr_results (run_id, dataset_name, column_name, metric_name, metric_value, "
                        "profiled_at) VALUES ('run-1', 'orders', 'c', 'm', :v, :p)"
                    ),
                    [{"v": os.urandom(1000).hex(), "p": dt.datetime(2024, 1, 1)} for _ in range(bulk)],
                )
    finally:
        engine.dispose()


def _state(db: Database) -> dict[str, list[str]]:
    return snapshot(db, also=("victim",))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_hostile_manifest_fails_verify_and_restore_changes_nothing(
    database: Database, kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _seed(database, capsys)
    made = backup(capsys, database, tmp_path / "backups")
    path = Path(made["path"])
    tamper(path, kind)
    says = KINDS[kind][2]

    r = run(capsys, "backup", "verify", str(path), "--output", "json")
    assert r.code == 1, r.out + r.err
    result = json.loads(r.out)
    assert result["ok"] is False
    assert any(says in p for p in result["problems"]), result["problems"]
    r = run(capsys, "backup", "verify", str(path))
    assert r.code == 1 and says in r.out and "is damaged" in r.out
    r = run(capsys, "backup", "list", "--dest", str(tmp_path / "backups"), "--output", "json")
    listed = json.loads(r.out)["backups"]
    # 'list' reads manifests only: it flags what the manifest itself shows, never a file it has not read.
    flagged = kind in ("integrity_mismatch", "incomplete_flag")
    assert [b["status"] for b in listed] == ["invalid" if flagged else "complete"]

    before = _state(database)
    assert before["victim"] == ["(1, 'precious')"] and len(before["baselinr_runs"]) == RUNS
    for replace in ((), ("--replace",)):
        r = run(capsys, "backup", "restore", str(path), "--config", str(database.config), *replace)
        assert r.code == (2 if kind == "version_newer" else 1), r.out + r.err
        lines = r.err.strip().splitlines()
        assert len(lines) == 1 and says in lines[0], r.err
        assert "Traceback" not in r.err and r.out == ""
        assert _state(database) == before


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
def test_injected_type_is_never_executed_even_when_the_model_check_is_the_only_guard(
    database: Database, tmp_path: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    # A format 1 manifest has no digest to break: only the model stands between the text and the server.
    _seed(database, capsys)
    made = backup(capsys, database, tmp_path / "backups")
    path = Path(made["path"])
    as_format_1(path)
    m = json.loads((path / "manifest.json").read_text())
    next(t for t in m["tables"] if t["name"] == "baselinr_runs")["columns"][0]["type"] = INJECTION
    (path / "manifest.json").write_text(json.dumps(m))
    target = fresh(database, tmp_path, request)
    engine = _engine(target)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE victim (id INTEGER PRIMARY KEY, body VARCHAR(20))")
            conn.exec_driver_sql("INSERT INTO victim VALUES (1, 'precious')")
    finally:
        engine.dispose()
    r = run(capsys, "backup", "restore", str(path), "--config", str(target.config), "--output", "json")
    assert r.code == 1
    assert "has type" in json.loads(r.out)["error"]
    assert snapshot(target, also=("victim",)) == {"victim": ["(1, 'precious')"]}


@pytest.mark.parametrize("old_format", [1, 2])
def test_format_1_and_2_backups_still_verify_and_restore(
    old_format: int, database: Database, tmp_path: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    _seed(database, capsys)
    made = backup(capsys, database, tmp_path / "backups")
    path = Path(made["path"])
    assert json.loads((path / "manifest.json").read_text())["format_version"] == 3
    (as_format_1 if old_format == 1 else as_format_2)(path)
    r = run(capsys, "backup", "verify", str(path), "--output", "json")
    assert r.code == 0, r.out
    result = json.loads(r.out)
    integrity = "not recorded (format 1)" if old_format == 1 else "ok"
    assert result["ok"] is True and result["manifest_integrity"] == integrity
    r = run(capsys, "backup", "verify", str(path))
    assert r.code == 0 and f"integrity {integrity}" in r.out

    target = fresh(database, tmp_path, request)
    r = run(capsys, "backup", "restore", str(path), "--config", str(target.config))
    assert r.code == 0, r.err
    expected = {k: v for k, v in _state(database).items() if k != "victim"}
    assert snapshot(target) == expected  # 'victim' is not Baselinr's: never in a backup
    assert run(capsys, "migrate", "validate", "--config", str(target.config)).code == 0


def _rename(backup: Path, old: str, new: str) -> None:
    m = json.loads((backup / "manifest.json").read_text())
    m.pop("manifest_sha256")
    entry = next(t for t in m["tables"] if t["name"] == old)
    entry["name"] = entry["logical_name"] = new
    m["manifest_sha256"] = digest(m)
    (backup / "manifest.json").write_text(json.dumps(m))


def test_tables_made_by_a_sql_migration_are_backed_up_and_restored_and_only_those(
    database: Database, tmp_path: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    # The model follows the SQL migration: its table is backed up, checked against the model and restored.
    up = "CREATE TABLE baselinr_sqlmade (id INTEGER PRIMARY KEY, body VARCHAR(50))"
    pkg = write_package(tmp_path / "pkgs", {2: sql_migration(2, up, "DROP TABLE baselinr_sqlmade")})
    assert run(capsys, "migrate", "apply", "--config", str(database.config), "--migrations", pkg).code == 0
    engine = _engine(database)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO baselinr_sqlmade (id, body) VALUES (1, 'a'), (2, 'b'), (3, 'c')")
            conn.exec_driver_sql("CREATE TABLE victim (id INTEGER PRIMARY KEY)")
    finally:
        engine.dispose()
    before = snapshot(database)
    made = backup(capsys, database, tmp_path / "backups", "--migrations", pkg)
    assert "baselinr_sqlmade" in {t["name"] for t in made["tables"]} and made["warnings"] == []
    path = Path(made["path"])
    assert run(capsys, "backup", "verify", str(path), "--migrations", pkg).code == 0
    target = fresh(database, tmp_path, request)
    r = run(capsys, "backup", "restore", str(path), "--config", str(target.config), "--migrations", pkg)
    assert r.code == 0, r.err
    assert snapshot(target) == before

    # Still only baselinr_* names, and only tables the migrations made.
    _rename(path, "baselinr_sqlmade", "victim")
    r = run(capsys, "backup", "verify", str(path), "--migrations", pkg, "--output", "json")
    assert r.code == 1 and any("victim: not a table of the schema model" in p for p in json.loads(r.out)["problems"])
    _rename(path, "victim", "baselinr_unmade")
    r = run(capsys, "backup", "verify", str(path), "--migrations", pkg, "--output", "json")
    assert r.code == 1 and any("baselinr_unmade: not a table of the schema model" in p for p in json.loads(r.out)["problems"])
    other = fresh(database, tmp_path, request, "other")
    r = run(capsys, "backup", "restore", str(path), "--config", str(other.config), "--migrations", pkg)
    assert r.code == 1 and "not a table of the schema model" in r.err, r.err
    assert snapshot(other) == {}  # refused before the target was touched, on every dialect


def test_a_database_the_profiler_made_is_backed_up_and_restored(
    database: Database, tmp_path: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    # Stamped at v7 without v3, v6 or v7 having run: the backup records the model's missing tables as absent.
    build_profiler_database(database).close()
    before = snapshot(database)
    made = backup(capsys, database, tmp_path / "backups")
    assert made["schema_version"] == 7
    assert any("records them as absent" in w for w in made["warnings"]), made["warnings"]
    path = Path(made["path"])
    absent = json.loads((path / "manifest.json").read_text())["absent_tables"]
    assert {"baselinr_expectations", "baselinr_rca_results"} <= set(absent)
    assert run(capsys, "backup", "verify", str(path)).code == 0
    target = fresh(database, tmp_path, request)
    r = run(capsys, "backup", "restore", str(path), "--config", str(target.config))
    assert r.code == 0, r.err
    after = snapshot(target)
    version = "baselinr_schema_version"
    assert {t: after[t] for t in before if t != version} == {t: rows for t, rows in before.items() if t != version}
    # The profiler's five-column version row, in the engine's wider table.
    assert len(after[version]) == 1 and after[version][0].startswith(before[version][0][:-1] + ", None")
    assert all(after[t] == [] for t in absent)

    # Claiming a present table as absent, or dropping one that is not listed, is still refused.
    m = json.loads((path / "manifest.json").read_text())
    m.pop("manifest_sha256")
    m["absent_tables"] = [*absent, "baselinr_runs"]
    m["manifest_sha256"] = digest(m)
    (path / "manifest.json").write_text(json.dumps(m))
    r = run(capsys, "backup", "verify", str(path), "--output", "json")
    assert r.code == 1 and any("listed as absent" in p for p in json.loads(r.out)["problems"])


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_a_backup_name_is_a_plain_file_name(database: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "migrate", "apply", "--config", str(database.config)).code == 0
    dest = tmp_path / "backups"
    for name in ("../escape", ".hidden", "a/b", "two\nlines"):
        r = run(capsys, "backup", "create", "--config", str(database.config), "--dest", str(dest), "--name", name)
        assert r.code == 2 and "Invalid backup name" in r.err and len(r.err.strip().splitlines()) == 1, r.err
    assert not (tmp_path / "escape").exists() and (not dest.exists() or list(dest.iterdir()) == [])


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_backups_are_owner_only_whatever_the_umask(
    database: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _seed(database, capsys)
    dest = tmp_path / "new" / "backups"
    old = os.umask(0)
    try:
        made = backup(capsys, database, dest)
    finally:
        os.umask(old)
    path = Path(made["path"])
    files = [p for p in path.iterdir() if p.is_file()]
    assert len(files) == len(made["tables"]) + 1  # one per table and the manifest
    assert {p.name: _mode(p) for p in files} == {p.name: 0o600 for p in files}
    assert (_mode(dest), _mode(path)) == (0o700, 0o700)
    assert [p for p in path.iterdir() if p.is_dir()] == []


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MB file system (tmpfs), unmounted afterwards."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1M,mode=0755", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_create_on_a_full_disk_exits_2_and_leaves_nothing(
    database: Database, small_disk: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _seed(database, capsys, bulk=1500)  # about 3 MB of random hex: about 1.5 MB compressed
    dest = small_disk / "backups"
    r = run(capsys, "backup", "create", "--config", str(database.config), "--dest", str(dest))
    assert r.code == 2, r.out + r.err
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and "out of space" in lines[0] and "Nothing was published" in lines[0], r.err
    assert "Traceback" not in r.err
    assert list(dest.iterdir()) == []  # neither a published backup nor a .partial directory
    r = run(capsys, "backup", "create", "--config", str(database.config), "--dest", str(dest), "--output", "json")
    assert r.code == 2 and "out of space" in json.loads(r.out)["error"]
    # The same backup fits where there is room.
    assert backup(capsys, database, tmp_path / "roomy")["rows"] > 1500


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_create_into_an_unwritable_destination_exits_2_and_leaves_nothing(
    database: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Root may write anywhere: the real 'backup create' process runs without the capabilities that
    # override file permissions (setpriv), into a directory owned by another user.
    assert run(capsys, "migrate", "apply", "--config", str(database.config)).code == 0
    dest = tmp_path / "dest"
    dest.mkdir(mode=0o755)
    os.chown(dest, 65534, 65534)
    for where in (dest, dest / "sub"):
        proc = subprocess.run(
            ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--", sys.executable, "-m", "baselinr",
             "backup", "create", "--config", str(database.config), "--dest", str(where)],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=120,
        )  # fmt: skip
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert len(lines) == 1 and "Permission denied" in lines[0] and "Traceback" not in proc.stderr, proc.stderr
        assert list(dest.iterdir()) == []
