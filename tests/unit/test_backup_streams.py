"""The block paths of ``baselinr.backup.streams``: what the COPY loops use to move data a megabyte at a time.

``block_writer`` (rows written one call each, compressed in whole blocks in
a second thread) must produce exactly what writing straight into a
``HashingGzipWriter`` produces, and surface an error of the writing thread
in the caller's. ``ReadAhead`` (decompressing the next block in a second
thread) must hand over exactly the file's content, report progress in the
caller's thread and raise damage where the caller reads. ``lines()`` must
split at every newline, also where a line spans two blocks. Real files and
in-memory buffers only.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import threading
from pathlib import Path

import pytest

from baselinr.backup.streams import CHUNK, HashingGzipReader, HashingGzipWriter, ReadAhead, TruncatedStream, block_writer


def _rows(n: int) -> list[bytes]:
    # Lengths vary so that block boundaries fall mid-row, and a few rows are longer than a block.
    return [(f"{i}\t" + "x" * (i % 97) + ("y" * (CHUNK + 5) if i % 20_000 == 7 else "") + "\n").encode() for i in range(n)]


def test_block_writer_writes_what_a_plain_writer_writes() -> None:
    rows = _rows(60_000)
    plain, blocked = io.BytesIO(), io.BytesIO()
    direct = HashingGzipWriter(plain)
    for row in rows:
        direct.write(row)
    expected = direct.close()

    sink = HashingGzipWriter(blocked)
    with block_writer(sink, name="test") as out:
        for row in rows:
            out.write(row)
    got = sink.close()
    assert (got.rows, got.content_bytes, got.content_sha256) == (expected.rows, expected.content_bytes, expected.content_sha256)
    assert got.rows == len(rows) and got.content_bytes > 3 * CHUNK
    assert gzip.decompress(blocked.getvalue()) == b"".join(rows)
    assert got.file_bytes == len(blocked.getvalue()) and got.sha256 == hashlib.sha256(blocked.getvalue()).hexdigest()


def test_block_writer_raises_the_writing_threads_error_in_the_caller(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"")
    with open(tmp_path / "f", "rb") as read_only:  # a real file that refuses writes
        sink = HashingGzipWriter(read_only)
        with pytest.raises(io.UnsupportedOperation), block_writer(sink, name="test") as out:
            for row in _rows(200_000):
                out.write(row)
    assert not [t for t in threading.enumerate() if t.name == "test"]


def _gz(content: bytes) -> bytes:
    raw = io.BytesIO()
    w = HashingGzipWriter(raw)
    w.write(content)
    w.close()
    return raw.getvalue()


def test_read_ahead_hands_over_the_whole_content_and_reports_in_the_callers_thread() -> None:
    content = b"".join(_rows(80_000))
    data = _gz(content)
    seen: list[tuple[int, int]] = []
    reader = HashingGzipReader(io.BytesIO(data), on_rows=lambda n: seen.append((threading.get_ident(), n)))
    parts = []
    with ReadAhead(reader) as blocks:
        while part := blocks.read(CHUNK):
            assert len(part) <= CHUNK
            parts.append(part)
    assert b"".join(parts) == content
    s = reader.summary()
    assert s.rows == 80_000 and s.content_sha256 == hashlib.sha256(content).hexdigest()
    assert s.file_bytes == len(data) and s.sha256 == hashlib.sha256(data).hexdigest()
    assert len(parts) > 3 and {ident for ident, _ in seen} == {threading.get_ident()}
    assert seen[-1][1] == 80_000


def test_read_ahead_raises_damage_where_the_caller_reads_and_stops_cleanly() -> None:
    data = _gz(b"".join(_rows(80_000)))
    with pytest.raises(TruncatedStream), ReadAhead(HashingGzipReader(io.BytesIO(data[: len(data) // 2]))) as blocks:
        while blocks.read(CHUNK):
            pass
    # Leaving early (the driver gave up after the first block) does not wait for the rest.
    with ReadAhead(HashingGzipReader(io.BytesIO(data))) as blocks:
        assert blocks.read(10)
    assert not [t for t in threading.enumerate() if t.name == "baselinr-restore-read"]


def test_lines_split_at_every_newline_across_blocks() -> None:
    rows = _rows(50_000)
    reader = HashingGzipReader(io.BytesIO(_gz(b"".join(rows))))
    assert list(reader.lines()) == [r[:-1] for r in rows]
    assert reader.summary().rows == len(rows)
    # Mixed with readline: each takes up where the other left off.
    reader = HashingGzipReader(io.BytesIO(_gz(b"".join(rows))))
    first = reader.readline()
    assert [first[:-1], *reader.lines()] == [r[:-1] for r in rows]


def test_read_ahead_tells_an_empty_table_from_one_with_rows() -> None:
    empty = HashingGzipReader(io.BytesIO(_gz(b"")))
    with ReadAhead(empty) as blocks:
        assert blocks.empty() and blocks.read(CHUNK) == b""
    assert empty.summary().rows == 0 and empty.summary().file_bytes == len(_gz(b""))
    content = b"".join(_rows(1000))
    full = HashingGzipReader(io.BytesIO(_gz(content)))
    with ReadAhead(full) as blocks:
        assert not blocks.empty()
        assert blocks.read(-1) == content and blocks.empty()
