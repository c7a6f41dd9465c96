"""Errors raised by backup and restore, placed in the engine's error families.

Raised by the ``baselinr.backup`` modules and caught once by the CLI, like
every ``BaselinrError``:

    BaselinrError
    ├── BackupError              (exit 1)  a backup is incomplete, corrupt or missing
    │   ├── ManifestRejected     (exit 1)  its manifest fails the checks of ``trust``
    │   │                                  (restore refuses before it connects; create
    │   │                                  publishes no backup that would)
    │   ├── BackupDamaged        (exit 1)  a table file differs from its manifest entry
    │   │                                  (restore: found before, or while loading in a
    │   │                                  transaction that is then rolled back)
    │   └── MoveUnverified       (exit 1)  ``migrate move`` loaded the target, and its rows or
    │                                      schema differ from the source's
    ├── UsageError
    │   ├── RestoreRefused       (exit 2)  the restore would be wrong as asked
    │   │                                  (target not empty, backup newer than the code,
    │   │                                  a backup in PostgreSQL's COPY format into another
    │   │                                  dialect, a value the target cannot keep exactly;
    │   │                                  ``migrate move``: the same, and a target that an
    │   │                                  interrupted move left)
    │   └── DestinationError     (exit 2)  ``backup create`` cannot write the destination
    │                                      (permission, read-only, full disk); nothing is published
    └── RestoreFailed            (exit 4)  loading failed; the message says what state
                                           the target database is in
"""

from __future__ import annotations

from baselinr.errors import EXIT_INVALID, EXIT_MIGRATION_FAILED, BaselinrError, UsageError


class BackupError(BaselinrError):
    """A backup cannot be used: incomplete, corrupt, missing or unreadable."""

    exit_code = EXIT_INVALID


class SchemaOutsideModel(BackupError):
    """The database has a ``baselinr_*`` table or a column that no migration made: a backup
    would not hold it, so none is written unless the user excludes it by name (exit 1)."""


class ManifestRejected(BackupError):
    """A backup's manifest differs from the schema model or from itself; it is not used."""


class BackupDamaged(BackupError):
    """A table file is missing, truncated or differs from its manifest entry (size, rows, checksums)."""


class MoveUnverified(BackupError):
    """``migrate move`` finished loading, and the target differs from the source (rows, content, schema)."""


class DestinationError(UsageError):
    """The backup destination cannot be written (permissions, read-only, out of space)."""


class RestoreRefused(UsageError):
    """The restore was not started because it would not do what was asked safely."""


class RestoreFailed(BaselinrError):
    """The restore started and failed; ``message`` says what state the target is in."""

    exit_code = EXIT_MIGRATION_FAILED
