"""
Migration v11: the released profiler reads and writes these tables as its own

Two changes, so that Baselinr's profiler (0.9.0) works on this schema as it
does on the one it creates itself; every row is kept:

- ``baselinr_rca_results`` gets ``database_name`` third, after
  ``anomaly_id``, where the profiler's own v6 puts it. The profiler reads
  the table with ``SELECT *`` by column position, and v7 had appended the
  column last, so it read ``database_name`` as ``table_name`` and every later
  field one place off. PostgreSQL and SQLite rebuild the table (ids, the
  sequence and the indexes come out as a fresh ``CREATE TABLE`` makes them);
  MySQL/MariaDB move the column in place. Snowflake is left as it is: it
  cannot reorder columns, and a rebuilt ``AUTOINCREMENT`` column would hand
  out ids that the copied rows already hold.
- On SQLite, ``baselinr_table_state.database_name`` and ``schema_name``
  accept NULL, as in the profiler's own SQLite table: incremental profiling
  writes NULL there when a table pattern names no database. PostgreSQL and
  MySQL refuse NULL in any primary-key column (the profiler's own table
  there too), so they are unchanged.

Rolled back by rebuilding both tables in their v10 shape (NULL keys become
the v10 default, '').
"""

from dataclasses import replace

from ...model import Column, RebuildTable, String
from ..manager import Migration
from .v1_initial import TABLE_STATE
from .v6_rca_tables import RCA_RESULTS

_DATABASE_NAME = Column("database_name", String(255))

RCA_V10 = replace(RCA_RESULTS, columns=(*RCA_RESULTS.columns, _DATABASE_NAME))
RCA_V11 = replace(RCA_RESULTS, columns=(*RCA_RESULTS.columns[:2], _DATABASE_NAME, *RCA_RESULTS.columns[2:]), positional=True)

TABLE_STATE_V11 = replace(
    TABLE_STATE,
    columns=tuple(
        replace(c, nullable=True) if c.name in ("database_name", "schema_name") else c for c in TABLE_STATE.columns
    ),
)

migration = Migration(
    version=11,
    description="Profiler compatibility: RCA column order, NULL table-state keys on SQLite",
    operations=[
        RebuildTable(RCA_V10, RCA_V11, dialects=frozenset({"sqlite", "postgres", "mysql"})),
        RebuildTable(TABLE_STATE, TABLE_STATE_V11, dialects=frozenset({"sqlite"})),
    ],
)
