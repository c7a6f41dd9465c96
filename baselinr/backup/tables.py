"""The live side of a backup's tables: which ``baselinr_*`` tables a database has, and their columns.

Used by ``writer`` (discover the tables and describe them for the manifest)
and ``restore`` (find what a target already has), through each dialect's
codec. Reflection here goes through ``storage.reflection`` (SQLAlchemy's
inspector); PostgreSQL's codec reads its catalog instead (``pg_catalog``),
with the same results.
Types are recorded in the source dialect's own spelling, for ``trust`` to
compare with the model. Which of these tables are
Baselinr's, and how to create them, is ``catalog``'s business: nothing here
builds DDL.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from baselinr.backup.manifest import ColumnEntry
from baselinr.storage.version_table import VERSION_TABLE_NAME

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

PREFIX = "baselinr_"


def baselinr_tables(conn: Connection, extra: Iterable[str] = ()) -> list[str]:
    """Every table named ``baselinr_*`` plus ``extra`` (renamed runs/results), version table first."""
    return select_baselinr(table_names(conn), extra)


def select_baselinr(names: Iterable[str], extra: Iterable[str] = ()) -> list[str]:
    """Of ``names``, those named ``baselinr_*`` plus ``extra``, version table first."""
    wanted = {e.lower() for e in extra}
    chosen = [n for n in names if n.lower().startswith(PREFIX) or n.lower() in wanted]
    return sorted(chosen, key=lambda n: (n != VERSION_TABLE_NAME, n))


def table_names(conn: Connection) -> list[str]:
    from baselinr.storage import reflection

    return reflection.table_names(conn)


def describe(conn: Connection, names: Iterable[str]) -> dict[str, tuple[list[ColumnEntry], list[str]]]:
    """For each table: its columns (name, type as this dialect spells it, nullability) and primary key,
    each kind read for all of ``names`` at once where the dialect batches reflection."""
    from baselinr.storage.reflection import Reflection, inspector

    raw = inspector(conn)
    wanted = list(names)
    insp = Reflection(raw, wanted)
    out = {}
    for table in wanted:
        columns = []
        for c in insp.get_columns(table):
            try:
                spelled = c["type"].compile(dialect=conn.dialect)
            except Exception:  # noqa: BLE001 - a type SQLAlchemy reflects but cannot render
                spelled = str(c["type"])
            columns.append(ColumnEntry(c["name"], spelled, bool(c.get("nullable", True))))
        pk = list((insp.get_pk_constraint(table) or {}).get("constrained_columns") or [])
        out[table] = (columns, pk)
    return out


def logical_names(runs_table: str, results_table: str) -> Mapping[str, str]:
    """Physical name → logical name for the two tables a config may rename."""
    return {runs_table: "baselinr_runs", results_table: "baselinr_results"}


def live_columns(conn: Connection, table: str) -> list[str]:
    from baselinr.storage.reflection import inspector

    return [c["name"] for c in inspector(conn).get_columns(table)]
