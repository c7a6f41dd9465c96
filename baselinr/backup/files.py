"""One backup's files, wherever they are stored: what ``reader`` and ``restore`` read through.

``store.resolve`` and ``s3store.S3Store.resolve`` return a ``BackupFiles``;
``reader`` (verify) and ``restore`` only open files by name and read the
manifest through it, so they do not know whether the backup is a directory
(``LocalFiles``) or objects in a bucket (``s3store.S3Files``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

from baselinr.backup.manifest import Manifest


@runtime_checkable
class BackupFiles(Protocol):
    """The files of one backup: opened by name, the manifest read and checked for shape."""

    @property
    def location(self) -> str:
        """Where the backup is, as a user would name it (a path or an ``s3://`` URL)."""
        ...

    def open(self, file: str) -> AbstractContextManager[BinaryIO]:
        """A file of the backup for reading; a missing file raises ``FileNotFoundError``."""
        ...

    def read_manifest(self) -> Manifest: ...


class LocalFiles:
    """A backup directory on a local or mounted file system."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    @property
    def location(self) -> str:
        return str(self.path)

    @contextmanager
    def open(self, file: str) -> Iterator[BinaryIO]:
        with open(self.path / file, "rb") as f:
            yield f

    def read_manifest(self) -> Manifest:
        from baselinr.backup.store import read_manifest

        return read_manifest(self.path)

    def __str__(self) -> str:
        return self.location


def as_files(source: BackupFiles | str | os.PathLike[str]) -> BackupFiles:
    """``source`` itself, or the directory it names."""
    if isinstance(source, (str, os.PathLike)):
        return LocalFiles(source)
    return source
