"""Zero-copy Snowflake backups: Baselinr's tables cloned inside the warehouse.

Called by ``baselinr backup clone create|list|restore|drop`` (``baselinr.cli.backup_clone``)
and by library users. ``CREATE TABLE … CLONE`` copies no data (Snowflake
shares the micro-partitions until either side changes), so a backup of any
size takes seconds. The clones live in the schema ``BASELINR_BACKUPS`` of the
same database, one table per Baselinr table, named ``<backup>__<table>``.
Create, restore and drop hold the migration lock, so no migration runs
meanwhile. Restoring replaces each table with a ``CLONE`` of its copy, and drops Baselinr tables the backup did not have
(created by a later migration), so data and schema version match again.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from baselinr.backup.tables import baselinr_tables
from baselinr.config import Settings
from baselinr.errors import UsageError
from baselinr.storage.database import Database

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

BACKUP_SCHEMA = "BASELINR_BACKUPS"
SEPARATOR = "__"
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,80}")


@dataclass(frozen=True)
class CloneBackup:
    name: str
    tables: list[str]
    statements: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_name(name: str) -> str:
    if not _NAME.fullmatch(name) or SEPARATOR in name:
        raise UsageError(
            f"Invalid clone backup name {name!r}",
            hint="Use letters, digits and single underscores, starting with a letter (e.g. before_v11).",
        )
    return name.lower()


def _database(settings: Settings, lock_timeout: float) -> Database:
    db = Database.from_settings(settings, lock_timeout=lock_timeout)
    if db.settings.type != "snowflake":
        raise UsageError(
            f"Clone backups are a Snowflake feature; {db.settings.describe()} is {db.settings.type}",
            hint="Use 'baselinr backup create --dest DIR' (the portable format) instead.",
        )
    return db


def _where(settings: Settings) -> tuple[str, str]:
    c = settings.storage.connection
    return c.database, c.schema or "PUBLIC"


def create_sql(database: str, schema: str, name: str, table: str) -> str:
    return f"CREATE TABLE {database}.{BACKUP_SCHEMA}.{name}{SEPARATOR}{table} CLONE {database}.{schema}.{table}"


def restore_sql(database: str, schema: str, name: str, table: str) -> list[str]:
    # DROP then CLONE rather than CREATE OR REPLACE … CLONE: the same on Snowflake, and the emulator lacks the latter.
    return [
        f"DROP TABLE IF EXISTS {database}.{schema}.{table}",
        f"CREATE TABLE {database}.{schema}.{table} CLONE {database}.{BACKUP_SCHEMA}.{name}{SEPARATOR}{table}",
    ]


def _backups(conn: Connection, database: str) -> dict[str, list[str]]:
    from sqlalchemy import text

    rows = conn.execute(
        text(f"SELECT table_name FROM {database}.information_schema.tables WHERE table_schema = :s ORDER BY table_name"),
        {"s": BACKUP_SCHEMA},
    ).fetchall()
    found: dict[str, list[str]] = {}
    for (table,) in rows:
        backup, sep, source = str(table).lower().partition(SEPARATOR)
        if sep:
            found.setdefault(backup, []).append(source)
    return found


def create_clone(settings: Settings, name: str, *, lock_timeout: float = 60.0) -> CloneBackup:
    """Clone every Baselinr table (and the version table) under the backup ``name``."""
    name = _check_name(name)
    db = _database(settings, lock_timeout)
    database, schema = _where(settings)
    try:
        with db.locked(), db.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            if name in _backups(conn, database):
                raise UsageError(f"Clone backup {name} already exists", hint="Choose another name, or drop it first.")
            tables = baselinr_tables(conn, extra=(settings.storage.runs_table, settings.storage.results_table))
            if not tables:
                raise UsageError(f"Nothing to back up: {db.settings.describe()} has no baselinr_* tables")
            # Qualified names throughout: CREATE SCHEMA also switches the session's schema.
            statements = [f"CREATE SCHEMA IF NOT EXISTS {database}.{BACKUP_SCHEMA}"]
            statements += [create_sql(database, schema, name, t.lower()) for t in tables]
            for sql in statements:
                conn.exec_driver_sql(sql)
        return CloneBackup(name, [t.lower() for t in tables], statements)
    finally:
        db.close()


def list_clones(settings: Settings) -> list[CloneBackup]:
    """Every clone backup of this database, by name."""
    db = _database(settings, 60.0)
    database, _ = _where(settings)
    try:
        with db.connect() as conn:
            return [CloneBackup(n, sorted(t)) for n, t in sorted(_backups(conn, database).items())]
    finally:
        db.close()


def restore_clone(settings: Settings, name: str, *, lock_timeout: float = 60.0) -> CloneBackup:
    """Replace Baselinr's tables with the clones of backup ``name``."""
    name = _check_name(name)
    db = _database(settings, lock_timeout)
    database, schema = _where(settings)
    try:
        with db.locked(), db.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            tables = _backups(conn, database).get(name)
            if not tables:
                raise UsageError(f"No clone backup named {name}", hint="See 'baselinr backup clone list'.")
            extra = (settings.storage.runs_table, settings.storage.results_table)
            live = [t.lower() for t in baselinr_tables(conn, extra=extra)]
            statements = [sql for t in tables for sql in restore_sql(database, schema, name, t)]
            statements += [f"DROP TABLE {database}.{schema}.{t}" for t in live if t not in tables]
            for sql in statements:
                conn.exec_driver_sql(sql)
        return CloneBackup(name, sorted(tables), statements)
    finally:
        db.close()


def drop_clone(settings: Settings, name: str, *, lock_timeout: float = 60.0) -> CloneBackup:
    """Drop the clones of backup ``name`` (their storage is freed once no table shares it)."""
    name = _check_name(name)
    db = _database(settings, lock_timeout)
    database, _ = _where(settings)
    try:
        with db.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            tables = _backups(conn, database).get(name)
            if not tables:
                raise UsageError(f"No clone backup named {name}", hint="See 'baselinr backup clone list'.")
            statements = [f"DROP TABLE {database}.{BACKUP_SCHEMA}.{name}{SEPARATOR}{t}" for t in tables]
            for sql in statements:
                conn.exec_driver_sql(sql)
        return CloneBackup(name, sorted(tables), statements)
    finally:
        db.close()
