"""
Migration v6: Root cause analysis tables

Creates ``baselinr_pipeline_runs`` (runs reported by orchestrators),
``baselinr_code_deployments`` (deployments with their commits and changed
files) and ``baselinr_rca_results`` (one analysis per anomaly, with its
probable causes and impact). JSON documents are TEXT (VARIANT on
Snowflake). Unlike the profiler's own v6, which probed ``SELECT VERSION()``
to guess the dialect, the DDL is rendered by each dialect class: SQLite gets
a real rowid alias for ``id``, Snowflake gets no indexes.
"""

from ...model import NOW, BigInteger, Column, CreateTable, Float, Integer, Json, String, Timestamp, table
from ..manager import Migration

PIPELINE_RUNS = table(
    "baselinr_pipeline_runs",
    Column("run_id", String(255), nullable=False),
    Column("pipeline_name", String(255), nullable=False),
    Column("pipeline_type", String(100)),
    Column("started_at", Timestamp(), nullable=False),
    Column("completed_at", Timestamp()),
    Column("duration_seconds", Float()),
    Column("status", String(50), nullable=False),
    Column("input_row_count", BigInteger()),
    Column("output_row_count", BigInteger()),
    Column("git_commit_sha", String(255)),
    Column("git_branch", String(255)),
    Column("affected_tables", Json()),
    Column("metadata", Json()),
    Column("created_at", Timestamp(), default=NOW),
    primary_key=("run_id",),
    indexes={
        "idx_pipeline_runs_pipeline_name": ("pipeline_name",),
        "idx_pipeline_runs_started_at": ("started_at DESC",),
        "idx_pipeline_runs_status": ("status",),
        "idx_pipeline_runs_git_commit": ("git_commit_sha",),
    },
)

CODE_DEPLOYMENTS = table(
    "baselinr_code_deployments",
    Column("deployment_id", String(255), nullable=False),
    Column("deployed_at", Timestamp(), nullable=False),
    Column("git_commit_sha", String(255)),
    Column("git_branch", String(255)),
    Column("changed_files", Json()),
    Column("deployment_type", String(50)),
    Column("affected_pipelines", Json()),
    Column("metadata", Json()),
    Column("created_at", Timestamp(), default=NOW),
    primary_key=("deployment_id",),
    indexes={
        "idx_code_deployments_deployed_at": ("deployed_at DESC",),
        "idx_code_deployments_git_commit": ("git_commit_sha",),
    },
)

RCA_RESULTS = table(
    "baselinr_rca_results",
    Column("id", Integer(), nullable=False, autoincrement=True),
    Column("anomaly_id", String(255), nullable=False),
    Column("table_name", String(255), nullable=False),
    Column("schema_name", String(255)),
    Column("column_name", String(255)),
    Column("metric_name", String(100)),
    Column("analyzed_at", Timestamp(), nullable=False),
    Column("rca_status", String(50), default="'analyzed'"),
    Column("probable_causes", Json()),
    Column("impact_analysis", Json()),
    Column("metadata", Json()),
    indexes={
        "idx_rca_results_table_name": ("table_name", "schema_name"),
        "idx_rca_results_analyzed_at": ("analyzed_at DESC",),
        "idx_rca_results_status": ("rca_status",),
    },
    unique=[("anomaly_id",)],
)

migration = Migration(
    version=6,
    description="Add RCA tables (pipeline_runs, code_deployments, rca_results)",
    operations=[CreateTable(t) for t in (PIPELINE_RUNS, CODE_DEPLOYMENTS, RCA_RESULTS)],
)
