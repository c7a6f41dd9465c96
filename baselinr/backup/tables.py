"""The live side of a backup's tables: which ``baselinr_*`` tables a database has, and their columns.

Used by ``writer`` (discover the tables and describe them for the manifest)
and ``restore`` (find what a target already has), through each dialect's
codec. The live schema is read by ``storage.reflection`` (the inspector;
PostgreSQL's codec its catalog query, with the same results).
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

    from baselinr.storage.reflection import Described

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
    """For each table: its columns (name, type as this dialect spells it, nullability) and primary key."""
    from baselinr.storage import reflection

    return entries(reflection.describe(conn, names))


def entries(described: Described) -> dict[str, tuple[list[ColumnEntry], list[str]]]:
    """The manifest's column entries of what ``storage.reflection`` read."""
    return {t: ([ColumnEntry(c.name, c.type, c.nullable) for c in cols], pk) for t, (cols, pk) in described.items()}


def logical_names(runs_table: str, results_table: str) -> Mapping[str, str]:
    """Physical name → logical name for the two tables a config may rename."""
    return {runs_table: "baselinr_runs", results_table: "baselinr_results"}


def live_columns(conn: Connection, table: str) -> list[str]:
    from baselinr.storage.reflection import inspector

    return [c["name"] for c in inspector(conn).get_columns(table)]
