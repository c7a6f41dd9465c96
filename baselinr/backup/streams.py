"""Byte streams that compress and hash on the way through, for one table file.

Used by the table codecs (``pg_copy``, ``rows``) while writing a backup and
by ``reader`` / ``restore`` while reading one. A writer yields the two
checksums a manifest records: SHA-256 of the compressed file as stored, and
SHA-256 of the logical (uncompressed) content, plus the number of rows,
which in both of our formats is the number of newline-terminated lines.
Writes are buffered into large chunks so a stream of small rows costs one
``compress`` call per megabyte, not per row.

For the database drivers' COPY loops, which hand over one row at a time
(writing) or ask for a block at a time (reading), ``block_writer`` and
``ReadAhead`` move the compressing, hashing and file I/O to a second
thread that works on whole blocks: zlib and hashlib release the GIL on
large buffers, so that work overlaps with the driver's network I/O, and
at most ``QUEUED_BLOCKS`` blocks are in flight whatever the table's size.
"""

from __future__ import annotations

import hashlib
import io
import queue
import threading
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from baselinr.backup import deflate

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

CHUNK = 1 << 20
# A write at least this large is compressed as it is, not gathered with others first.
BLOCK = CHUNK // 2
# Blocks waiting between the driver's thread and the compressing one: memory is bounded by this.
QUEUED_BLOCKS = 2
COMPRESSION = "gzip"
GZIP_LEVEL = deflate.LEVEL


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
        self._zip = deflate.compressobj(level)
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
        if not self._pending and len(chunk) >= BLOCK:
            self._process(chunk)
            return len(chunk)
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
        self._process(block)

    def _process(self, block: bytes) -> None:
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


class _Handoff(io.RawIOBase):
    """The raw end of ``block_writer``: each block the buffer above flushes goes to the queue."""

    def __init__(self, blocks: queue.Queue[bytes | None], failed: list[BaseException]) -> None:
        super().__init__()
        self._blocks = blocks
        self._failed = failed
        self.stopped = False

    def writable(self) -> bool:
        return True

    def write(self, data: WriteableBuffer, /) -> int:
        if self._failed:
            raise self._failed[0]
        size = len(memoryview(data))
        if not self.stopped:
            # A copy: the buffer above reuses its memory once this returns.
            self._blocks.put(bytes(data))
        return size


