"""Portable backup and restore of Baselinr's storage tables (``baselinr backup …``).

The public surface is re-exported here once; see ``api`` for the functions,
``results`` for what they return and ``errors`` for what they raise. Module
roles: ``manifest`` (the format), ``store`` (where backups live, atomic
publish), ``writer`` / ``reader`` / ``restore`` (the work), ``crossload`` /
``convert`` / ``normal`` (a backup into another dialect, checked), ``move``
(``baselinr migrate move``), ``codecs`` (one
class per dialect: PostgreSQL ``COPY`` in ``pg_copy``, streamed typed rows
in ``rows`` / ``values``), ``streams`` (gzip + checksums), ``progress``.
"""

from baselinr.backup.api import create_backup, list_backups, move_database, prune_backups, restore_backup, verify_backup
from baselinr.backup.errors import BackupError, MoveUnverified, RestoreFailed, RestoreRefused
from baselinr.backup.results import CreateResult, ListResult, MoveResult, PruneResult, RestoreResult, VerifyResult

__all__ = [
    "BackupError",
    "CreateResult",
    "ListResult",
    "MoveResult",
    "MoveUnverified",
    "PruneResult",
    "RestoreFailed",
    "RestoreRefused",
    "RestoreResult",
    "VerifyResult",
    "create_backup",
    "list_backups",
    "move_database",
    "prune_backups",
    "restore_backup",
    "verify_backup",
]
