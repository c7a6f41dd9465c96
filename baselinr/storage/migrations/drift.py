"""Compare the live database with the model expected at a version.

Called by ``MigrationManager.validate``, ``repair`` and ``baseline``. Reads
tables, columns, primary keys, unique keys and indexes through SQLAlchemy's
inspector, all tables at once per kind (``Reflection``: ``get_multi_*``),
with each dialect's reflection quirks handled by its class, and
returns every difference as a typed ``Difference``: missing objects and wrong
types are errors, objects the model does not know are warnings (a raw-SQL
migration may have added them on purpose). Callers decide on ``kind``; text
is rendered from a difference only for output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from baselinr.storage.families import accepts
from baselinr.storage.model import Names, Schema, Table

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from baselinr.storage.dialects import Dialect

# Kinds of difference. Repair creates the ``ADDITIVE`` ones and rebuilds the
# ``REBUILDABLE`` ones (an index holds no data of its own); any other error
# is a shape the user has to decide about.
MISSING_TABLE = "missing_table"
MISSING_COLUMN = "missing_column"
MISSING_INDEX = "missing_index"
COLUMN_TYPE = "column_type"
COLUMN_NULLABLE = "column_nullable"
COLUMN_ORDER = "column_order"
PRIMARY_KEY = "primary_key"
MISSING_UNIQUE = "missing_unique"
INDEX_COLUMNS = "index_columns"
EXTRA_TABLE = "extra_table"
EXTRA_COLUMN = "extra_column"
EXTRA_INDEX = "extra_index"
ADDITIVE = frozenset({MISSING_TABLE, MISSING_COLUMN, MISSING_INDEX})
REBUILDABLE = frozenset({INDEX_COLUMNS})
ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Difference:
    """One way the live schema differs from the model.

    ``table`` is the physical table, ``object`` the column, index or key
    concerned (empty for a table), ``expected`` / ``found`` the two shapes as
    text. ``str()`` is the one-line message ``validate`` prints.
    """

    kind: str
    table: str
    object: str = ""
    expected: str = ""
    found: str = ""
    severity: str = ERROR

    def __str__(self) -> str:
        t, o = self.table, self.object
        messages = {
            MISSING_TABLE: f"Table {t} is missing",
            MISSING_COLUMN: f"Column {t}.{o} is missing",
            MISSING_INDEX: f"Index {o} on {t} ({self.expected}) is missing",
            COLUMN_TYPE: f"Column {t}.{o} is {self.found}, expected {self.expected}",
            COLUMN_NULLABLE: f"Column {t}.{o} allows NULL, expected NOT NULL",
            COLUMN_ORDER: f"Columns of {t} are in the order ({self.found}), expected ({self.expected})",
            PRIMARY_KEY: f"Primary key of {t} is ({self.found}), expected ({self.expected})",
            MISSING_UNIQUE: f"Unique key on {t} ({self.expected}) is missing",
            INDEX_COLUMNS: f"Index {o} on {t} covers ({self.found}), expected ({self.expected})",
            EXTRA_TABLE: (
                f"Table {t} is not part of the schema model at this version: no migration made it, and a backup "
                f"refuses it (declare it in a migration with CREATE TABLE IF NOT EXISTS, or back up with "
                f"--exclude-table {t})"
            ),
            EXTRA_COLUMN: (
                f"Column {t}.{o} is not in the schema model: no migration made it (backups keep it; declare it in a "
                "migration to make it part of the schema)"
            ),
            EXTRA_INDEX: (
                f"Index {o} on {t} is not in the schema model: no migration made it (declare it in a migration, "
                "or drop it)"
            ),
        }
        return messages[self.kind]


def family_of(live_type: Any, dialect: Dialect) -> tuple[str, int | None]:
    """The model family (and string length) of a reflected SQLAlchemy type;
    ``dialect`` reads the types of its driver that are none of SQLAlchemy's."""
    from sqlalchemy import types as t

    if isinstance(live_type, t.Boolean):
        return "boolean", None
    if isinstance(live_type, t.BigInteger):
        return "bigint", None
    if isinstance(live_type, t.Integer):
        return "integer", None
    if isinstance(live_type, t.Float):
        return "float", None
    if isinstance(live_type, t.Numeric):
        # Snowflake reflects INTEGER as NUMBER(38, 0).
        if getattr(live_type, "scale", None) == 0:
            return "bigint", None
        return "decimal", None
    if isinstance(live_type, (t.DateTime, t.Date)):
        return "timestamp", None
    if isinstance(live_type, t.JSON):
        return "json", None
    if isinstance(live_type, t.Text):
        return "text", None
    if isinstance(live_type, t.String):
        length = getattr(live_type, "length", None)
        return ("string", length) if length else ("text", None)
    return dialect.family_of(live_type) or (type(live_type).__name__.lower(), None)


def compare(conn: Connection, model: Schema, exact: bool, dialect: Dialect, names: Names) -> list[Difference]:
    """Every difference between the live schema and ``model``, errors and warnings."""
    from sqlalchemy import inspect

    raw = inspect(conn)
    found: list[Difference] = []
    live_tables = {n.lower(): n for n in raw.get_table_names()}
    expected_physical = {names(logical).lower() for logical in model.tables}
    wanted = [live_tables[names(logical).lower()] for logical in model.tables if names(logical).lower() in live_tables]
    insp = Reflection(raw, wanted)
    for logical, table in sorted(model.tables.items()):
        physical = names(logical)
        live_name = live_tables.get(physical.lower())
        if live_name is None:
            found.append(Difference(MISSING_TABLE, physical))
            continue
        found += _compare_table(conn, insp, live_name, physical, table, exact, dialect)
    for low, live_name in sorted(live_tables.items()):
        if low.startswith("baselinr_") and low not in expected_physical:
            found.append(Difference(EXTRA_TABLE, live_name, severity=WARNING))
    return found


