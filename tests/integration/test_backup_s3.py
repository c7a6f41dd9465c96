"""``baselinr backup … --dest s3://bucket/prefix`` against a real S3 server (s3s-fs, ``tests/support/s3server.py``).

Round trips on SQLite, PostgreSQL and MariaDB; a backup killed midway
never listed as complete, then removed with its unfinished multipart upload
(gone from the server's own files); a flipped byte in any object caught by
``verify`` and ``restore``; wrong or missing credentials, a missing bucket
and an unreachable endpoint, each one line with its exit code and no secret
in the output. Credentials reach the CLI only through the AWS chain's
environment variables. What this server cannot do (access policies,
server-side encryption) is covered by ``tests/unit/test_s3_destination.py``.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import Database, make_database
from tests.integration.test_backup import assert_same, backup, fresh, ours, populate, snapshot
from tests.support.cli import ROOT, run
from tests.support.s3server import Keys, S3Server


@pytest.fixture
def s3(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """The S3 server, with the admin's keys in this process's environment (the AWS chain), nothing else."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    return s3_server


def keys_under(s3: S3Server, bucket: str, prefix: str) -> list[str]:
    out = s3.client().list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for o in out.get("Contents", []))


def uploads_under(s3: S3Server, bucket: str, prefix: str) -> list[tuple[str, str]]:
    """(key, upload id) of each unfinished upload, from its ``.uploading`` marker."""
    client = s3.client()
    out = []
    for key in keys_under(s3, bucket, prefix):
        if key.endswith(".uploading"):
            out.append((key.removesuffix(".uploading"), client.get_object(Bucket=bucket, Key=key)["Body"].read().decode()))
    return out


