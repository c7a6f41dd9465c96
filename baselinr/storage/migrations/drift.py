"""The one schema diff: every difference as a typed ``Difference``.

Two comparisons share its kinds and its rendering:

- ``compare``: the live database against the model expected at a version,
  for ``MigrationManager.validate``, ``repair``, ``baseline`` and ``migrate
  test``. The live side is read by ``storage.reflection`` (all tables at once
  per kind), types are matched by family (``storage.families``), each
  dialect's reflection quirks are handled by its class. Missing objects and
  wrong types are errors; objects the model does not know are warnings that
  say what to do (no migration made them).
- ``diff_snapshots``: one live schema against another (``migrate test``: the
  schema before a migration's up must come back after its down), exact and
  all errors.

Callers decide on ``kind``; text is rendered from a difference only for output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from baselinr.storage.families import accepts, family_of
from baselinr.storage.model import Names, Schema, Table
from baselinr.storage.reflection import Reflection, Snapshot, TableShape, inspector

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


def compare(conn: Connection, model: Schema, exact: bool, dialect: Dialect, names: Names) -> list[Difference]:
    """Every difference between the live schema and ``model``, errors and warnings."""
    raw = inspector(conn)
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


# --- one live schema against another (migrate test) ---------------------------


def diff_snapshots(expected: Snapshot, found: Snapshot) -> list[Difference]:
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
