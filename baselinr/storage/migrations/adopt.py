"""Adopt a database that Baselinr's profiler created: find what is missing
and record versions truthfully.

Called by ``MigrationManager.status``, ``validate``, ``repair`` and
``baseline``. Baselinr's profiler creates its core tables itself and, on a
fresh database, stamps ``baselinr_schema_version`` with one row (version 7,
"Initial schema version", ``schema.sql``) without running migrations 2-7, so
such a database lacks some of their tables, columns and indexes. Rows the
engine did not write are recognised by having neither a checksum nor an
``applied_by``. For each such version, the live schema is compared with
that version's model operations; only additive DDL (create a missing table,
column or index) is planned, never anything that touches data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from baselinr.storage.migrations.results import AdoptedVersion, HistoryRow
from baselinr.storage.model import AddColumn, CreateIndex, CreateTable, Names, Table
from baselinr.storage.version_table import APPLIED, PROFILER_COLUMNS, VERSION_TABLE_NAME

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from baselinr.storage.dialects import Dialect
    from baselinr.storage.migrations.chain import Chain

ADOPTED_BY = "baselinr migrate repair"
BASELINED_BY = "baselinr migrate baseline"


def unverified(rows: list[HistoryRow]) -> list[HistoryRow]:
    """Applied rows another writer (Baselinr's profiler) recorded without running the migration."""
    return [r for r in rows if r.status == APPLIED and r.checksum is None and r.applied_by is None]


def verified_versions(rows: list[HistoryRow]) -> set[int]:
    return {r.version for r in rows if r.status == APPLIED and r.checksum is not None}


def versions_to_adopt(rows: list[HistoryRow]) -> list[int]:
    """Versions up to the highest unverified one that the engine has not recorded itself."""
    stamped = unverified(rows)
    if not stamped:
        return []
    top = max(r.version for r in stamped)
    done = verified_versions(rows)
    return [v for v in range(1, top + 1) if v not in done]


def note(rows: list[HistoryRow]) -> str:
    """The profiler's original rows, kept in the description of the versions that replace them."""
    return "; ".join(
        f"stamped v{r.version} as '{r.description or ''}' ({r.migration_script or 'no script'}) "
        f"at {r.applied_at or 'unknown time'}"
        for r in rows
    )


def is_version_table_column(message: str) -> bool:
    """A difference in the engine's own bookkeeping columns, which every write adds first."""
    prefix = f"Column {VERSION_TABLE_NAME}."
    return message.startswith(prefix) and message[len(prefix) :].split()[0] not in PROFILER_COLUMNS


def is_additive(message: str) -> bool:
    """A difference ``repair`` fixes by creating something (see ``plan``)."""
    return message.endswith(" is missing") and message.startswith(("Table ", "Column ", "Index "))


class _Live:
    """What exists, read once and updated as planned DDL would change it."""

    def __init__(self, conn: Connection) -> None:
        from sqlalchemy import inspect

        self._insp: Any = inspect(conn)
        self.tables = {n.lower() for n in self._insp.get_table_names()}
        self._columns: dict[str, set[str]] = {}
        self._indexes: dict[str, set[str]] = {}

    def columns(self, table: str) -> set[str]:
        key = table.lower()
        if key not in self._columns:
            self._columns[key] = {c["name"].lower() for c in self._insp.get_columns(table)} if key in self.tables else set()
        return self._columns[key]

    def created(self, physical: str, table: Table) -> None:
        key = physical.lower()
        self.tables.add(key)
        self._columns[key] = {c.name.lower() for c in table.columns}
        self._indexes[key] = {i.name.lower() for i in table.indexes}

    def indexes(self, table: str) -> set[str]:
        key = table.lower()
        if key not in self._indexes:
            found = self._insp.get_indexes(table) if key in self.tables else []
            self._indexes[key] = {i["name"].lower() for i in found if i.get("name")}
        return self._indexes[key]


def plan(conn: Connection, chain: Chain, versions: list[int], dialect: Dialect, names: Names) -> list[AdoptedVersion]:
    """For each version, the DDL that creates what its operations made and the database lacks."""
    live = _Live(conn)
    planned = []
    for v in versions:
        m = chain.get(v)
        statements: list[str] = []
        created: list[str] = []
        for op in m.operations:
            if isinstance(op, CreateTable):
                physical = names(op.table.name)
                if physical.lower() not in live.tables:
                    statements += op.up(dialect, names)
                    created.append(f"table {physical}")
                    live.created(physical, op.table)
                    continue
                for col in op.table.columns:
                    _add_column(AddColumn(op.table.name, col), live, dialect, names, statements, created)
                for index in op.table.indexes:
                    _add_index(CreateIndex(index), live, dialect, names, statements, created)
            elif isinstance(op, AddColumn):
                _add_column(op, live, dialect, names, statements, created)
            elif isinstance(op, CreateIndex):
                _add_index(op, live, dialect, names, statements, created)
        planned.append(AdoptedVersion(v, m.description, created, statements))
    return planned


def _add_column(op: AddColumn, live: _Live, dialect: Dialect, names: Names, statements: list[str], created: list[str]) -> None:
    physical = names(op.table)
    if op.column.name.lower() in live.columns(physical):
        return
    statements += op.up(dialect, names)
    created.append(f"column {physical}.{op.column.name}")
    live.columns(physical).add(op.column.name.lower())


def _add_index(op: CreateIndex, live: _Live, dialect: Dialect, names: Names, statements: list[str], created: list[str]) -> None:
    physical = names(op.index.table)
    if not dialect.supports_indexes or op.index.name.lower() in live.indexes(physical):
        return
    statements += op.up(dialect, names)
    created.append(f"index {op.index.name} on {physical}")
    live.indexes(physical).add(op.index.name.lower())
