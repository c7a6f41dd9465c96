"""
Migration v10: Column quality scores

Creates ``baselinr_column_quality_scores``: the v9 scores per column
(without the issue counters). The (table, schema, column) index is 765
characters, 3060 bytes in MySQL's utf8mb4, inside InnoDB's 3072-byte limit.
"""

from ...model import NOW, Column, CreateTable, Float, Integer, String, Timestamp, table
from ..manager import Migration
from .v9_quality_scores import SCORES

COLUMN_QUALITY_SCORES = table(
    "baselinr_column_quality_scores",
    Column("id", Integer(), nullable=False, autoincrement=True),
    Column("table_name", String(255), nullable=False),
    Column("schema_name", String(255)),
    Column("column_name", String(255), nullable=False),
    Column("run_id", String(36)),
    *(Column(f"{s}_score", Float(), nullable=False) for s in SCORES),
    Column("status", String(20), nullable=False),
    Column("calculated_at", Timestamp(), nullable=False, default=NOW),
    Column("period_start", Timestamp(), nullable=False),
    Column("period_end", Timestamp(), nullable=False),
    indexes={
        "idx_column_quality_scores_table_column": ("table_name", "schema_name", "column_name"),
        "idx_column_quality_scores_calculated_at": ("calculated_at DESC",),
        "idx_column_quality_scores_run_id": ("run_id",),
    },
)

migration = Migration(
    version=10,
    description="Add column quality scores table",
    operations=[CreateTable(COLUMN_QUALITY_SCORES)],
)
