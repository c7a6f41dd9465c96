"""
Migration v3: Learned expectations

Creates ``baselinr_expectations``: for each table, column and metric, the
range learned from history (mean, variance, min/max), control limits and
how they were computed, EWMA state and the distribution seen.

Key width: the natural key (table, schema, column, metric) is UNIQUE. With
every name at VARCHAR(255) it would be 865 characters, 3460 bytes under
MySQL's utf8mb4, over InnoDB's 3072-byte key limit (MySQL refuses the table;
MariaDB silently turns the key into a hash). ``schema_name`` is therefore
VARCHAR(128), the longest schema name any supported warehouse allows but
Snowflake's, giving 738 characters (2952 bytes). A longer column on a
database Baselinr's profiler created still validates: only a narrower live
column is an error.
"""

from ...model import NOW, Column, CreateTable, Float, Integer, String, Text, Timestamp, table
from ..manager import Migration

EXPECTATIONS = table(
    "baselinr_expectations",
    Column("id", Integer(), nullable=False, autoincrement=True),
    Column("table_name", String(255), nullable=False),
    Column("schema_name", String(128)),
    Column("column_name", String(255), nullable=False),
    Column("metric_name", String(100), nullable=False),
    Column("column_type", String(100)),
    Column("expected_mean", Float()),
    Column("expected_variance", Float()),
    Column("expected_stddev", Float()),
    Column("expected_min", Float()),
    Column("expected_max", Float()),
    Column("lower_control_limit", Float()),
    Column("upper_control_limit", Float()),
    Column("lcl_method", String(50)),
    Column("ucl_method", String(50)),
    Column("ewma_value", Float()),
    Column("ewma_lambda", Float(), default="0.2"),
    Column("distribution_type", String(50)),
    Column("distribution_params", Text()),
    Column("category_distribution", Text()),
    Column("sample_size", Integer()),
    Column("learning_window_days", Integer()),
    Column("last_updated", Timestamp(), nullable=False),
    Column("created_at", Timestamp(), nullable=False, default=NOW),
    Column("expectation_version", Integer(), default="1"),
    indexes={
        "idx_expectations_table_column": ("table_name", "schema_name", "column_name"),
        "idx_expectations_last_updated": ("last_updated DESC",),
    },
    unique=[("table_name", "schema_name", "column_name", "metric_name")],
)

migration = Migration(
    version=3,
    description="Add expectations table for learned metric ranges and control limits",
    operations=[CreateTable(EXPECTATIONS)],
)
