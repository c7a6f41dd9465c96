"""
Migration v9: Quality scores

Creates ``baselinr_quality_scores``: per table and scoring period, the
overall data quality score and its six components (completeness, validity,
consistency, freshness, uniqueness, accuracy), a status and issue counts.
"""

from ...model import NOW, Column, CreateTable, Float, Integer, String, Timestamp, table
from ..manager import Migration

SCORES = ("overall", "completeness", "validity", "consistency", "freshness", "uniqueness", "accuracy")

QUALITY_SCORES = table(
    "baselinr_quality_scores",
    Column("id", Integer(), nullable=False, autoincrement=True),
    Column("table_name", String(255), nullable=False),
    Column("schema_name", String(255)),
    Column("run_id", String(36)),
    *(Column(f"{s}_score", Float(), nullable=False) for s in SCORES),
    Column("status", String(20), nullable=False),
    Column("total_issues", Integer(), nullable=False, default="0"),
    Column("critical_issues", Integer(), nullable=False, default="0"),
    Column("warnings", Integer(), nullable=False, default="0"),
    Column("calculated_at", Timestamp(), nullable=False, default=NOW),
    Column("period_start", Timestamp(), nullable=False),
    Column("period_end", Timestamp(), nullable=False),
    indexes={
        "idx_quality_scores_table": ("table_name", "schema_name"),
        "idx_quality_scores_calculated_at": ("calculated_at DESC",),
        "idx_quality_scores_run_id": ("run_id",),
    },
)

migration = Migration(
    version=9,
    description="Add quality scores table for storing data quality scores",
    operations=[CreateTable(QUALITY_SCORES)],
)
