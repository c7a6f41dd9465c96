"""Pure parts of ``baselinr.backup``: the typed row encoding, the hashing gzip streams,
the manifest and the store's view of complete, partial and invalid backups."""

from __future__ import annotations

import datetime as dt
import io
import json
import math
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from baselinr.backup.api import list_backups, prune_backups
from baselinr.backup.catalog import catalog
from baselinr.backup.errors import BackupError
from baselinr.backup.manifest import ColumnEntry, Manifest, TableEntry, backup_name, parse_manifest
from baselinr.backup.progress import TerminalProgress
from baselinr.backup.reader import verify
from baselinr.backup.streams import HashingGzipReader, HashingGzipWriter, TruncatedStream
from baselinr.backup.trust import check_manifest, type_family
from baselinr.backup.values import decode_row, encode_row
from baselinr.storage.dialects import dialect_for
from baselinr.storage.migrations.chain import load_chain

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(),
    st.binary(),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.datetimes(timezones=st.one_of(st.none(), st.timezones())),
    st.dates(),
    st.times(),
    st.timedeltas(),
)


@given(st.lists(scalars, max_size=8))
def test_typed_rows_round_trip_exactly(row: list[object]) -> None:
    line = encode_row(row)
    assert "\n" not in line
    back = decode_row(line.encode())
    assert len(back) == len(row)
    for a, b in zip(row, back, strict=True):
        assert type(a) is type(b) or (isinstance(a, dt.datetime) and isinstance(b, dt.datetime))
        if isinstance(a, float) and math.isnan(a):
            assert math.isnan(b)  # type: ignore[arg-type]
        elif isinstance(a, Decimal):
            assert str(a) == str(b)  # the scale too
        elif isinstance(a, dt.datetime):
            # The same wall time and the same UTC offset: the same instant, written as it was. (Not `a == b`:
            # an aware time in a zone's DST gap or fold compares unequal to any other zone's, by PEP 495.)
            assert isinstance(b, dt.datetime)
            assert (a.replace(tzinfo=None), a.utcoffset()) == (b.replace(tzinfo=None), b.utcoffset())
        else:
            assert a == b
    assert math.copysign(1, decode_row(encode_row([-0.0]).encode())[0]) == -1


def test_writer_and_reader_agree_and_detect_truncation() -> None:
    raw = io.BytesIO()
    writer = HashingGzipWriter(raw)
    for i in range(50_000):
        writer.write(f"{i}\tvalue with \\n escaped\n".encode())
    summary = writer.close()
    assert summary.rows == 50_000 and summary.file_bytes == len(raw.getvalue())
    reader = HashingGzipReader(io.BytesIO(raw.getvalue()))
    assert sum(1 for _ in reader) == 50_000
    assert reader.summary() == summary
    with pytest.raises(TruncatedStream):
        HashingGzipReader(io.BytesIO(raw.getvalue()[:-20])).drain()
    with pytest.raises(Exception, match="unexpected bytes"):
        HashingGzipReader(io.BytesIO(raw.getvalue() + b"junk")).drain()


def _manifest(name: str, created: str, rows: int = 0, sha: str = "0" * 64) -> Manifest:
    table = TableEntry(
        name="baselinr_runs",
        file="baselinr_runs.jsonl.gz",
        encoding="jsonl-typed",
        rows=rows,
        bytes=0,
        content_bytes=0,
        sha256=sha,
        content_sha256=sha,
        columns=[ColumnEntry("run_id", "VARCHAR(36)", False)],
    )
    return Manifest(name, created, "0.1.0", "sqlite", "db", 1, 1, [table])


