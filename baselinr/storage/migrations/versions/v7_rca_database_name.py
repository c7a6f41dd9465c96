"""
Migration v7: Database name on RCA results

Adds ``database_name`` to ``baselinr_rca_results`` so an analysis names the
database of the table it is about, as lineage does. Nullable: existing
analyses keep NULL. Rolled back by dropping the column.
"""

from ...model import AddColumn, Column, String
from ..manager import Migration

migration = Migration(
    version=7,
    description="Add database_name to RCA results",
    operations=[AddColumn("baselinr_rca_results", Column("database_name", String(255)))],
)