@contextmanager
def block_writer(sink: HashingGzipWriter, *, name: str) -> Iterator[BinaryIO]:
    """A binary file for a driver that writes one row per call; ``sink`` gets whole blocks, in another thread.

    The rows land in a C-level buffer of ``CHUNK`` bytes; each full buffer is
    handed to a thread that hashes, compresses and writes it. An error there
    (a full disk) is raised here, in place of whatever the driver made of it.
    """
    blocks: queue.Queue[bytes | None] = queue.Queue(maxsize=QUEUED_BLOCKS)
    failed: list[BaseException] = []

    def pump() -> None:
        while (block := blocks.get()) is not None:
            if failed:
                continue  # keep taking blocks so the driver's thread never waits on a dead pump
            try:
                sink.write(block)
            except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread below
                failed.append(exc)

    worker = threading.Thread(target=pump, name=name, daemon=True)
    worker.start()
    handoff = _Handoff(blocks, failed)
    out = io.BufferedWriter(handoff, CHUNK)

    def stop() -> None:
        handoff.stopped = True
        blocks.put(None)
        worker.join()

    try:
        yield out  # type: ignore[misc]
        out.flush()
    except BaseException:
        stop()
        if failed:
            raise failed[0] from None
        raise
    stop()
    if failed:
        raise failed[0]


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
        self._zip = deflate.decompressobj()
        self._content = hashlib.sha256()
        self._file = hashlib.sha256()
        self._buffer = b""
        self._pos = 0  # how much of _buffer was handed out
        self._eof = False
        self.rows = 0
        self.content_bytes = 0
        self.file_bytes = 0

    def _fill(self) -> None:
        if self._pos >= len(self._buffer) and not self._eof:
            self._buffer, self._pos = self.next_block(), 0
            self.report()

    def next_block(self) -> bytes:
        """The next block of decompressed content, hashed and counted; b"" at the end.

        Progress is not reported here (``ReadAhead`` calls this from its own thread).
        """
        while not self._eof:
            if self._zip.eof:
                # The member ended: whatever follows must be nothing at all.
                rest = self._zip.unused_data + self._read_raw(-1)
                self._eof = True
                if rest:
                    raise zlib.error(f"{len(rest)} unexpected bytes after the end of the compressed data")
                break
            if self._zip.unconsumed_tail:
                data = deflate.decompress(self._zip, self._zip.unconsumed_tail, CHUNK)
            else:
                compressed = self._read_raw(CHUNK)
                if not compressed:
                    raise TruncatedStream("the file ends before its compressed data does (truncated)")
                data = deflate.decompress(self._zip, compressed, CHUNK)
            if data:
                self._content.update(data)
                self.content_bytes += len(data)
                self.rows += data.count(b"\n")
                return data
        return b""

    def _read_raw(self, size: int) -> bytes:
        data = self._raw.read(size)
        if data:
            self._file.update(data)
            self.file_bytes += len(data)
        return data

    def report(self, rows: int | None = None) -> None:
        """Call the progress callback with ``rows`` (default: the rows read so far)."""
        if self._on_rows is not None:
            self._on_rows(self.rows if rows is None else rows)

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            parts: list[bytes] = []
            while True:
                part = self.read(CHUNK)
                if not part:
                    return b"".join(parts)
                parts.append(part)
        self._fill()
        buf, pos = self._buffer, self._pos
        end = min(pos + size, len(buf))
        self._pos = end
        return buf if pos == 0 and end == len(buf) else buf[pos:end]

    def readline(self) -> bytes:
        """One line including its newline ('' at the end)."""
        parts: list[bytes] = []
        while True:
            self._fill()
            buf, pos = self._buffer, self._pos
            if pos >= len(buf):
                return b"".join(parts)
            cut = buf.find(b"\n", pos)
            if cut >= 0:
                parts.append(buf[pos : cut + 1])
                self._pos = cut + 1
                return b"".join(parts)
            parts.append(buf[pos:])
            self._pos = len(buf)

    def lines(self) -> Iterator[bytes]:
        """Every remaining line, without its newline; for the row codecs.

        Splits a whole block at a time rather than searching line by line;
        only a line that spans two blocks goes through ``readline``.
        """
        while True:
            self._fill()
            buf, pos = self._buffer, self._pos
            if pos >= len(buf):
                return
            last = buf.rfind(b"\n", pos)
            if last < 0:
                yield self.readline().rstrip(b"\n")
                continue
            self._pos = last + 1
            yield from buf[pos:last].split(b"\n")

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


class ReadAhead:
    """A read-only file over a ``HashingGzipReader`` that decompresses and hashes in a second thread.

    For a driver that asks for blocks (``COPY FROM``'s ``read(size)``): while
    the driver sends one block, the next is read, decompressed and hashed.
    The reader's progress callback still runs in the caller's thread. Use as
    a context manager; when it ends, the reader's ``summary()`` covers
    everything read so far (at the end of the data, the whole file).
    """

    def __init__(self, reader: HashingGzipReader) -> None:
        self._reader = reader
        self._blocks: queue.Queue[tuple[bytes, int] | BaseException] = queue.Queue(maxsize=QUEUED_BLOCKS)
        self._stop = threading.Event()
        self._block = b""
        self._pos = 0
        self._done = False
        self._worker = threading.Thread(target=self._pump, name="baselinr-restore-read", daemon=True)

    def __enter__(self) -> ReadAhead:
        self._worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        while self._worker.is_alive():
            try:
                self._blocks.get(timeout=0.05)  # unblock a worker waiting to hand over a block
            except queue.Empty:
                pass
        self._worker.join()

    def _put(self, item: tuple[bytes, int] | BaseException) -> bool:
        while not self._stop.is_set():
            try:
                self._blocks.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _pump(self) -> None:
        try:
            while True:
                block = self._reader.next_block()
                if not self._put((block, self._reader.rows)) or not block:
                    return
        except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread by read()
            self._put(exc)

    def _next(self) -> None:
        item = self._blocks.get()
        if isinstance(item, BaseException):
            self._done = True
            raise item
        self._block, rows = item
        self._pos = 0
        self._done = not self._block
        self._reader.report(rows)

    def empty(self) -> bool:
        """Whether nothing at all is left to read (waits for the next block if need be)."""
        if self._pos >= len(self._block) and not self._done:
            self._next()
        return self._pos >= len(self._block)

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            parts: list[bytes] = []
            while part := self.read(CHUNK):
                parts.append(part)
            return b"".join(parts)
        if self._pos >= len(self._block) and not self._done:
            self._next()
        buf, pos = self._block, self._pos
        end = min(pos + size, len(buf))
        self._pos = end
        return buf if pos == 0 and end == len(buf) else buf[pos:end]
