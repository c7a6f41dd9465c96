"""A snapshot of the live schema, and the differences between two snapshots.

Used by ``baselinr migrate test`` (``selftest.py``): the schema a database
had before a migration's up must come back after its down, and the schema
after a second up must be the one the first up made, whether or not the
migration declares model operations (a plain SQL migration tells the model
nothing, so only the live schema can show that its down left a column).
Reads tables, columns (type as reflected, nullability), primary keys,
unique constraints and indexes through SQLAlchemy's inspector; the engine's
own bookkeeping tables (the version table, the migration journal, Snowflake's lock table) are left
out. Differences are ``drift.Difference`` values with drift's kinds, so
they are rendered like every other schema difference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from baselinr.storage.migrations.drift import (
    COLUMN_NULLABLE,
    COLUMN_TYPE,
    EXTRA_COLUMN,
    EXTRA_INDEX,
    EXTRA_TABLE,
    INDEX_COLUMNS,
    MISSING_COLUMN,
    MISSING_INDEX,
    MISSING_TABLE,
    MISSING_UNIQUE,
    PRIMARY_KEY,
    Difference,
)
from baselinr.storage.migrations.journal import JOURNAL_TABLE_NAME
from baselinr.storage.version_table import VERSION_TABLE_NAME

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

# Tables the engine keeps for itself: they come and go with the runner, not with a migration.
BOOKKEEPING = frozenset({VERSION_TABLE_NAME, JOURNAL_TABLE_NAME, "_baselinr_migration_lock"})


@dataclass(frozen=True)
class TableShape:
    """What one live table looks like: columns by lower-case name, keys and indexes."""

    name: str
    columns: dict[str, tuple[str, str, bool]]  # lower name -> (name, reflected type, nullable)
    primary_key: tuple[str, ...]
    unique: frozenset[tuple[str, ...]]
    indexes: dict[str, tuple[str, tuple[str, ...], bool]]  # lower name -> (name, columns, unique)


Snapshot = dict[str, TableShape]


def take(conn: Connection, *, indexes: bool = True) -> Snapshot:
    """The live schema, keyed by lower-case table name, without the engine's bookkeeping tables.

    ``indexes=False`` where the dialect has none (Snowflake, whose UNIQUE is
    declared but neither enforced nor reliably reflected): keys and indexes
    are then not read."""
    from sqlalchemy import inspect

    insp = inspect(conn)
    shot: Snapshot = {}
    for name in insp.get_table_names():
        if name.lower() in BOOKKEEPING:
            continue
        shot[name.lower()] = _table(insp, name, indexes)
    return shot


def _cols(names: Any) -> tuple[str, ...]:
    return tuple(str(c).lower() for c in names or [] if c)


def _table(insp: Any, name: str, indexes: bool) -> TableShape:
    columns = {c["name"].lower(): (c["name"], str(c["type"]), bool(c.get("nullable", True))) for c in insp.get_columns(name)}
    pk = _cols((insp.get_pk_constraint(name) or {}).get("constrained_columns"))
    if not indexes:
        return TableShape(name, columns, pk, frozenset(), {})
    try:
        unique = frozenset(_cols(u.get("column_names")) for u in insp.get_unique_constraints(name))
    except NotImplementedError:
        unique = frozenset()
    try:
        reflected = insp.get_indexes(name)
    except NotImplementedError:
        reflected = []
    found = {
        str(i["name"]).lower(): (str(i["name"]), _cols(i.get("column_names")), bool(i.get("unique")))
        for i in reflected
        if i.get("name")
    }
    return TableShape(name, columns, pk, unique, found)


def diff(expected: Snapshot, found: Snapshot) -> list[Difference]:
    """How ``found`` differs from ``expected``, table by table; every difference is an error."""
    out: list[Difference] = []
    for key in sorted(set(expected) | set(found)):
        want, have = expected.get(key), found.get(key)
        if have is None and want is not None:
            out.append(Difference(MISSING_TABLE, want.name, expected="present", found="absent"))
        elif want is None and have is not None:
            out.append(Difference(EXTRA_TABLE, have.name, expected="absent", found="present"))
        elif want is not None and have is not None:
            out += _diff_table(want, have)
    return out


def _diff_table(want: TableShape, have: TableShape) -> list[Difference]:
    t = want.name
    out: list[Difference] = []
    for key in sorted(set(want.columns) | set(have.columns)):
        w, h = want.columns.get(key), have.columns.get(key)
        if h is None and w is not None:
            out.append(Difference(MISSING_COLUMN, t, w[0], expected=w[1], found="absent"))
        elif w is None and h is not None:
            out.append(Difference(EXTRA_COLUMN, t, h[0], expected="absent", found=h[1]))
        elif w is not None and h is not None:
            if w[1] != h[1]:
                out.append(Difference(COLUMN_TYPE, t, w[0], expected=w[1], found=h[1]))
            if w[2] != h[2]:
                out.append(Difference(COLUMN_NULLABLE, t, w[0], expected=_null(w[2]), found=_null(h[2])))
    if want.primary_key != have.primary_key:
        out.append(Difference(PRIMARY_KEY, t, "", ", ".join(want.primary_key) or "none", ", ".join(have.primary_key) or "none"))
    for cols in sorted(want.unique - have.unique):
        out.append(Difference(MISSING_UNIQUE, t, "", expected=", ".join(cols), found="absent"))
    for cols in sorted(have.unique - want.unique):
        # drift has no kind of its own for a unique key the model does not know: it is an extra index.
        out.append(Difference(EXTRA_INDEX, t, "UNIQUE (" + ", ".join(cols) + ")", expected="absent", found="present"))
    for key in sorted(set(want.indexes) | set(have.indexes)):
        wi, hi = want.indexes.get(key), have.indexes.get(key)
        if hi is None and wi is not None:
            out.append(Difference(MISSING_INDEX, t, wi[0], expected=_index(wi), found="absent"))
        elif wi is None and hi is not None:
            out.append(Difference(EXTRA_INDEX, t, hi[0], expected="absent", found=_index(hi)))
        elif wi is not None and hi is not None and (wi[1], wi[2]) != (hi[1], hi[2]):
            out.append(Difference(INDEX_COLUMNS, t, wi[0], expected=_index(wi), found=_index(hi)))
    return out


def _null(nullable: bool) -> str:
    return "NULL" if nullable else "NOT NULL"


def _index(index: tuple[str, tuple[str, ...], bool]) -> str:
    return ("UNIQUE " if index[2] else "") + "(" + ", ".join(index[1]) + ")"
