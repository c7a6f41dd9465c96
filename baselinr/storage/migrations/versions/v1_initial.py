"""
Migration v1: Initial schema

Creates Baselinr's core storage tables: profiling runs, per-column metric
results, drift events and incremental table state. Written as model
operations, so the DDL is rendered for each dialect and ``validate`` knows
exactly what v1 looks like.

``baselinr_table_state`` is keyed by (database_name, schema_name,
table_name), as Baselinr's incremental profiling creates and uses it (its
SQL files show an older two-column key). The three names are 765
characters, 3060 bytes under MySQL's utf8mb4: inside InnoDB's 3072-byte
key limit.
"""

from ...model import (
    NOW,
    BigInteger,
    Column,
    CreateTable,
    Float,
    Integer,
    Json,
    String,
    Text,
    Timestamp,
    table,
)
from ..manager import Migration

RUNS = table(
    "baselinr_runs",
    Column("run_id", String(36), nullable=False),
    Column("dataset_name", String(255), nullable=False),
    Column("schema_name", String(255)),
    Column("profiled_at", Timestamp(), nullable=False),
    Column("environment", String(50)),
    Column("status", String(20)),
    Column("row_count", Integer()),
    Column("column_count", Integer()),
    primary_key=("run_id", "dataset_name"),
    indexes={"idx_runs_dataset_profiled": ("dataset_name", "profiled_at DESC")},
)

RESULTS = table(
    "baselinr_results",
    Column("id", Integer(), nullable=False, autoincrement=True),
    Column("run_id", String(36), nullable=False),
    Column("dataset_name", String(255), nullable=False),
    Column("schema_name", String(255)),
    Column("column_name", String(255), nullable=False),
    Column("column_type", String(100)),
    Column("metric_name", String(100), nullable=False),
    Column("metric_value", Text()),
    Column("profiled_at", Timestamp(), nullable=False),
    indexes={
        "idx_results_run_id": ("run_id",),
        "idx_results_dataset_column": ("dataset_name", "column_name"),
        "idx_results_metric": ("dataset_name", "column_name", "metric_name"),
    },
)

EVENTS = table(
    "baselinr_events",
    Column("event_id", String(36), nullable=False),
    Column("event_type", String(100), nullable=False),
    Column("run_id", String(36)),
    Column("table_name", String(255)),
    Column("column_name", String(255)),
    Column("metric_name", String(100)),
    Column("baseline_value", Float()),
    Column("current_value", Float()),
    Column("change_percent", Float()),
    Column("drift_severity", String(20)),
    Column("timestamp", Timestamp(), nullable=False),
    Column("metadata", Json()),
    Column("created_at", Timestamp(), default=NOW),
    primary_key=("event_id",),
    indexes={
        "idx_events_event_type": ("event_type",),
        "idx_events_run_id": ("run_id",),
        "idx_events_table_name": ("table_name",),
        "idx_events_timestamp": ("timestamp DESC",),
        "idx_events_drift_severity": ("drift_severity",),
    },
)

TABLE_STATE = table(
    "baselinr_table_state",
    Column("database_name", String(255), nullable=False, default="''"),
    Column("schema_name", String(255), nullable=False, default="''"),
    Column("table_name", String(255), nullable=False),
    Column("last_run_id", String(36)),
    Column("snapshot_id", String(255)),
    Column("change_token", String(255)),
    Column("decision", String(50)),
    Column("decision_reason", String(255)),
    Column("last_profiled_at", Timestamp()),
    Column("staleness_score", Integer()),
    Column("row_count", BigInteger()),
    Column("bytes_scanned", BigInteger()),
    Column("metadata", Json()),
    primary_key=("database_name", "schema_name", "table_name"),
)

migration = Migration(
    version=1,
    description="Initial schema with runs, results, events, and table_state tables",
    operations=[CreateTable(t) for t in (RUNS, RESULTS, EVENTS, TABLE_STATE)],
)