class Reflection:
    """The inspector, with its per-table answers (columns, primary key, indexes, unique
    constraints) fetched for all of ``tables`` in one ``get_multi_*`` call each: one round
    trip per kind where the dialect batches reflection (PostgreSQL), instead of one per
    table. A call with options, or a dialect without the batch methods, asks per table."""

    def __init__(self, insp: Any, tables: list[str]) -> None:
        self._insp = insp
        self._tables = tables
        self._batches: dict[str, dict[str, Any] | None] = {}

    def _one(self, kind: str, table: str, kw: dict[str, Any]) -> Any:
        if not kw and kind not in self._batches:
            try:
                batch = getattr(self._insp, f"get_multi_{kind}")(filter_names=self._tables)
            except NotImplementedError:
                self._batches[kind] = None
            else:
                self._batches[kind] = {name: value for (_schema, name), value in batch.items()}
        batched = None if kw else self._batches.get(kind)
        if batched is not None and table in batched:
            return batched[table]
        return getattr(self._insp, f"get_{kind}")(table, **kw)

    def get_columns(self, table: str, **kw: Any) -> Any:
        return self._one("columns", table, kw)

    def get_pk_constraint(self, table: str, **kw: Any) -> Any:
        return self._one("pk_constraint", table, kw)

    def get_indexes(self, table: str, **kw: Any) -> Any:
        return self._one("indexes", table, kw)

    def get_unique_constraints(self, table: str, **kw: Any) -> Any:
        return self._one("unique_constraints", table, kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._insp, name)


def split(differences: list[Difference]) -> tuple[list[str], list[str]]:
    """(errors, warnings) as the messages ``validate`` prints."""
    errors = [str(d) for d in differences if d.severity == ERROR]
    warnings = [str(d) for d in differences if d.severity == WARNING]
    return errors, warnings


def _cols(columns: Any) -> tuple[str, ...]:
    return tuple(str(c).lower() for c in columns or [] if c)


def _compare_table(
    conn: Connection, insp: Any, live_name: str, physical: str, table: Table, exact: bool, dialect: Dialect
) -> list[Difference]:
    out: list[Difference] = []
    loose = ERROR if exact else WARNING
    reflected = insp.get_columns(live_name)
    live_cols = {c["name"].lower(): c for c in reflected}
    declared = dialect.declared_families(conn, live_name)
    for col in table.columns:
        live = live_cols.get(col.name.lower())
        if live is None:
            out.append(Difference(MISSING_COLUMN, physical, col.name))
            continue
        family, length = family_of(live["type"], dialect)
        family = declared.get(col.name.lower(), family)
        want = col.type
        if not accepts(want, family, length):
            out.append(Difference(COLUMN_TYPE, physical, col.name, dialect.render_type(want), str(live["type"]), loose))
        if not col.nullable and live.get("nullable") and col.name not in table.primary_key:
            out.append(Difference(COLUMN_NULLABLE, physical, col.name, "NOT NULL", "NULL", loose))
    known = {c.name.lower() for c in table.columns}
    for name in sorted(set(live_cols) - known):
        out.append(Difference(EXTRA_COLUMN, physical, live_cols[name]["name"], severity=WARNING))
    if table.positional and dialect.orders_columns:
        # Read by position (SELECT *) by Baselinr's profiler: the order is part of the contract.
        order = [c["name"].lower() for c in reflected if c["name"].lower() in known]
        want_order = [c.name.lower() for c in table.columns if c.name.lower() in live_cols]
        if order != want_order:
            out.append(Difference(COLUMN_ORDER, physical, "", ", ".join(want_order), ", ".join(order), loose))

    if table.primary_key:
        pk = insp.get_pk_constraint(live_name) or {}
        live_pk = [c.lower() for c in pk.get("constrained_columns") or []]
        if live_pk != [c.lower() for c in table.primary_key]:
            shown = ", ".join(live_pk) if live_pk else "none"
            out.append(Difference(PRIMARY_KEY, physical, "", ", ".join(table.primary_key), shown))

    unique_keys = {tuple(c.lower() for c in cols) for cols in table.unique}
    # Where there are no indexes (Snowflake) UNIQUE is declared but neither enforced nor reliably reflected.
    if unique_keys and dialect.supports_indexes:
        live_unique = dialect.unique_keys(insp, live_name)
        for key in table.unique:
            if tuple(c.lower() for c in key) not in live_unique:
                out.append(Difference(MISSING_UNIQUE, physical, "", ", ".join(key), "", loose))

    if not dialect.supports_indexes:
        return out
    live_idx = {
        i["name"].lower(): i
        for i in insp.get_indexes(live_name)
        # The index behind a UNIQUE constraint of the model is that constraint, checked above.
        if i.get("name") and not (i.get("unique") and _cols(i.get("column_names")) in unique_keys)
    }
    for index in table.indexes:
        live = live_idx.get(index.name.lower())
        if live is None:
            out.append(Difference(MISSING_INDEX, physical, index.name, ", ".join(index.column_names)))
            continue
        cols = _cols(live.get("column_names"))
        if cols and list(cols) != [c.lower() for c in index.column_names]:
            out.append(Difference(INDEX_COLUMNS, physical, index.name, ", ".join(index.column_names), ", ".join(cols)))
    known_idx = {i.name.lower() for i in table.indexes}
    for name in sorted(set(live_idx) - known_idx):
        out.append(Difference(EXTRA_INDEX, physical, live_idx[name]["name"], severity=WARNING))
    return out
