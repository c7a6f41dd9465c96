"""
Migration v2: Schema registry

Creates ``baselinr_schema_registry``: one row per column of a profiled table
and run (its type, a hash of its definition, nullability, first and last
seen), which schema change detection compares between runs. Index names are
the ones Baselinr's profiler gives them, so a database it created matches.
Written as model operations: the DDL is rendered per dialect (no indexes on
Snowflake) and ``validate`` knows exactly what v2 looks like.
"""

from ...model import Boolean, Column, CreateTable, Integer, String, Timestamp, table
from ..manager import Migration

SCHEMA_REGISTRY = table(
    "baselinr_schema_registry",
    Column("id", Integer(), nullable=False, autoincrement=True),
    Column("table_name", String(255), nullable=False),
    Column("schema_name", String(255)),
    Column("column_name", String(255), nullable=False),
    Column("column_type", String(100), nullable=False),
    Column("column_hash", String(64), nullable=False),
    Column("nullable", Boolean(), default="TRUE"),
    Column("first_seen_at", Timestamp(), nullable=False),
    Column("last_seen_at", Timestamp(), nullable=False),
    Column("run_id", String(36), nullable=False),
    indexes={
        "idx_schema_registry_table_schema": ("table_name", "schema_name", "run_id"),
        "idx_schema_registry_table_column": ("table_name", "schema_name", "column_name"),
        "idx_schema_registry_run_id": ("run_id",),
        "idx_schema_registry_last_seen": ("last_seen_at DESC",),
    },
)

migration = Migration(
    version=2,
    description="Add schema registry table for schema change detection",
    operations=[CreateTable(SCHEMA_REGISTRY)],
)
