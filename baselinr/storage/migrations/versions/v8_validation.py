"""
Migration v8: Validation results

Creates ``baselinr_validation_results``: the outcome of each validation
rule on each run (the rule and its configuration, passed or not, how many
rows failed, severity, and the provider that ran it).
"""

from ...model import NOW, Boolean, Column, CreateTable, Float, Integer, Json, String, Text, Timestamp, table
from ..manager import Migration

VALIDATION_RESULTS = table(
    "baselinr_validation_results",
    Column("id", Integer(), nullable=False, autoincrement=True),
    Column("run_id", String(36), nullable=False),
    Column("table_name", String(255), nullable=False),
    Column("schema_name", String(255)),
    Column("column_name", String(255)),
    Column("rule_type", String(50), nullable=False),
    Column("rule_config", Json()),
    Column("passed", Boolean(), nullable=False),
    Column("failure_reason", Text()),
    Column("total_rows", Integer()),
    Column("failed_rows", Integer()),
    Column("failure_rate", Float()),
    Column("severity", String(20)),
    Column("validated_at", Timestamp(), nullable=False, default=NOW),
    Column("provider", String(50), nullable=False, default="'builtin'"),
    Column("metadata", Json()),
    indexes={
        "idx_validation_run_id": ("run_id",),
        "idx_validation_table": ("table_name", "schema_name"),
        "idx_validation_column": ("table_name", "column_name"),
        "idx_validation_validated_at": ("validated_at DESC",),
    },
)

migration = Migration(
    version=8,
    description="Add validation results table",
    operations=[CreateTable(VALIDATION_RESULTS)],
)
