"""
Migration v4: Table lineage

Creates ``baselinr_lineage``: edges from an upstream table to a downstream
one (database, schema and table on both sides), with the provider that
reported them (dbt, SQL parsing, query history …), a confidence score and
when the edge was first and last seen.

Key width: an edge is UNIQUE per (downstream database/schema/table,
upstream database/schema/table, provider). At VARCHAR(255) each, that key
is 1580 characters, 6320 bytes in MySQL's utf8mb4, twice InnoDB's
3072-byte limit. So database and schema names are VARCHAR(64) and table
names VARCHAR(128) (the identifier limits of PostgreSQL and MySQL, and the
longest table name SQL Server allows): 562 characters, 2248 bytes. Baselinr's
profiler creates this table itself with VARCHAR(255) columns; such a table
still validates, since only a narrower live column is an error.
"""

from ...model import NOW, Column, CreateTable, Float, Integer, Json, String, Timestamp, table
from ..manager import Migration

EDGE_KEY = (
    "downstream_database",
    "downstream_schema",
    "downstream_table",
    "upstream_database",
    "upstream_schema",
    "upstream_table",
    "provider",
)

LINEAGE = table(
    "baselinr_lineage",
    Column("id", Integer(), nullable=False, autoincrement=True),
    Column("downstream_database", String(64)),
    Column("downstream_schema", String(64), nullable=False),
    Column("downstream_table", String(128), nullable=False),
    Column("upstream_database", String(64)),
    Column("upstream_schema", String(64), nullable=False),
    Column("upstream_table", String(128), nullable=False),
    Column("lineage_type", String(50), nullable=False),
    Column("provider", String(50), nullable=False),
    Column("confidence_score", Float(), default="1.0"),
    Column("first_seen_at", Timestamp(), nullable=False, default=NOW),
    Column("last_seen_at", Timestamp(), nullable=False, default=NOW),
    Column("metadata", Json()),
    indexes={
        "idx_lineage_downstream": ("downstream_database", "downstream_schema", "downstream_table"),
        "idx_lineage_upstream": ("upstream_database", "upstream_schema", "upstream_table"),
        "idx_lineage_provider": ("provider",),
        "idx_lineage_last_seen": ("last_seen_at DESC",),
    },
    unique=[EDGE_KEY],
)

migration = Migration(
    version=4,
    description="Add lineage table for table-level lineage from multiple providers",
    operations=[CreateTable(LINEAGE)],
)
