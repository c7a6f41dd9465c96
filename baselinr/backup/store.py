"""Where backups live: a directory of backup directories (local disk or a mounted volume).

Used by ``writer`` (begin, publish, abort), ``api`` (list, prune, resolve a
backup reference) and ``reader``/``restore`` (open table files). Layout::

    <dest>/baselinr-prod-v3-20260509T073512Z/manifest.json
    <dest>/baselinr-prod-v3-20260509T073512Z/baselinr_results.copy.gz
    <dest>/.baselinr-prod-v4-20260510T010000Z.partial/     (being written, or killed)

A backup is written under the hidden ``.<name>.partial`` name, its files
and the directory are fsynced, and one ``rename`` publishes it; so a reader
sees a whole backup or none, and an interrupted one is only ever a
``.partial`` directory, listed as such and never as valid. A backup holds a
whole database, so it is owner-only: directories 0700, files 0600 (and a
destination this class creates is 0700 too). A destination that cannot be
written (permissions, a read-only or full file system) is a
``DestinationError`` with one line saying which. Object stores (S3 and the
like, which have no atomic rename) publish by writing the manifest last
instead: ``s3store.S3Store``, which has the same interface; ``open_store``
and ``resolve`` pick one by the destination's scheme.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol, TypeAlias, TypeVar

from baselinr.backup.errors import BackupError, DestinationError
from baselinr.backup.files import BackupFiles, LocalFiles
from baselinr.backup.manifest import MANIFEST_FILE, Manifest, parse_manifest
from baselinr.backup.trust import INTEGRITY_MISMATCH, INTEGRITY_MISSING, integrity
from baselinr.errors import UsageError

if TYPE_CHECKING:
    from baselinr.backup.s3 import ObjectStoreOptions
    from baselinr.backup.s3store import S3Store

PARTIAL_SUFFIX = ".partial"
# A manifest lists tables and columns: megabytes at most. Anything larger is not read into memory.
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
DIR_MODE = 0o700
FILE_MODE = 0o600

_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,199}")
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_NO_WRITE = {errno.EACCES, errno.EPERM, errno.EROFS}

COMPLETE = "complete"
PARTIAL = "partial"
INVALID = "invalid"


W = TypeVar("W")


class BackupStore(Protocol[W]):
    """What ``writer`` needs of a destination: ``LocalStore`` (W is a work directory) or ``S3Store``."""

    def begin(self, name: str) -> W: ...

    def create_file(self, work: W, file: str) -> AbstractContextManager[BinaryIO]: ...

    def publish(self, work: W, name: str) -> Path | str: ...

    def abort(self, work: W) -> None: ...

    def destination_error(self, exc: OSError) -> DestinationError | None: ...


@dataclass(frozen=True)
class Entry:
    """One thing found in a destination: a complete backup, a partial one, or junk."""

    name: str
    path: Path | str  # a directory, or an s3:// URL
    status: str  # complete | partial | invalid
    manifest: Manifest | None = None
    problem: str | None = None
    last_activity: float | None = None  # when anything was last written to it (seconds since the epoch)


def valid_name(name: str, *, strict: bool = True) -> bool:
    """Whether ``name`` can name a backup; ``strict`` raises a ``UsageError`` instead of returning False."""
    if _NAME.fullmatch(name):
        return True
    if strict:
        raise UsageError(
            f"Invalid backup name {name[:80]!r}", hint="Use letters, digits, '.', '_' and '-', not starting with '.'."
        )
    return False


def check_entry(name: str, path: Path | str, manifest: Manifest, activity: float | None = None) -> Entry:
    """A backup whose manifest parsed: complete, or invalid if the manifest says otherwise or was changed."""
    if not manifest.complete:
        return Entry(name, path, INVALID, manifest, "manifest says the backup is incomplete", activity)
    if integrity(manifest) in (INTEGRITY_MISMATCH, INTEGRITY_MISSING):
        return Entry(name, path, INVALID, manifest, "manifest.json was changed after it was written", activity)
    return Entry(name, path, COMPLETE, manifest, last_activity=activity)


class LocalStore:
    """A destination directory on a local or mounted file system."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        text = os.fspath(root)
        if "://" in text and not text.startswith("file://"):
            scheme = text.split("://", 1)[0]
            raise UsageError(
                f"Backup destination scheme '{scheme}://' is not supported yet",
                hint="Use a local directory, a mounted volume or s3://BUCKET/PREFIX.",
            )
        self.root = Path(text.removeprefix("file://"))

    @property
    def location(self) -> str:
        return str(self.root)

    # --- writing ---------------------------------------------------------------

    def partial_path(self, name: str) -> Path:
        return self.root / f".{name}{PARTIAL_SUFFIX}"

    def begin(self, name: str) -> Path:
        """Create the hidden work directory for backup ``name`` (owner-only)."""
        valid_name(name)
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        except OSError as exc:
            raise self.destination_error(exc) or UsageError(
                f"Cannot create backup destination {self.root}: {exc.strerror or exc}"
            ) from None
        if not self.root.is_dir():
            raise UsageError(f"Backup destination {self.root} is not a directory")
        if (self.root / name).exists():
            raise UsageError(f"A backup named {name} already exists in {self.root}")
        work = self.partial_path(name)
        try:
            work.mkdir(mode=DIR_MODE)
            os.chmod(work, DIR_MODE)  # exactly 0700, whatever the umask
        except FileExistsError:
            raise UsageError(f"Another backup named {name} is being written in {self.root}") from None
        except OSError as exc:
            raise self.destination_error(exc) or UsageError(
                f"Cannot write to backup destination {self.root}: {exc.strerror or exc}"
            ) from None
        return work

    @contextmanager
    def create_file(self, work: Path, file: str) -> Iterator[BinaryIO]:
        """A new owner-only file in the work directory, flushed to disk when the block ends."""
        fd = os.open(work / file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            os.fchmod(fd, FILE_MODE)
            yield f
            f.flush()
            os.fsync(f.fileno())

    def destination_error(self, exc: OSError) -> DestinationError | None:
        """The one-line error for a destination that cannot take the backup, or None for any other OSError."""
        if exc.errno in _NO_SPACE:
            return DestinationError(
                f"Backup destination {self.root} is out of space ({exc.strerror or exc})",
                hint="Nothing was published; free space there or choose another --dest.",
            )
        if exc.errno in _NO_WRITE:
            return DestinationError(
                f"Cannot write to backup destination {self.root} ({exc.strerror or exc})",
                hint="Nothing was published; check its owner and permissions, or choose another --dest.",
            )
        return None

    def publish(self, work: Path, name: str) -> Path:
        """Make a finished work directory visible under its final name, atomically."""
        _fsync_dir(work)
        final = self.root / name
        os.rename(work, final)
        _fsync_dir(self.root)
        return final

    def abort(self, work: Path) -> None:
        shutil.rmtree(work, ignore_errors=True)

    # --- reading ---------------------------------------------------------------

    def entries(self) -> list[Entry]:
        """Every backup in the destination, oldest first; partial and invalid ones flagged."""
        if not self.root.is_dir():
            raise UsageError(f"Backup destination {self.root} does not exist or is not a directory")
        found: list[Entry] = []
        for child in self.root.iterdir():
            if not child.is_dir():
                continue
            if child.name.startswith(".") and child.name.endswith(PARTIAL_SUFFIX):
                name = child.name[1 : -len(PARTIAL_SUFFIX)]
                problem = "incomplete: never finished (interrupted or still running)"
                found.append(Entry(name, child, PARTIAL, problem=problem, last_activity=_newest_mtime(child)))
                continue
            if child.name.startswith("."):
                continue
            if not (child / MANIFEST_FILE).exists():
                if child.name.startswith("baselinr-"):
                    found.append(Entry(child.name, child, INVALID, problem="no manifest.json"))
                continue
            try:
                manifest = read_manifest(child)
            except BackupError as exc:
                found.append(Entry(child.name, child, INVALID, problem=exc.message))
                continue
            found.append(check_entry(child.name, child, manifest))
        return sorted(found, key=_age_key)

    def complete(self) -> list[Entry]:
        return [e for e in self.entries() if e.status == COMPLETE]

    def remove(self, entry: Entry) -> None:
        # Rename first, so a half-deleted backup is never taken for a whole one.
        doomed = self.root / f".{entry.name}.deleting"
        os.rename(entry.path, doomed)
        shutil.rmtree(doomed)

    def resolve(self, ref: str) -> LocalFiles:
        return LocalFiles(resolve(ref, str(self.root)))


Store: TypeAlias = "LocalStore | S3Store"


def open_store(dest: str, options: ObjectStoreOptions | None = None) -> Store:
    """The store for ``dest``: ``s3://bucket/prefix`` is object storage, anything else a directory."""
    from baselinr.backup.s3 import is_s3

    if is_s3(dest):
        from baselinr.backup.s3store import S3Store

        return S3Store(dest, options)
    return LocalStore(dest)


def resolve_files(ref: str, dest: str | None, options: ObjectStoreOptions | None = None) -> BackupFiles:
    """A backup from a path, an ``s3://`` URL, a name inside ``dest``, or ``latest``."""
    from baselinr.backup.s3 import is_s3

    if is_s3(ref):
        parent, _, name = ref.rstrip("/").rpartition("/")
        return open_store(parent, options).resolve(name)
    if is_s3(dest):
        assert dest is not None
        return open_store(dest, options).resolve(ref)
    return LocalFiles(resolve(ref, dest))


def read_manifest(path: Path) -> Manifest:
    where = str(path)
    try:
        size = (path / MANIFEST_FILE).stat().st_size
        if size > MAX_MANIFEST_BYTES:
            raise BackupError(f"{where}: manifest.json is {size:,} bytes, more than any real backup's manifest")
        text = (path / MANIFEST_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BackupError(
            f"{where} is not a complete backup: it has no manifest.json",
            hint="An interrupted backup has no manifest; take a new backup.",
        ) from None
    except UnicodeDecodeError:
        raise BackupError(f"{where}: manifest.json is not UTF-8 text") from None
    except OSError as exc:
        raise BackupError(f"Cannot read {where}/{MANIFEST_FILE}: {exc.strerror or exc}") from None
    return parse_manifest(text, where)


def resolve(ref: str, dest: str | None) -> Path:
    """A backup directory from a path, a name inside ``dest``, or ``latest``."""
    if ref == "latest":
        if not dest:
            raise UsageError("'latest' needs --dest to say where to look")
        complete = LocalStore(dest).complete()
        if not complete:
            raise BackupError(f"No complete backup in {dest}")
        return Path(complete[-1].path)
    path = Path(ref)
    if not path.exists() and dest and os.sep not in ref:
        path = LocalStore(dest).root / ref
    if not path.exists():
        raise UsageError(f"Backup {ref} not found" + (f" (also looked in {dest})" if dest else ""))
    if path.is_file() and path.name == MANIFEST_FILE:
        path = path.parent
    if not path.is_dir():
        raise UsageError(f"Backup {ref} is not a backup directory")
    return path


def _age_key(e: Entry) -> tuple[str, str]:
    created = e.manifest.created_at if e.manifest else ""
    if not created:
        try:
            created = f"mtime:{Path(e.path).stat().st_mtime:020.6f}"
        except OSError:
            created = ""
    return (created, e.name)


def _newest_mtime(path: Path) -> float | None:
    try:
        return max([path.stat().st_mtime] + [p.stat().st_mtime for p in path.iterdir()])
    except OSError:
        return None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
