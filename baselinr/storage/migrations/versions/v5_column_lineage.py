"""
Migration v5: Column lineage

Creates ``baselinr_column_lineage``: column-to-column edges, as in
``baselinr_lineage`` plus the column on each side and the transformation
expression that derives one from the other.

Key width: the edge is UNIQUE over nine columns. With names sized as in v4
(database and schema VARCHAR(64), table VARCHAR(128)) and column names
VARCHAR(100), the key is 762 characters, 3048 bytes under MySQL's utf8mb4,
just inside InnoDB's 3072-byte limit; at VARCHAR(255) it would be 9360
bytes. ``transformation_expression`` is TEXT (VARCHAR on Snowflake): it is
in no key. A profiler-created table with wider columns still validates.
"""

from ...model import NOW, Column, CreateTable, Float, Integer, Json, String, Text, Timestamp, table
from ..manager import Migration

EDGE_KEY = (
    "downstream_database",
    "downstream_schema",
    "downstream_table",
    "downstream_column",
    "upstream_database",
    "upstream_schema",
    "upstream_table",
    "upstream_column",
    "provider",
)

COLUMN_LINEAGE = table(
    "baselinr_column_lineage",
    Column("id", Integer(), nullable=False, autoincrement=True),
    Column("downstream_database", String(64)),
    Column("downstream_schema", String(64), nullable=False),
    Column("downstream_table", String(128), nullable=False),
    Column("downstream_column", String(100), nullable=False),
    Column("upstream_database", String(64)),
    Column("upstream_schema", String(64), nullable=False),
    Column("upstream_table", String(128), nullable=False),
    Column("upstream_column", String(100), nullable=False),
    Column("lineage_type", String(50), nullable=False),
    Column("provider", String(50), nullable=False),
    Column("confidence_score", Float(), default="1.0"),
    Column("transformation_expression", Text()),
    Column("first_seen_at", Timestamp(), nullable=False, default=NOW),
    Column("last_seen_at", Timestamp(), nullable=False, default=NOW),
    Column("metadata", Json()),
    indexes={
        "idx_column_lineage_downstream": ("downstream_database", "downstream_schema", "downstream_table", "downstream_column"),
        "idx_column_lineage_upstream": ("upstream_database", "upstream_schema", "upstream_table", "upstream_column"),
        "idx_column_lineage_provider": ("provider",),
        "idx_column_lineage_last_seen": ("last_seen_at DESC",),
    },
    unique=[EDGE_KEY],
)

migration = Migration(
    version=5,
    description=(
        "Add column-level lineage table for column-to-column dependency relationships "
        "from multiple providers with transformation expression support"
    ),
    operations=[CreateTable(COLUMN_LINEAGE)],
)