def test_manifest_round_trip_and_rejections() -> None:
    m = _manifest("b1", "2026-01-01T00:00:00.000000Z")
    assert parse_manifest(m.to_json(), "x") == m
    data = json.loads(m.to_json())
    for broken, message in (
        ("{", "not valid JSON"),
        (json.dumps({**data, "format_version": 99}), "not supported"),
        (json.dumps({**data, "mode": "clone"}), "mode"),
        (json.dumps({**data, "format": "other"}), "not a Baselinr backup"),
        (json.dumps({**data, "tables": [{**data["tables"][0], "file": "../etc/passwd"}]}), "unsafe"),
    ):
        with pytest.raises(BackupError, match=message):
            parse_manifest(broken, "x")
    assert data["manifest_sha256"] == parse_manifest(m.to_json(), "x").computed_sha256
    edited = parse_manifest(json.dumps({**data, "database": "other"}), "x")
    assert edited.recorded_sha256 == data["manifest_sha256"] != edited.computed_sha256
    table = data["tables"][0]
    for malformed in (
        {**data, "schema_version": 10**20},
        {**data, "complete": "yes"},
        {**data, "name": "two\nlines"},
        {**data, "extra": 1},
        {**data, "tables": [{**table, "rows": "3"}]},
        {**data, "tables": [{**table, "rows": -1}]},
        {**data, "tables": [{**table, "sha256": "x"}]},
        {**data, "tables": [{**table, "columns": [{"name": "a", "type": 1}]}]},
        {**data, "tables": "all"},
    ):
        with pytest.raises(BackupError, match=r"malformed|no list"):
            parse_manifest(json.dumps(malformed), "x")
    with pytest.raises(BackupError, match="JSON cannot represent"):
        parse_manifest(json.dumps({**data, "tables": [{**table, "rows": float("nan")}]}), "x")
    assert backup_name("my db/../x", 3, "20260101T000000Z") == "baselinr-my_db_.._x-v3-20260101T000000Z"


def _write_backup(dest: Path, name: str, created: str) -> Path:
    path = dest / name
    path.mkdir(parents=True)
    raw = io.BytesIO()
    writer = HashingGzipWriter(raw)
    writer.write(b'["r1"]\n')
    s = writer.close()
    (path / "baselinr_runs.jsonl.gz").write_bytes(raw.getvalue())
    m = _manifest(name, created, rows=1)
    table = m.tables[0]
    fixed = TableEntry(**{**table.__dict__, "bytes": s.file_bytes, "content_bytes": s.content_bytes,
                          "sha256": s.sha256, "content_sha256": s.content_sha256})  # fmt: skip
    (path / "manifest.json").write_text(Manifest(**{**m.__dict__, "tables": [fixed]}).to_json())
    return path


def test_store_lists_partial_and_invalid_and_prunes_only_complete(tmp_path: Path) -> None:
    for i in range(3):
        _write_backup(tmp_path, f"baselinr-db-v1-{i}", f"2026-01-0{i + 1}T00:00:00.000000Z")
    (tmp_path / ".baselinr-db-v1-9.partial").mkdir()
    (tmp_path / "baselinr-db-v1-broken").mkdir()
    (tmp_path / "baselinr-db-v1-broken" / "manifest.json").write_text("{not json")
    listed = list_backups(str(tmp_path))
    status = {b.name: b.status for b in listed.backups}
    assert status == {
        "baselinr-db-v1-0": "complete",
        "baselinr-db-v1-1": "complete",
        "baselinr-db-v1-2": "complete",
        "baselinr-db-v1-9": "partial",
        "baselinr-db-v1-broken": "invalid",
    }
    edited = tmp_path / "baselinr-db-v1-2" / "manifest.json"
    edited.write_text(edited.read_text().replace('"database": "db"', '"database": "other"'))
    assert {b.name: b.status for b in list_backups(str(tmp_path)).backups}["baselinr-db-v1-2"] == "invalid"
    edited.write_text(edited.read_text().replace('"database": "other"', '"database": "db"'))
    huge = tmp_path / "baselinr-db-v1-huge"
    huge.mkdir()
    (huge / "manifest.json").write_text(" " * (16 * 1024 * 1024 + 1))
    with pytest.raises(BackupError, match="more than any real backup"):
        verify(huge, load_chain())
    huge.joinpath("manifest.json").unlink()
    huge.rmdir()
    checked = verify(tmp_path / "baselinr-db-v1-2", load_chain())
    assert [t.ok for t in checked.tables] == [True] and checked.manifest_integrity == "ok"
    # A manifest of the runs table alone, with one column, is not a backup of schema v1.
    assert not checked.ok
    assert {(p.kind, p.table) for p in checked.manifest_problems} >= {
        ("missing_table", "baselinr_schema_version"),
        ("missing_table", "baselinr_results"),
        ("missing_column", "baselinr_runs"),
    }
    pruned = prune_backups(str(tmp_path), 1)
    assert pruned.removed == ["baselinr-db-v1-0", "baselinr-db-v1-1"] and pruned.kept == ["baselinr-db-v1-2"]
    assert (tmp_path / ".baselinr-db-v1-9.partial").exists() and (tmp_path / "baselinr-db-v1-broken").exists()