@pytest.mark.parametrize("database", ["sqlite", "postgres", "mysql"], indirect=True)
def test_round_trip_through_s3(
    database: Database, s3: S3Server, tmp_path: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    populate(database, capsys)
    before = snapshot(database)
    bucket = s3.new_bucket()
    dest = f"s3://{bucket}/baselinr/prod"
    made = backup(capsys, database, dest)  # type: ignore[arg-type]
    assert made["path"] == f"{dest}/{made['name']}"
    stored = s3.client().list_objects_v2(Bucket=bucket, Prefix=f"baselinr/prod/{made['name']}/")["Contents"]
    files = {o["Key"].rsplit("/", 1)[1]: o for o in stored}
    assert set(files) == {
        "manifest.json",
        *(t["name"] + ".copy.gz" if database.dialect == "postgres" else t["name"] + ".jsonl.gz" for t in made["tables"]),
    }
    # The manifest, the completion marker, was written after every table file.
    assert all(files["manifest.json"]["LastModified"] >= o["LastModified"] for o in stored)

    r = run(capsys, "backup", "list", "--dest", dest, "--output", "json")
    assert r.code == 0, r.err
    assert [(b["name"], b["status"]) for b in json.loads(r.out)["backups"]] == [(made["name"], "complete")]
    r = run(capsys, "backup", "verify", "latest", "--dest", dest, "--output", "json")
    assert r.code == 0 and json.loads(r.out)["ok"] is True, r.out
    r = run(capsys, "backup", "verify", made["path"], "--output", "json")
    assert r.code == 0 and json.loads(r.out)["path"] == made["path"], r.out

    target = fresh(database, tmp_path, request)
    r = run(capsys, "backup", "restore", "latest", "--dest", dest, "--config", str(target.config), "--output", "json")
    assert r.code == 0, r.err + r.out
    assert json.loads(r.out)["rows"] == made["rows"]
    assert_same(snapshot(target), ours(before))

    # --keep prunes only complete backups, oldest first; a second database's backups are its own group.
    second = backup(capsys, database, dest, "--keep", "1")  # type: ignore[arg-type]
    assert second["pruned"] == [made["name"]]
    assert not keys_under(s3, bucket, f"baselinr/prod/{made['name']}/")
    r = run(capsys, "backup", "list", "--dest", dest, "--output", "json")
    assert [b["name"] for b in json.loads(r.out)["backups"]] == [second["name"]]


def _fill_with_incompressible_rows(db: Database, rows: int) -> None:
    """Rows of random hex, so the results file is larger than a few parts once compressed."""
    conn = sqlite3.connect(db.connection["filepath"])
    try:
        conn.executemany(
            "INSERT INTO baselinr_results (run_id, dataset_name, column_name, metric_name, metric_value, profiled_at) "
            "VALUES (?, 'd', 'c', 'm', ?, '2024-01-01 00:00:00')",
            ((f"r{i}", secrets.token_hex(512)) for i in range(rows)),
        )
        conn.commit()
    finally:
        conn.close()


def test_upload_killed_midway_is_never_listed_and_prune_removes_it(
    s3: S3Server, tmp_path: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    database = make_database("sqlite", tmp_path, request)
    r = run(capsys, "migrate", "apply", "--config", str(database.config))
    assert r.code == 0
    bucket = s3.new_bucket()
    dest = f"s3://{bucket}/kill"
    good = backup(capsys, database, dest)  # type: ignore[arg-type]
    _fill_with_incompressible_rows(database, 40_000)  # about 20 MB compressed: 4 parts of 5 MiB
    cmd = [sys.executable, "-m", "baselinr", "backup", "create", "--config", str(database.config), "--dest", dest,
           "--s3-part-size-mb", "5"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        started: list[tuple[str, str]] = []
        while time.monotonic() < deadline and proc.poll() is None:
            started = [
                (key, upload)
                for key, upload in uploads_under(s3, bucket, "kill/")
                if s3.client().list_parts(Bucket=bucket, Key=key, UploadId=upload).get("Parts")
            ]
            if started:
                break
            time.sleep(0.05)
        assert started, f"no part was uploaded before the backup ended: rc={proc.poll()}"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        _out, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, err
    partial_name = started[0][0].split("/")[1]
    assert s3.unfinished_uploads()

    r = run(capsys, "backup", "list", "--dest", dest, "--output", "json")
    assert r.code == 0, r.err
    listed = {b["name"]: b["status"] for b in json.loads(r.out)["backups"]}
    assert listed == {good["name"]: "complete", partial_name: "partial"}
    r = run(capsys, "backup", "verify", "latest", "--dest", dest, "--output", "json")
    assert r.code == 0 and json.loads(r.out)["name"] == good["name"]
    r = run(capsys, "backup", "verify", partial_name, "--dest", dest)
    assert r.code == 1 and "not a complete backup" in r.err, r.err
    target = fresh(database, tmp_path, request)
    r = run(capsys, "backup", "restore", partial_name, "--dest", dest, "--config", str(target.config))
    assert r.code == 1 and "not a complete backup" in r.err, r.err
    assert snapshot(target) == {}

    # Without --partial-older-than a partial backup is left alone (it may still be being written) ...
    r = run(capsys, "backup", "prune", "--dest", dest, "--keep", "5", "--output", "json")
    assert r.code == 0 and json.loads(r.out)["removed"] == []
    assert uploads_under(s3, bucket, f"kill/{partial_name}/")
    # ... with it, the partial backup goes, its unfinished multipart upload aborted; the complete one stays.
    r = run(capsys, "backup", "prune", "--dest", dest, "--keep", "5", "--partial-older-than", "0", "--output", "json")
    assert r.code == 0 and json.loads(r.out)["removed"] == [partial_name], r.out
    assert not keys_under(s3, bucket, f"kill/{partial_name}/")
    assert s3.unfinished_uploads() == []  # the server's own part files: the upload was aborted
    assert keys_under(s3, bucket, f"kill/{good['name']}/")

    # The same backup, not killed: its multipart upload completes, its marker goes, and it verifies.
    whole = backup(capsys, database, dest, "--s3-part-size-mb", "5")  # type: ignore[arg-type]
    results = next(t for t in whole["tables"] if t["name"] == "baselinr_results")
    assert results["bytes"] > 3 * 5 * 1024 * 1024, "the file should take several parts"
    assert not [k for k in keys_under(s3, bucket, "kill/") if k.endswith(".uploading")]
    assert s3.unfinished_uploads() == []
    r = run(capsys, "backup", "verify", whole["name"], "--dest", dest)
    assert r.code == 0, r.err


def test_a_flipped_byte_in_any_object_fails_verify_and_restore(
    s3: S3Server, tmp_path: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    database = make_database("sqlite", tmp_path, request)
    populate(database, capsys, results=50)
    bucket = s3.new_bucket()
    dest = f"s3://{bucket}/flip"
    made = backup(capsys, database, dest)  # type: ignore[arg-type]
    client = s3.client()
    keys = keys_under(s3, bucket, f"flip/{made['name']}/")
    assert len(keys) == len(made["tables"]) + 1
    target = fresh(database, tmp_path, request)
    for key in keys:
        original = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        flipped = bytearray(original)
        flipped[len(flipped) // 2] ^= 0x01
        client.put_object(Bucket=bucket, Key=key, Body=bytes(flipped))
        try:
            r = run(capsys, "backup", "verify", made["name"], "--dest", dest, "--output", "json")
            assert r.code == 1, (key, r.out)
            r = run(capsys, "backup", "restore", made["name"], "--dest", dest, "--config", str(target.config))
            assert r.code == 1, (key, r.err)
            assert len(r.err.strip().splitlines()) == 1, r.err
            assert snapshot(target) == {}, key
        finally:
            client.put_object(Bucket=bucket, Key=key, Body=original)
    r = run(capsys, "backup", "verify", made["name"], "--dest", dest)
    assert r.code == 0, r.err


def test_wrong_credentials_exit_3_and_never_print_the_secret(
    s3: S3Server,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    database = make_database("sqlite", tmp_path, request)
    r = run(capsys, "migrate", "apply", "--config", str(database.config))
    assert r.code == 0
    bucket = s3.new_bucket()
    dest = f"s3://{bucket}/creds"
    wrong = Keys(s3.admin.access_key, "wrong-" + secrets.token_hex(16))
    unknown = Keys("UNKNOWNKEY" + secrets.token_hex(5).upper(), "unknown-" + secrets.token_hex(16))
    for keys in (wrong, unknown):
        for name, value in keys.env().items():
            monkeypatch.setenv(name, value)
        for args in (
            ("backup", "list", "--dest", dest),
            ("backup", "create", "--config", str(database.config), "--dest", dest),
            ("backup", "verify", "latest", "--dest", dest),
        ):
            r = run(capsys, *args)
            assert r.code == 3, (args, r.err)
            assert "refused the credentials" in r.err and len(r.err.strip().splitlines()) == 1, r.err
            assert keys.secret_key not in r.out + r.err and s3.admin.secret_key not in r.out + r.err
    assert keys_under(s3, bucket, "creds/") == []

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    r = run(capsys, "backup", "list", "--dest", dest)
    assert r.code == 3 and "No AWS credentials found" in r.err and "AWS_ACCESS_KEY_ID" in r.err, r.err


def test_missing_bucket_or_unreachable_endpoint_is_one_line_naming_what_to_do(
    s3: S3Server,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    database = make_database("sqlite", tmp_path, request)
    r = run(capsys, "migrate", "apply", "--config", str(database.config))
    assert r.code == 0
    missing = f"s3://no-such-bucket-{secrets.token_hex(4)}/x"
    for args in (
        ("backup", "list", "--dest", missing),
        ("backup", "create", "--config", str(database.config), "--dest", missing),
        ("backup", "verify", "latest", "--dest", missing),
    ):
        r = run(capsys, *args)
        assert r.code == 2, (args, r.err)
        assert "does not exist" in r.err and "Create bucket" in r.err and len(r.err.strip().splitlines()) == 1, r.err
        assert s3.admin.secret_key not in r.out + r.err

    r = run(
        capsys, "backup", "create", "--config", str(database.config), "--dest", f"s3://{s3.new_bucket()}/x", "--output", "json"
    )
    assert r.code == 0, r.out
    r = run(capsys, "backup", "verify", "no-such-backup", "--dest", f"s3://{s3.new_bucket()}/x")
    assert r.code == 2 and "not found" in r.err and "backup list" in r.err, r.err

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    r = run(capsys, "backup", "list", "--dest", missing)
    assert r.code == 3 and "Cannot reach the S3 endpoint" in r.err and len(r.err.strip().splitlines()) == 1, r.err


def test_prune_partial_older_than_on_a_directory_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The same option on the directory format: a partial backup left by a kill goes once it is idle long enough."""
    dest = tmp_path / "backups"
    partial = dest / ".baselinr-db-v1-20260101T000000.000000Z.partial"
    partial.mkdir(parents=True)
    (partial / "baselinr_runs.jsonl.gz").write_bytes(b"\x1f\x8b half a file")
    r = run(capsys, "backup", "prune", "--dest", str(dest), "--keep", "1", "--partial-older-than", "60", "--output", "json")
    assert r.code == 0 and json.loads(r.out)["removed"] == [] and partial.exists(), r.out
    old = time.time() - 2 * 3600
    for path in (partial / "baselinr_runs.jsonl.gz", partial):
        os.utime(path, (old, old))
    r = run(capsys, "backup", "prune", "--dest", str(dest), "--keep", "1", "--partial-older-than", "60", "--output", "json")
    assert r.code == 0 and json.loads(r.out)["removed"] == ["baselinr-db-v1-20260101T000000.000000Z"], r.out
    assert list(dest.iterdir()) == []
