"""Compare the live database with the model expected at a version.

Called by ``MigrationManager.validate``. Reads tables, columns, primary keys
and indexes through SQLAlchemy's inspector and names each difference:
missing objects and wrong types are errors, objects the model does not know
are warnings (a raw-SQL migration may have added them on purpose).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from baselinr.storage.model import Names, Schema, SqlType, Table

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from baselinr.storage.dialects import Dialect

# Families a live column may reflect as and still match the model.
_COMPATIBLE = {
    "integer": {"integer", "bigint"},
    "bigint": {"bigint"},
    "float": {"float"},
    "decimal": {"decimal"},
    "string": {"string"},
    "text": {"text", "string", "json"},
    "json": {"text", "json", "string"},
    "timestamp": {"timestamp"},
    "boolean": {"boolean", "integer"},
}


def family_of(live_type: Any) -> tuple[str, int | None]:
    """The model family (and string length) of a reflected SQLAlchemy type."""
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
    name = type(live_type).__name__.upper()
    if "VARIANT" in name or "OBJECT" in name:
        return "json", None
    if "TIMESTAMP" in name:
        return "timestamp", None
    return name.lower(), None


def _spell(t: SqlType, dialect: Dialect) -> str:
    return dialect.render_type(t)


def compare(conn: Connection, model: Schema, exact: bool, dialect: Dialect, names: Names) -> tuple[list[str], list[str]]:
    """Return (errors, warnings) naming every difference."""
    from sqlalchemy import inspect

    insp = inspect(conn)
    errors: list[str] = []
    warnings: list[str] = []
    live_tables = {n.lower(): n for n in insp.get_table_names()}
    expected_physical = {names(logical).lower() for logical in model.tables}
    for logical, table in sorted(model.tables.items()):
        physical = names(logical)
        live_name = live_tables.get(physical.lower())
        if live_name is None:
            errors.append(f"Table {physical} is missing")
            continue
        _compare_table(insp, live_name, physical, table, exact, dialect, errors, warnings)
    for low, live_name in sorted(live_tables.items()):
        if low.startswith("baselinr_") and low not in expected_physical:
            warnings.append(f"Table {live_name} is not part of the schema model at this version")
    return errors, warnings


def _compare_table(
    insp: Any, live_name: str, physical: str, table: Table, exact: bool, dialect: Dialect, errors: list[str], warnings: list[str]
) -> None:
    live_cols = {c["name"].lower(): c for c in insp.get_columns(live_name)}
    for col in table.columns:
        live = live_cols.get(col.name.lower())
        if live is None:
            errors.append(f"Column {physical}.{col.name} is missing")
            continue
        family, length = family_of(live["type"])
        want = col.type
        ok = family in _COMPATIBLE.get(want.family, {want.family})
        if ok and want.family == "string" and family == "string" and length and want.length and length < want.length:
            ok = False
        if not ok:
            message = f"Column {physical}.{col.name} is {live['type']}, expected {_spell(want, dialect)}"
            (errors if exact else warnings).append(message)
        if not col.nullable and live.get("nullable") and col.name not in table.primary_key:
            message = f"Column {physical}.{col.name} allows NULL, expected NOT NULL"
            (errors if exact else warnings).append(message)
    known = {c.name.lower() for c in table.columns}
    for name in sorted(set(live_cols) - known):
        warnings.append(f"Column {physical}.{live_cols[name]['name']} is not in the schema model")

    if table.primary_key:
        pk = insp.get_pk_constraint(live_name) or {}
        live_pk = [c.lower() for c in pk.get("constrained_columns") or []]
        if live_pk != [c.lower() for c in table.primary_key]:
            shown = ", ".join(live_pk) if live_pk else "none"
            errors.append(f"Primary key of {physical} is ({shown}), expected ({', '.join(table.primary_key)})")

    unique_keys = {tuple(c.lower() for c in cols) for cols in table.unique}
    # Where there are no indexes (Snowflake) UNIQUE is declared but neither enforced nor reliably reflected.
    if unique_keys and dialect.supports_indexes:
        constraints = insp.get_unique_constraints(live_name)
        live_unique = {tuple(str(c).lower() for c in u.get("column_names") or []) for u in constraints}
        unique_indexes = [i for i in insp.get_indexes(live_name) if i.get("unique")]
        live_unique |= {tuple(str(c).lower() for c in i.get("column_names") or [] if c) for i in unique_indexes}
        for key in table.unique:
            if tuple(c.lower() for c in key) not in live_unique:
                message = f"Unique key on {physical} ({', '.join(key)}) is missing"
                (errors if exact else warnings).append(message)

    if not dialect.supports_indexes:
        return
    live_idx = {
        i["name"].lower(): i
        for i in insp.get_indexes(live_name)
        # The index behind a UNIQUE constraint of the model is that constraint, checked above.
        if i.get("name")
        and not (i.get("unique") and tuple(str(c).lower() for c in i.get("column_names") or [] if c) in unique_keys)
    }
    for index in table.indexes:
        live = live_idx.get(index.name.lower())
        if live is None:
            errors.append(f"Index {index.name} on {physical} ({', '.join(index.column_names)}) is missing")
            continue
        cols = [str(c).lower() for c in live.get("column_names") or [] if c]
        if cols and cols != [c.lower() for c in index.column_names]:
            errors.append(
                f"Index {index.name} on {physical} covers ({', '.join(cols)}), expected ({', '.join(index.column_names)})"
            )
    known_idx = {i.name.lower() for i in table.indexes}
    for name in sorted(set(live_idx) - known_idx):
        warnings.append(f"Index {live_idx[name]['name']} on {physical} is not in the schema model")
