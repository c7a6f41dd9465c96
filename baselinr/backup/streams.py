"""Byte streams that compress and hash on the way through, for one table file.

Used by the table codecs (``pg_copy``, ``rows``) while writing a backup and
by ``reader`` / ``restore`` while reading one. A writer yields the two
checksums a manifest records: SHA-256 of the compressed file as stored, and
SHA-256 of the logical (uncompressed) content, plus the number of rows,
which in both of our formats is the number of newline-terminated lines.
Writes are buffered into large chunks so a stream of small rows costs one
``compress`` call per megabyte, not per row.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

CHUNK = 1 << 20
COMPRESSION = "gzip"
GZIP_LEVEL = 1


@dataclass(frozen=True)
class StreamSummary:
    """What was written or read: sizes, rows and both checksums."""

    rows: int
    content_bytes: int
    file_bytes: int
    sha256: str
    content_sha256: str


class HashingGzipWriter:
    """A write-only file object: counts lines, hashes, gzips into ``raw``."""

    def __init__(self, raw: BinaryIO, *, level: int = GZIP_LEVEL, on_rows: Callable[[int], None] | None = None) -> None:
        self._raw = raw
        self._on_rows = on_rows
        # wbits 31: a gzip member, readable by gzip(1) and Python's gzip module.
        self._zip = zlib.compressobj(level, zlib.DEFLATED, 31)
        self._content = hashlib.sha256()
        self._file = hashlib.sha256()
        self._pending: list[bytes] = []
        self._pending_size = 0
        self.rows = 0
        self.content_bytes = 0
        self.file_bytes = 0
        self._closed = False

    def write(self, data: bytes | bytearray | memoryview | str) -> int:
        if isinstance(data, str):
            data = data.encode("utf-8")
        chunk = bytes(data)
        self._pending.append(chunk)
        self._pending_size += len(chunk)
        if self._pending_size >= CHUNK:
            self._flush_pending()
        return len(chunk)

    def _flush_pending(self) -> None:
        if not self._pending:
            return
        block = b"".join(self._pending)
        self._pending.clear()
        self._pending_size = 0
        self.rows += block.count(b"\n")
        self.content_bytes += len(block)
        self._content.update(block)
        self._emit(self._zip.compress(block))
        if self._on_rows is not None:
            self._on_rows(self.rows)

    def _emit(self, out: bytes) -> None:
        if out:
            self._file.update(out)
            self.file_bytes += len(out)
            self._raw.write(out)

    def close(self) -> StreamSummary:
        """Finish the gzip member and return the summary (idempotent)."""
        if not self._closed:
            self._flush_pending()
            self._emit(self._zip.flush())
            self._closed = True
        return StreamSummary(self.rows, self.content_bytes, self.file_bytes, self._file.hexdigest(), self._content.hexdigest())


class TruncatedStream(Exception):
    """The compressed file ended before its gzip member did."""


class HashingGzipReader:
    """A read-only file object over a gzip file that hashes both layers.

    ``read(n)`` returns decompressed bytes; after EOF, ``summary()`` gives the
    same figures a writer produced, so a caller compares them with the
    manifest. A file cut short raises ``TruncatedStream``; bad data raises
    ``zlib.error``.
    """

    def __init__(self, raw: BinaryIO, *, on_rows: Callable[[int], None] | None = None) -> None:
        self._raw = raw
        self._on_rows = on_rows
        self._zip = zlib.decompressobj(31)
        self._content = hashlib.sha256()
        self._file = hashlib.sha256()
        self._buffer = b""
        self._eof = False
        self.rows = 0
        self.content_bytes = 0
        self.file_bytes = 0

    def _fill(self) -> None:
        while not self._buffer and not self._eof:
            if self._zip.eof:
                # The member ended: whatever follows must be nothing at all.
                rest = self._zip.unused_data + self._read_raw(-1)
                self._eof = True
                if rest:
                    raise zlib.error(f"{len(rest)} unexpected bytes after the end of the compressed data")
                break
            if self._zip.unconsumed_tail:
                data = self._zip.decompress(self._zip.unconsumed_tail, CHUNK)
            else:
                compressed = self._read_raw(CHUNK)
                if not compressed:
                    raise TruncatedStream("the file ends before its compressed data does (truncated)")
                data = self._zip.decompress(compressed, CHUNK)
            if data:
                self._account(data)
                self._buffer = data

    def _read_raw(self, size: int) -> bytes:
        data = self._raw.read(size)
        if data:
            self._file.update(data)
            self.file_bytes += len(data)
        return data

    def _account(self, data: bytes) -> None:
        self._content.update(data)
        self.content_bytes += len(data)
        self.rows += data.count(b"\n")
        if self._on_rows is not None:
            self._on_rows(self.rows)

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            parts: list[bytes] = []
            while True:
                part = self.read(CHUNK)
                if not part:
                    return b"".join(parts)
                parts.append(part)
        self._fill()
        out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out

    def readline(self) -> bytes:
        """One line including its newline ('' at the end); for the row codecs."""
        parts: list[bytes] = []
        while True:
            self._fill()
            if not self._buffer:
                return b"".join(parts)
            cut = self._buffer.find(b"\n")
            if cut >= 0:
                parts.append(self._buffer[: cut + 1])
                self._buffer = self._buffer[cut + 1 :]
                return b"".join(parts)
            parts.append(self._buffer)
            self._buffer = b""

    def __iter__(self) -> HashingGzipReader:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def drain(self) -> None:
        while self.read(CHUNK):
            pass

    def summary(self) -> StreamSummary:
        return StreamSummary(self.rows, self.content_bytes, self.file_bytes, self._file.hexdigest(), self._content.hexdigest())
