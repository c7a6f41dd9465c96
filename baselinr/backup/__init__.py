"""Portable backup and restore of Baselinr's storage tables (``baselinr backup …``).

The public surface is re-exported here once; see ``api`` for the functions,
``results`` for what they return and ``errors`` for what they raise. Module
roles: ``manifest`` (the format), ``store`` (where backups live, atomic
publish), ``writer`` / ``reader`` / ``restore`` (the work), ``codecs`` (one
class per dialect: PostgreSQL ``COPY`` in ``pg_copy``, streamed typed rows
in ``rows`` / ``values``), ``streams`` (gzip + checksums), ``progress``.
"""

from baselinr.backup.api import create_backup, list_backups, prune_backups, restore_backup, verify_backup
from baselinr.backup.errors import BackupError, RestoreFailed, RestoreRefused
from baselinr.backup.results import CreateResult, ListResult, PruneResult, RestoreResult, VerifyResult

__all__ = [
    "BackupError",
    "CreateResult",
    "ListResult",
    "PruneResult",
    "RestoreFailed",
    "RestoreRefused",
    "RestoreResult",
    "VerifyResult",
    "create_backup",
    "list_backups",
    "prune_backups",
    "restore_backup",
    "verify_backup",
]
