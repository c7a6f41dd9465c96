"""Adopt a database that Baselinr's profiler created: find what is missing
and record versions truthfully.

Called by ``MigrationManager.status``, ``apply``, ``validate``, ``repair``
and ``baseline``. Baselinr's profiler creates its core tables itself and, on
a fresh database, stamps ``baselinr_schema_version`` with one row (version
7, "Initial schema version", ``schema.sql``) without running migrations 2-7;
its own ``migrate`` records later versions the same way; some of its
commands create tables of later versions (``baselinr validate`` makes the
v8 table) in its own shape; and its failed first run on PostgreSQL leaves
empty core tables and no version table at all. Rows the engine did not
write are recognised by having neither a checksum nor an ``applied_by``.

The versions to adopt run from 1 up to the highest of: the highest version
so recorded, and the highest version one of whose tables already exists
without the engine having recorded that version. For each, the live schema
is compared with that version's model operations: what is missing is
created (additive DDL, never anything that touches data), an index on other
columns is rebuilt (it holds no data), and a difference of type or key
refuses the whole adoption before any change (``blocking``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from baselinr.storage.migrations.results import HistoryRow
from baselinr.storage.model import Index, Names, Table
from baselinr.storage.version_table import APPLIED, PROFILER_COLUMNS, VERSION_TABLE_NAME

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from baselinr.storage.dialects import Dialect
    from baselinr.storage.migrations.chain import Chain
    from baselinr.storage.migrations.drift import Difference
    from baselinr.storage.migrations.upkeep_results import AdoptedVersion
    from baselinr.storage.operations import AddColumn, CreateIndex

ADOPTED_BY = "baselinr migrate repair"
BASELINED_BY = "baselinr migrate baseline"


def unverified(rows: list[HistoryRow]) -> list[HistoryRow]:
    """Applied rows another writer (Baselinr's profiler) recorded without running the migration."""
    return [r for r in rows if r.status == APPLIED and r.checksum is None and r.applied_by is None]


def verified_versions(rows: list[HistoryRow]) -> set[int]:
    return {r.version for r in rows if r.status == APPLIED and r.checksum is not None}


def live_tables(conn: Connection, dialect: Dialect | None = None) -> set[str]:
    """Lower-case names of the tables that exist: with the dialect's query where it has one
    (which also runs on the bare driver's connection), else through the inspector."""
    if dialect is not None and dialect.table_names_sql is not None:
        return {str(r[0]).lower() for r in conn.exec_driver_sql(dialect.table_names_sql).fetchall()}
    from baselinr.storage.reflection import table_names

    return {n.lower() for n in table_names(conn)}


def preexisting(rows: list[HistoryRow], chain: Chain, tables: set[str], names: Names) -> dict[int, list[str]]:
    """Versions the engine has not recorded whose tables exist already (created outside the migrations)."""
    from baselinr.storage.operations import CreateTable  # loaded with the chain's migrations that use it

    recorded = {r.version for r in rows}
    found: dict[int, list[str]] = {}
    for v, m in sorted(chain.migrations.items()):
        if v in recorded:
            continue
        there = [names(op.table.name) for op in m.operations if isinstance(op, CreateTable)]
        there = [t for t in there if t.lower() in tables]
        if there:
            found[v] = there
    return found


def versions_to_adopt(rows: list[HistoryRow], existing: dict[int, list[str]] | None = None) -> list[int]:
    """Versions up to the highest stamped or pre-existing one that the engine has not recorded itself."""
    stamped = unverified(rows)
    top = max([r.version for r in stamped] + list(existing or {}), default=0)
    done = verified_versions(rows)
    return [v for v in range(1, top + 1) if v not in done]


def note(rows: list[HistoryRow]) -> str:
    """The profiler's original rows, kept in the description of the versions that replace them."""
    return "; ".join(
        f"stamped v{r.version} as '{r.description or ''}' ({r.migration_script or 'no script'}) "
        f"at {r.applied_at or 'unknown time'}"
        for r in rows
    )


def is_version_table_column(diff: Difference) -> bool:
    """A difference in the engine's own bookkeeping columns, which every write adds first."""
    return diff.table.lower() == VERSION_TABLE_NAME and bool(diff.object) and diff.object not in PROFILER_COLUMNS


def blocking(differences: list[Difference]) -> list[Difference]:
    """Errors that ``repair`` can neither create nor rebuild: the user has to decide."""
    # Here, not at the top: status imports this module, and compares no schema.
    from baselinr.storage.migrations.drift import ADDITIVE, REBUILDABLE

    return [
        d
        for d in differences
        if d.severity == "error" and d.kind not in ADDITIVE and d.kind not in REBUILDABLE and not is_version_table_column(d)
    ]


class _Live:
    """What exists, read once and updated as planned DDL would change it."""

    def __init__(self, conn: Connection) -> None:
        from baselinr.storage.reflection import Reflection, inspector

        raw = inspector(conn)
        names = list(raw.get_table_names())
        self._insp: Any = Reflection(raw, names)
        self.tables = {n.lower() for n in names}
        self._columns: dict[str, dict[str, int | None]] = {}
        self._indexes: dict[str, dict[str, tuple[str, ...]]] = {}

    def lengths(self, table: str) -> dict[str, int | None]:
        """Lower-case column name to its character length (``None`` when not a string)."""
        key = table.lower()
        if key not in self._columns:
            found = self._insp.get_columns(table) if key in self.tables else []
            self._columns[key] = {c["name"].lower(): getattr(c["type"], "length", None) for c in found}
        return self._columns[key]

    def columns(self, table: str) -> set[str]:
        return set(self.lengths(table))

    def created(self, physical: str, table: Table) -> None:
        key = physical.lower()
        self.tables.add(key)
        self._columns[key] = {c.name.lower(): c.type.length for c in table.columns}
        self._indexes[key] = {i.name.lower(): _lower(i.column_names) for i in table.indexes}

    def indexes(self, table: str) -> dict[str, tuple[str, ...]]:
        """Index name to its columns, both lower-case."""
        key = table.lower()
        if key not in self._indexes:
            found = self._insp.get_indexes(table) if key in self.tables else []
            self._indexes[key] = {i["name"].lower(): _lower(i.get("column_names")) for i in found if i.get("name")}
        return self._indexes[key]


def _lower(columns: Any) -> tuple[str, ...]:
    return tuple(str(c).lower() for c in columns or [] if c)


def plan(conn: Connection, chain: Chain, versions: list[int], dialect: Dialect, names: Names) -> list[AdoptedVersion]:
    """For each version, the DDL that creates what its operations made and the database lacks."""
    from baselinr.storage.migrations.upkeep_results import AdoptedVersion
    from baselinr.storage.operations import AddColumn, CreateIndex, CreateTable

    live = _Live(conn)
    planned = []
    for v in versions:
        m = chain.get(v)
        todo = _Todo(live, dialect, names)
        for op in m.operations:
            if isinstance(op, CreateTable):
                physical = names(op.table.name)
                if physical.lower() not in live.tables:
                    todo.statements += op.up(dialect, names)
                    todo.created.append(f"table {physical}")
                    live.created(physical, op.table)
                    continue
                todo.found.append(f"table {physical}")
                for col in op.table.columns:
                    todo.add_column(AddColumn(op.table.name, col))
                for index in op.table.indexes:
                    todo.add_index(CreateIndex(index))
            elif isinstance(op, AddColumn):
                todo.add_column(op)
            elif isinstance(op, CreateIndex):
                todo.add_index(op)
        planned.append(AdoptedVersion(v, m.description, todo.created, todo.statements, todo.found))
    return planned


class _Todo:
    """The statements and notes of one adopted version."""

    def __init__(self, live: _Live, dialect: Dialect, names: Names) -> None:
        self.live, self.dialect, self.names = live, dialect, names
        self.statements: list[str] = []
        self.created: list[str] = []
        self.found: list[str] = []

    def add_column(self, op: AddColumn) -> None:
        physical = self.names(op.table)
        if op.column.name.lower() in self.live.columns(physical):
            return
        self.statements += op.up(self.dialect, self.names)
        self.created.append(f"column {physical}.{op.column.name}")
        self.live.lengths(physical)[op.column.name.lower()] = op.column.type.length

    def add_index(self, op: CreateIndex) -> None:
        physical = self.names(op.index.table)
        if not self.dialect.supports_indexes:
            return
        have = self.live.indexes(physical)
        want = _lower(op.index.column_names)
        present = have.get(op.index.name.lower())
        if present == want or (present is not None and not present):
            return
        index = Index(op.index.name, physical, op.index.columns, op.index.unique)
        if present is not None:
            # Same name, other columns (Baselinr's profiler keys idx_validation_column
            # differently): an index holds no data, so it is rebuilt as the model has it.
            self.statements.append(self.dialect.render_drop_index(index))
            self.created.append(f"index {op.index.name} on {physical} rebuilt on ({', '.join(op.index.column_names)})")
        else:
            self.created.append(f"index {op.index.name} on {physical}")
        self.statements.append(self.dialect.render_index_on_live(index, self.live.lengths(physical)))
        have[op.index.name.lower()] = want