def test_terminal_progress_redraws_one_line_per_table() -> None:
    stream = io.StringIO()
    bar = TerminalProgress(stream, interval=0)
    bar("restore", "baselinr_runs", 5, 10)
    bar("restore", "baselinr_runs", 10, 10)
    bar("restore", "baselinr_results", 3, None)
    bar.close()
    text = stream.getvalue()
    assert "baselinr_runs: 10 / 10 rows (100%)" in text and "baselinr_results: 3 rows" in text
    assert text.count("\n") == 2 and text.endswith("\n")


@pytest.mark.parametrize(
    ("spelled", "family"),
    [
        ("INTEGER", ("integer", None)),
        ("INTEGER(11)", ("integer", None)),
        ("BIGINT", ("bigint", None)),
        ("NUMBER(38, 0)", ("bigint", None)),
        ("DOUBLE PRECISION", ("float", None)),
        ("VARCHAR(255)", ("string", 255)),
        ("CHARACTER VARYING(36)", ("string", 36)),
        ("VARCHAR(255) COLLATE utf8mb4_bin", ("string", 255)),
        ("VARCHAR", ("text", None)),
        ("VARCHAR(16777216)", ("string", 16777216)),
        ("LONGTEXT", ("text", None)),
        ("JSONB", ("json", None)),
        ("VARIANT", ("json", None)),
        ("TIMESTAMP WITHOUT TIME ZONE", ("timestamp", None)),
        ("DATETIME(6)", ("timestamp", None)),
        ("TIMESTAMP_TZ", ("timestamp", None)),
        ("TINYINT(1)", ("boolean", None)),
        ("BOOLEAN", ("boolean", None)),
        ("VARCHAR(36)); DROP TABLE victim; --", None),
        ("INTEGER DEFAULT (1)", None),
        ("BYTEA", None),
        ("X" * 200, None),
    ],
)
def test_type_family_of_spelled_types(spelled: str, family: tuple[str, int | None] | None) -> None:
    assert type_family(spelled) == family


def _valid_manifest() -> Manifest:
    """A manifest of Baselinr's v1 on SQLite that passes every check of ``trust``."""
    cat = catalog(load_chain(), 1, "sqlite")
    d = dialect_for("sqlite")
    tables = [
        TableEntry(
            name=t.name, file=f"{t.name}.jsonl.gz", encoding="jsonl-typed", rows=0, bytes=0, content_bytes=0,
            sha256="0" * 64, content_sha256="0" * 64, logical_name=t.name,
            columns=[ColumnEntry(c.name, d.render_type(c.type), c.nullable) for c in t.columns],
        )
        for t in cat.required.values()
    ]  # fmt: skip
    return Manifest("b", "2026-01-01T00:00:00.000000Z", "0.1.0", "sqlite", "db", 1, 10, tables)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=8,
)


@given(where=st.integers(min_value=0, max_value=10_000), value=json_values, key=st.text(max_size=12))
def test_any_unsealed_edit_of_a_manifest_is_refused(where: int, value: object, key: str) -> None:
    data = json.loads(_valid_manifest().to_json())
    assert check_manifest(parse_manifest(json.dumps(data), "x"), load_chain(), encoding="jsonl-typed").ok
    # Pick one place (a top-level field, a table field or a column field) and put any JSON value there.
    table = data["tables"][where % len(data["tables"])]
    column = table["columns"][where % len(table["columns"])]
    target = [data, table, column][where % 3]
    fields_ = [*target, key]
    name = fields_[where % len(fields_)]
    if name == "manifest_sha256" or target.get(name, object()) == value:
        return
    target[name] = value
    try:
        m = parse_manifest(json.dumps(data), "x")
    except BackupError:
        return
    found = check_manifest(m, load_chain(), encoding="jsonl-typed")
    assert not found.ok and found.problems[0].kind == "integrity"


def test_the_version_a_manifest_records_is_the_installed_packages() -> None:
    """``tool_version`` reads ``baselinr.__version__`` (no metadata scan at start-up); the two must agree."""
    from importlib.metadata import version

    from baselinr.backup.writer import tool_version

    assert tool_version() == version("baselinr")
    assert tool_version().count(".") >= 2
