"""Read a backup back: open a table's rows and check counts and checksums against the manifest.

Used by ``api.verify_backup`` (the manifest against the schema model, then
every table, every byte) and by ``restore``, which checks every file before
it touches the target and every byte again as it loads it: in full where a
restore is not one transaction, and where it is, only the stored bytes
(size and SHA-256, ``contents=False``: no decompression), because there the
rows, content checksum and size are checked while the rows stream in and
any difference rolls the whole restore back. A missing, truncated or
altered file is reported per table; nothing here writes.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from baselinr.backup.files import BackupFiles, as_files
from baselinr.backup.manifest import Manifest, TableEntry
from baselinr.backup.progress import ProgressCallback
from baselinr.backup.results import TableCheck, VerifyResult
from baselinr.backup.streams import CHUNK, HashingGzipReader, StreamSummary, TruncatedStream
from baselinr.backup.trust import check_manifest

if TYPE_CHECKING:
    import os

    from baselinr.storage.migrations.chain import Chain

    Source = BackupFiles | str | os.PathLike[str]


@contextmanager
def open_table(
    path: Source, entry: TableEntry, progress: ProgressCallback | None = None, phase: str = "verify"
) -> Iterator[HashingGzipReader]:
    def report(n: int) -> None:
        if progress is not None:
            progress(phase, entry.name, n, entry.rows)

    with as_files(path).open(entry.file) as f:
        yield HashingGzipReader(f, on_rows=report)


def mismatch(entry: TableEntry, s: StreamSummary) -> str | None:
    """What differs between a table file as read and its manifest entry, if anything."""
    if s.sha256 != entry.sha256 or s.file_bytes != entry.bytes:
        return f"file checksum differs from the manifest ({s.file_bytes} bytes read, {entry.bytes} expected)"
    if s.rows != entry.rows:
        return f"{s.rows} rows read, {entry.rows} expected"
    if s.content_sha256 != entry.content_sha256:
        return "content checksum differs from the manifest"
    return None


def read_error(exc: BaseException) -> str:
    if isinstance(exc, TruncatedStream):
        return f"truncated: {exc}"
    if isinstance(exc, zlib.error):
        return f"corrupt compressed data: {exc}"
    if isinstance(exc, FileNotFoundError):
        return "file is missing"
    if isinstance(exc, OSError):
        return f"cannot read: {exc.strerror or exc}"
    return f"{exc.__class__.__name__}: {exc}"


def check_table(path: Source, entry: TableEntry, progress: ProgressCallback | None = None) -> TableCheck:
    try:
        with open_table(path, entry, progress) as reader:
            reader.drain()
            s = reader.summary()
    except (OSError, zlib.error, TruncatedStream, EOFError) as exc:
        return TableCheck(entry.name, False, None, entry.rows, read_error(exc))
    problem = mismatch(entry, s)
    return TableCheck(entry.name, problem is None, s.rows, entry.rows, problem)


def check_file(path: Source, entry: TableEntry) -> TableCheck:
    """The stored bytes of one table file against its manifest entry: size and SHA-256, nothing decompressed."""
    digest = hashlib.sha256()
    size = 0
    try:
        with as_files(path).open(entry.file) as f:
            while block := f.read(CHUNK):
                digest.update(block)
                size += len(block)
    except OSError as exc:
        return TableCheck(entry.name, False, None, entry.rows, read_error(exc))
    if size < entry.bytes:
        return TableCheck(entry.name, False, None, entry.rows, f"truncated: {size} bytes, {entry.bytes} expected")
    if size != entry.bytes or digest.hexdigest() != entry.sha256:
        problem = f"file checksum differs from the manifest ({size} bytes read, {entry.bytes} expected)"
        return TableCheck(entry.name, False, None, entry.rows, problem)
    return TableCheck(entry.name, True, entry.rows, entry.rows)


def verify(
    path: Source,
    chain: Chain,
    progress: ProgressCallback | None = None,
    manifest: Manifest | None = None,
    *,
    contents: bool = True,
) -> VerifyResult:
    """The manifest checked against ``chain``'s model, then every table file against the manifest.

    ``contents=False`` checks each file's stored bytes only (see the module's docstring).
    """
    from baselinr.backup.codecs import encoding_of

    files = as_files(path)
    manifest = manifest or files.read_manifest()
    trusted = check_manifest(manifest, chain, encoding=encoding_of(manifest.dialect))
    if contents:
        checks = [check_table(files, t, progress) for t in manifest.tables]
    else:
        checks = [check_file(files, t) for t in manifest.tables]
    problems = [p.message for p in trusted.problems] + [f"{c.name}: {c.problem}" for c in checks if not c.ok]
    return VerifyResult(
        name=manifest.name,
        path=files.location,
        ok=not problems,
        tables=checks,
        problems=problems,
        schema_version=manifest.schema_version,
        rows=manifest.rows,
        manifest_integrity=trusted.integrity,
        manifest_sha256=trusted.sha256,
        manifest_problems=trusted.problems,
        excluded=[*manifest.excluded_tables, *manifest.excluded_columns],
        kept_columns=list(manifest.kept_columns),
    )
