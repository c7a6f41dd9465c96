"""Probe of the released profiler's own storage classes, run inside the profiler's virtualenv.

This script imports the released profiler's ``baselinr`` package (never this project's)
and exercises its storage layer against whatever storage database CONFIG.yml names:

    python client_api.py CONFIG.yml write   # writes a fixed set of records
    python client_api.py CONFIG.yml read    # reads them back, prints one JSON document

Both modes print one JSON document on stdout: a dict keyed by "<Class>.<method>[#case]"
whose values are the normalised results (or ``{"error": "<Exception>: <first line>"}``),
so the document produced on the profiler's own schema can be compared with the one
produced on ours.  Everything else (the profiler's logging and prints) goes to stderr.

All writes go through the profiler's public storage classes (no SQL of our own); ids,
timestamps and values are fixed, and values that depend on the database or the wall
clock (auto-increment ids, server-side timestamps, random event ids, "now"-relative
scores) are replaced by a marker that only says whether a value was there.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import json
import logging
import sys
from collections.abc import Callable
from typing import Any

# Fixed inputs: two runs of the same data must produce equal documents.
T0 = dt.datetime(2025, 3, 1, 10, 0, 0)
T1 = dt.datetime(2025, 3, 2, 11, 30, 0)
T2 = dt.datetime(2025, 3, 3, 12, 45, 30)
RUN_1 = "00000000-0000-4000-8000-000000000001"
RUN_2 = "00000000-0000-4000-8000-000000000002"
LONG_AGO_DAYS = 100_000  # look-back window wide enough to include the fixed timestamps

# Fields whose value depends on the database (ids) or on the wall clock.
VOLATILE_FIELDS = frozenset(
    {"id", "created_at", "updated_at", "first_seen_at", "last_seen_at", "event_id", "validated_at", "applied_at"}
)
# Fields of the scores QualityScorer computes that are taken from "now".
NOW_DEPENDENT_SCORE_FIELDS = frozenset({"calculated_at", "period_start", "period_end"})

log = logging.getLogger("client_api")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def _error(exc: BaseException) -> dict[str, str]:
    return {"error": f"{type(exc).__name__}: {_first_line(exc)}"}


def _volatile_marker(value: Any) -> Any:
    """Say whether a database/clock-dependent value was set, keeping anything unexpected."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (dt.datetime, dt.date)):
        return "<timestamp>"
    if isinstance(value, int):
        return "<int>"
    if isinstance(value, str):
        try:
            dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return "<uuid>" if len(value) == 36 and value.count("-") == 4 else value
        return "<timestamp>"
    return Normaliser().plain(value)


def _sort_key(item: Any) -> str:
    return json.dumps(item, sort_keys=True, default=str)


@dataclasses.dataclass(frozen=True)
class Normaliser:
    """Turns a profiler result into plain, deterministic JSON data.

    ``masked`` fields are replaced by ``_volatile_marker``; lists are sorted unless
    ``ordered`` (a path, where the order is the result); tuples keep their order.
    """

    masked: frozenset[str] = VOLATILE_FIELDS
    ordered: bool = False

    def plain(self, value: Any) -> Any:
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, enum.Enum):
            return self.plain(value.value)
        if isinstance(value, int):
            return value
        if isinstance(value, float):
            return round(value, 6)
        if isinstance(value, decimal.Decimal):
            return round(float(value), 6)
        if isinstance(value, (dt.datetime, dt.date, dt.time)):
            return value.isoformat()
        if isinstance(value, (bytes, bytearray, memoryview)):
            return bytes(value).hex()
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return self.plain({f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
        if hasattr(value, "model_dump"):
            return self.plain(value.model_dump())
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            for key, item in value.items():
                name = "|".join(str(k) for k in key) if isinstance(key, tuple) else str(key)
                out[name] = _volatile_marker(item) if name in self.masked else self.plain(item)
            return dict(sorted(out.items()))
        if isinstance(value, tuple):
            return [self.plain(item) for item in value]
        if isinstance(value, (list, set, frozenset)):
            items = [self.plain(item) for item in value]
            return items if self.ordered and isinstance(value, list) else sorted(items, key=_sort_key)
        if hasattr(value, "_mapping"):  # SQLAlchemy Row
            return self.plain(dict(value._mapping))
        if hasattr(value, "__dict__"):
            return self.plain({k: v for k, v in vars(value).items() if not k.startswith("_")})
        return repr(value)


class Recorder:
    """Runs each call, storing its normalised result or its error under a key."""

    def __init__(self) -> None:
        self.results: dict[str, Any] = {}

    def call(self, key: str, func: Callable[[], Any], masked: frozenset[str] = VOLATILE_FIELDS, ordered: bool = False) -> None:
        if key in self.results:
            raise KeyError(f"duplicate key {key}")
        try:
            value = func()
        except Exception as exc:  # noqa: BLE001 - every failure is part of the compared output
            log.warning("%s failed: %s", key, _error(exc)["error"])
            self.results[key] = _error(exc)
            return
        try:
            self.results[key] = Normaliser(masked, ordered).plain(value)
        except Exception as exc:  # noqa: BLE001 - a result that cannot be read is also a result
            self.results[key] = _error(exc)

    def document(self) -> str:
        return json.dumps(self.results, sort_keys=True, indent=2)


class Profiler:
    """The profiler's configuration, storage engine and storage classes for CONFIG.yml."""

    def __init__(self, config_path: str) -> None:
        from baselinr.config.loader import ConfigLoader
        from baselinr.connectors.factory import create_connector

        self.config = ConfigLoader.load_from_file(config_path)
        # Never let the profiler create or alter tables here: the schema under test is
        # whatever the database already holds.  Learning/anomaly side effects are off so
        # that write_results writes only runs and results.
        self.storage_config = self.config.storage.model_copy(
            update={"create_tables": False, "enable_expectation_learning": False, "enable_anomaly_detection": False}
        )
        self.engine = create_connector(self.config.storage.connection, self.config.retry).engine

    def writer(self) -> Any:
        from baselinr.storage.writer import ResultWriter

        return ResultWriter(self.storage_config, self.config.retry)

    def quality_storage(self) -> Any:
        from baselinr.quality.storage import QualityScoreStorage

        return QualityScoreStorage(self.engine, scores_table="baselinr_quality_scores")

    def rca_storage(self) -> Any:
        from baselinr.rca.storage import RCAStorage

        return RCAStorage(self.engine)

    def schema_registry(self) -> Any:
        from baselinr.profiling.schema_detector import SchemaRegistry

        return SchemaRegistry(self.engine)

    def lineage_client(self) -> Any:
        from baselinr.query.lineage_client import LineageQueryClient

        return LineageQueryClient(self.engine)

    def metadata_client(self) -> Any:
        from baselinr.query.client import MetadataQueryClient

        return MetadataQueryClient(
            self.engine, runs_table=self.storage_config.runs_table, results_table=self.storage_config.results_table
        )

    def sync_tracker(self) -> Any:
        from baselinr.storage.lineage_sync_tracker import LineageSyncTracker

        return LineageSyncTracker(self.engine)

    def expectation_storage(self) -> Any:
        from baselinr.learning.expectation_storage import ExpectationStorage

        return ExpectationStorage(self.storage_config, self.engine)

    def event_hook(self) -> Any:
        from baselinr.events.builtin_hooks import SQLEventHook

        return SQLEventHook(self.engine)

    def validation_executor(self) -> Any:
        from baselinr.validation.executor import ValidationExecutor

        config = self.config.model_copy(update={"storage": self.storage_config})
        return ValidationExecutor(config, source_engine=self.engine, storage_engine=self.engine)

    def table_state_store(self) -> Any:
        from baselinr.incremental.state import TableStateStore

        table = self.config.incremental.change_detection.metadata_table
        return TableStateStore(self.storage_config, table, self.config.retry, create_tables=False)

    def quality_scorer(self) -> Any:
        from baselinr.config.schema import QualityScoringConfig
        from baselinr.quality.scorer import QualityScorer

        scoring = self.config.quality_scoring or QualityScoringConfig()
        return QualityScorer(
            self.engine,
            scoring,
            results_table=self.storage_config.results_table,
            runs_table=self.storage_config.runs_table,
        )


# ---------------------------------------------------------------- write


def _profiling_results() -> list[Any]:
    from baselinr.profiling.core import ProfilingResult

    customers = ProfilingResult(RUN_1, "cap_customers", "public", T0)
    customers.metadata = {"row_count": 3, "column_count": 2}
    customers.add_column_metrics("id", "INTEGER", {"count": 3, "null_count": 0, "distinct_count": 3})
    customers.add_column_metrics("email", "VARCHAR(255)", {"count": 3, "null_count": 1, "null_ratio": 0.333333})
    orders = ProfilingResult(RUN_1, "cap_orders", None, T0)
    orders.metadata = {"row_count": 5, "column_count": 1}
    orders.add_column_metrics("amount", "NUMERIC(10, 2)", {"mean": 12.5, "max": 40, "min": None})
    customers_2 = ProfilingResult(RUN_2, "cap_customers", "public", T1)
    customers_2.metadata = {"row_count": 4, "column_count": 2}
    customers_2.add_column_metrics("id", "INTEGER", {"count": 4, "null_count": 0, "distinct_count": 4})
    return [customers, orders, customers_2]


def _table_edges(confidence: float) -> list[Any]:
    from baselinr.integrations.lineage.base import LineageEdge

    return [
        LineageEdge(
            downstream_schema="analytics",
            downstream_table="orders_summary",
            upstream_schema="public",
            upstream_table="cap_orders",
            lineage_type="dbt_ref",
            provider="dbt",
            confidence_score=confidence,
            metadata={"model": "orders_summary"},
        ),
        LineageEdge(
            downstream_schema="analytics",
            downstream_table="orders_summary",
            upstream_schema="public",
            upstream_table="cap_customers",
            downstream_database="warehouse",
            upstream_database="warehouse",
            lineage_type="sql_parsed",
            provider="sql_parser",
            confidence_score=0.75,
        ),
        LineageEdge(
            downstream_schema="reporting",
            downstream_table="revenue",
            upstream_schema="analytics",
            upstream_table="orders_summary",
            lineage_type="dbt_ref",
            provider="dbt",
        ),
    ]


def _column_edges(confidence: float) -> list[Any]:
    from baselinr.integrations.lineage.base import ColumnLineageEdge

    return [
        ColumnLineageEdge(
            downstream_schema="analytics",
            downstream_table="orders_summary",
            downstream_column="total",
            upstream_schema="public",
            upstream_table="cap_orders",
            upstream_column="amount",
            lineage_type="sql_parsed",
            provider="sql_parser",
            confidence_score=confidence,
            transformation_expression="SUM(amount)",
            metadata={"aggregate": True},
        ),
        ColumnLineageEdge(
            downstream_schema="analytics",
            downstream_table="orders_summary",
            downstream_column="customer_email",
            upstream_schema="public",
            upstream_table="cap_customers",
            upstream_column="email",
            downstream_database="warehouse",
            upstream_database="warehouse",
            lineage_type="dbt_ref",
            provider="dbt",
        ),
        ColumnLineageEdge(
            downstream_schema="reporting",
            downstream_table="revenue",
            downstream_column="amount",
            upstream_schema="analytics",
            upstream_table="orders_summary",
            upstream_column="total",
            lineage_type="sql_parsed",
            provider="sql_parser",
            confidence_score=0.5,
        ),
    ]


def _quality_scores() -> list[Any]:
    from baselinr.quality.models import DataQualityScore

    def score(table: str, schema: str | None, run: str, at: dt.datetime, overall: float, status: str) -> Any:
        return DataQualityScore(
            overall_score=overall,
            completeness_score=95.5,
            validity_score=88.25,
            consistency_score=90.0,
            freshness_score=70.125,
            uniqueness_score=100.0,
            accuracy_score=81.333333,
            status=status,
            total_issues=3,
            critical_issues=1,
            warnings=2,
            table_name=table,
            schema_name=schema,
            run_id=run,
            calculated_at=at,
            period_start=at - dt.timedelta(days=7),
            period_end=at,
        )

    return [
        score("cap_customers", "public", RUN_1, T0, 82.5, "warning"),
        score("cap_customers", "public", RUN_2, T1, 91.75, "healthy"),
        score("cap_orders", None, RUN_1, T0, 55.0, "critical"),
    ]


def _column_scores() -> list[Any]:
    from baselinr.quality.models import ColumnQualityScore

    def score(column: str, schema: str | None, table: str, run: str, at: dt.datetime, overall: float) -> Any:
        return ColumnQualityScore(
            overall_score=overall,
            completeness_score=99.0,
            validity_score=97.5,
            consistency_score=96.0,
            freshness_score=80.0,
            uniqueness_score=100.0,
            accuracy_score=90.5,
            status="healthy",
            table_name=table,
            schema_name=schema,
            column_name=column,
            run_id=run,
            calculated_at=at,
            period_start=at - dt.timedelta(days=7),
            period_end=at,
        )

    return [
        score("id", "public", "cap_customers", RUN_1, T0, 98.0),
        score("id", "public", "cap_customers", RUN_2, T1, 99.5),
        score("email", "public", "cap_customers", RUN_2, T1, 87.25),
        score("amount", None, "cap_orders", RUN_1, T0, 66.0),
    ]


def _pipeline_runs() -> list[Any]:
    from baselinr.rca.models import PipelineRun

    return [
        PipelineRun(
            run_id="pipe-run-1",
            pipeline_name="nightly_orders",
            pipeline_type="dbt",
            started_at=T0,
            status="running",
            input_row_count=100,
            git_commit_sha="a" * 40,
            git_branch="main",
            affected_tables=["public.cap_orders", "analytics.orders_summary"],
            metadata={"trigger": "schedule"},
        ),
        PipelineRun(
            run_id="pipe-run-2",
            pipeline_name="hourly_customers",
            pipeline_type="airflow",
            started_at=T1,
            status="failed",
            completed_at=T1 + dt.timedelta(minutes=5),
            duration_seconds=300.5,
        ),
        # Same run id as the first: exercises the update path.
        PipelineRun(
            run_id="pipe-run-1",
            pipeline_name="nightly_orders",
            pipeline_type="dbt",
            started_at=T0,
            status="success",
            completed_at=T0 + dt.timedelta(minutes=12),
            duration_seconds=720.25,
            input_row_count=100,
            output_row_count=98,
            git_commit_sha="a" * 40,
            git_branch="main",
            affected_tables=["public.cap_orders", "analytics.orders_summary"],
            metadata={"trigger": "schedule", "attempt": 2},
        ),
    ]


def _code_deployments() -> list[Any]:
    from baselinr.rca.models import CodeDeployment

    return [
        CodeDeployment(
            deployment_id="deploy-1",
            deployed_at=T0 - dt.timedelta(hours=1),
            git_commit_sha="a" * 40,
            git_branch="main",
            changed_files=["models/orders_summary.sql"],
            deployment_type="code",
            affected_pipelines=["nightly_orders"],
            metadata={"author": "ci"},
        ),
        CodeDeployment(deployment_id="deploy-2", deployed_at=T1, deployment_type="schema"),
    ]


def _rca_results() -> list[Any]:
    from baselinr.rca.models import ImpactAnalysis, RCAResult

    return [
        RCAResult(
            anomaly_id="anomaly-with-db",
            database_name="warehouse",
            schema_name="analytics",
            table_name="orders_summary",
            column_name="total",
            metric_name="mean",
            analyzed_at=T1,
            rca_status="analyzed",
            probable_causes=[
                {"cause_type": "pipeline_failure", "cause_id": "pipe-run-2", "confidence_score": 0.8},
                {"cause_type": "code_change", "cause_id": "deploy-1", "confidence_score": 0.4},
            ],
            impact_analysis=ImpactAnalysis(
                upstream_affected=["public.cap_orders"],
                downstream_affected=["reporting.revenue"],
                blast_radius_score=0.35,
            ),
            metadata={"engine": "client_api"},
        ),
        RCAResult(
            anomaly_id="anomaly-without-db",
            database_name=None,
            schema_name=None,
            table_name="cap_orders",
            analyzed_at=T2,
            rca_status="pending",
        ),
    ]


def _expectation(mean: float) -> Any:
    from baselinr.learning.expectation_learner import LearnedExpectation

    return LearnedExpectation(
        table_name="cap_customers",
        schema_name="public",
        column_name="id",
        metric_name="mean",
        column_type="INTEGER",
        expected_mean=mean,
        expected_variance=4.0,
        expected_stddev=2.0,
        expected_min=1.0,
        expected_max=10.0,
        lower_control_limit=mean - 6.0,
        upper_control_limit=mean + 6.0,
        ewma_value=mean,
        ewma_lambda=0.3,
        distribution_type="normal",
        distribution_params={"mean": mean, "stddev": 2.0},
        category_distribution={"a": 0.25, "b": 0.75},
        sample_size=12,
        learning_window_days=14,
        last_updated=T1,
    )


def _events() -> list[Any]:
    from baselinr.events.events import DataDriftDetected, ProfilingCompleted, SchemaChangeDetected

    return [
        DataDriftDetected(
            event_type="DataDriftDetected",
            timestamp=T1,
            metadata={"run_id": RUN_2},
            table="cap_customers",
            column="id",
            metric="count",
            baseline_value=3.0,
            current_value=4.0,
            change_percent=33.333333,
            drift_severity="high",
        ),
        SchemaChangeDetected(
            event_type="SchemaChangeDetected",
            timestamp=T1,
            metadata={"run_id": RUN_2},
            table="cap_customers",
            change_type="column_added",
            column="phone",
            new_type="VARCHAR(32)",
        ),
        ProfilingCompleted(
            event_type="ProfilingCompleted",
            timestamp=T0,
            metadata={},
            table="cap_orders",
            run_id=RUN_1,
            row_count=5,
            column_count=1,
            duration_seconds=1.5,
        ),
    ]


def _validation_results() -> list[Any]:
    from baselinr.integrations.validation.base import ValidationResult, ValidationRule

    not_null = ValidationRule(rule_type="not_null", table="cap_customers", schema="public", column="email", severity="high")
    in_range = ValidationRule(
        rule_type="range", table="cap_orders", column="amount", config={"min_value": 0, "max_value": 1000}, severity="low"
    )
    return [
        ValidationResult(
            rule=not_null, passed=False, failure_reason="1 null value", total_rows=3, failed_rows=1, failure_rate=1 / 3
        ),
        ValidationResult(rule=in_range, passed=True, total_rows=5, metadata={"checked": "all"}),
    ]


def _table_states(row_count: int) -> list[Any]:
    from baselinr.incremental.state import TableState

    return [
        TableState(
            table_name="cap_customers",
            schema_name="public",
            database_name="warehouse",
            last_run_id=RUN_1,
            snapshot_id="snap-1",
            change_token="token-1",
            decision="full",
            decision_reason="first run",
            last_profiled_at=T0,
            staleness_score=3,
            row_count=row_count,
            bytes_scanned=4096,
            metadata={"partition": "2025-03-01"},
        ),
        # No database and no schema, as the profiler records SQLite tables.
        TableState(table_name="cap_orders", last_run_id=RUN_1, decision="skip", last_profiled_at=T0, row_count=5),
    ]


def write(profiler: Profiler, rec: Recorder) -> None:
    writer = profiler.writer()
    rec.call("ResultWriter.write_results", lambda: writer.write_results(_profiling_results(), "test", False))
    rec.call("ResultWriter.write_lineage", lambda: writer.write_lineage(_table_edges(0.9)))
    rec.call("ResultWriter.write_lineage#upsert", lambda: writer.write_lineage(_table_edges(0.95)[:1]))
    rec.call("ResultWriter.write_column_lineage", lambda: writer.write_column_lineage(_column_edges(0.9)))
    rec.call("ResultWriter.write_column_lineage#upsert", lambda: writer.write_column_lineage(_column_edges(0.85)[:1]))

    registry = profiler.schema_registry()
    first = {"id": "INTEGER", "email": "VARCHAR(255)"}
    second = {"id": "BIGINT", "email": "VARCHAR(255)", "phone": "VARCHAR(32)"}
    rec.call(
        "SchemaRegistry.register_schema#customers_run1",
        lambda: registry.register_schema("cap_customers", "public", first, RUN_1, T0, {"id": False}),
    )
    rec.call(
        "SchemaRegistry.register_schema#customers_run2",
        lambda: registry.register_schema("cap_customers", "public", second, RUN_2, T1, {"id": False, "phone": True}),
    )
    rec.call(
        "SchemaRegistry.register_schema#orders_no_schema",
        lambda: registry.register_schema("cap_orders", None, {"amount": "NUMERIC(10, 2)"}, RUN_1, T0),
    )

    quality = profiler.quality_storage()
    for i, score in enumerate(_quality_scores()):
        rec.call(f"QualityScoreStorage.store_score#{i}", lambda s=score: quality.store_score(s))
    for i, column_score in enumerate(_column_scores()):
        rec.call(f"QualityScoreStorage.store_column_score#{i}", lambda s=column_score: quality.store_column_score(s))

    rca = profiler.rca_storage()
    for i, run in enumerate(_pipeline_runs()):
        rec.call(f"RCAStorage.write_pipeline_run#{i}", lambda r=run: rca.write_pipeline_run(r))
    for i, deployment in enumerate(_code_deployments()):
        rec.call(f"RCAStorage.write_code_deployment#{i}", lambda d=deployment: rca.write_code_deployment(d))
    for result in _rca_results():
        rec.call(f"RCAStorage.write_rca_result#{result.anomaly_id}", lambda r=result: rca.write_rca_result(r))

    def sync(count: int, at: dt.datetime) -> None:
        profiler.sync_tracker().update_sync("postgres_query_history", at, query_count=count, edge_count=count // 2)

    rec.call("LineageSyncTracker.update_sync", lambda: sync(10, T0))
    rec.call("LineageSyncTracker.update_sync#upsert", lambda: sync(20, T1))

    expectations = profiler.expectation_storage()
    rec.call("ExpectationStorage.save_expectation", lambda: expectations.save_expectation(_expectation(5.0)))
    rec.call("ExpectationStorage.save_expectation#update", lambda: expectations.save_expectation(_expectation(5.5)))

    hook = profiler.event_hook()
    for event in _events():
        rec.call(f"SQLEventHook.handle_event#{event.event_type}", lambda e=event: hook.handle_event(e))

    def store_validations() -> None:
        executor = profiler.validation_executor()
        for result in _validation_results():
            # The executor's own storage step (it logs and swallows its errors).
            executor._store_result(result, RUN_1, provider_name="builtin")

    rec.call("ValidationExecutor._store_result", store_validations)

    for suffix, row_count in (("", 3), ("_update", 4)):
        for state in _table_states(row_count):
            rec.call(
                f"TableStateStore.upsert_state#{state.table_name}{suffix}",
                lambda s=state: profiler.table_state_store().upsert_state(s),
            )


# ---------------------------------------------------------------- read


def read(profiler: Profiler, rec: Recorder) -> None:
    writer_holder: list[Any] = []

    def writer() -> Any:
        if not writer_holder:
            writer_holder.append(profiler.writer())
        return writer_holder[0]

    rec.call("ResultWriter.get_schema_version", lambda: writer().get_schema_version())
    rec.call("ResultWriter.get_latest_run#customers", lambda: writer().get_latest_run("cap_customers", "public"))
    rec.call("ResultWriter.get_latest_run#orders", lambda: writer().get_latest_run("cap_orders"))

    meta = profiler.metadata_client()
    rec.call("MetadataQueryClient.query_runs#cap_orders", lambda: meta.query_runs(table="cap_orders"))
    rec.call("MetadataQueryClient.query_runs#filtered", lambda: meta.query_runs(schema="public", table="cap_customers"))
    rec.call("MetadataQueryClient.query_run_details", lambda: meta.query_run_details(RUN_1, "cap_customers"))
    rec.call("MetadataQueryClient.query_run_details#missing", lambda: meta.query_run_details("no-such-run"))
    rec.call(
        "MetadataQueryClient.query_lineage_path",
        lambda: meta.query_lineage_path("cap_orders", "revenue", "public", "reporting"),
        ordered=True,
    )
    rec.call(
        "MetadataQueryClient.query_table_history",
        lambda: meta.query_table_history("cap_customers", "public", days=LONG_AGO_DAYS),
    )
    rec.call("MetadataQueryClient.query_run_events", lambda: meta.query_run_events(RUN_2))
    rec.call("MetadataQueryClient.query_drift_events", lambda: meta.query_drift_events(table="cap_customers", days=LONG_AGO_DAYS))
    rec.call("MetadataQueryClient.query_active_drift_summary", lambda: meta.query_active_drift_summary(days=LONG_AGO_DAYS))
    rec.call("MetadataQueryClient.query_lineage_upstream", lambda: meta.query_lineage_upstream("revenue", "reporting"))
    rec.call("MetadataQueryClient.query_lineage_by_provider", lambda: meta.query_lineage_by_provider("sql_parser"))

    lineage = profiler.lineage_client()
    rec.call("LineageQueryClient.get_upstream_tables", lambda: lineage.get_upstream_tables("revenue", "reporting"))
    rec.call("LineageQueryClient.get_upstream_tables#depth1", lambda: lineage.get_upstream_tables("revenue", "reporting", 1))
    rec.call("LineageQueryClient.get_downstream_tables", lambda: lineage.get_downstream_tables("cap_orders", "public"))
    rec.call(
        "LineageQueryClient.get_lineage_path",
        lambda: lineage.get_lineage_path("cap_orders", "revenue", "public", "reporting"),
        ordered=True,
    )
    rec.call("LineageQueryClient.get_all_lineage", lambda: lineage.get_all_lineage())
    rec.call("LineageQueryClient.get_lineage_by_provider", lambda: lineage.get_lineage_by_provider("dbt"))
    rec.call(
        "LineageQueryClient.get_upstream_columns",
        lambda: lineage.get_upstream_columns("revenue", "amount", "reporting"),
    )
    rec.call(
        "LineageQueryClient.get_downstream_columns",
        lambda: lineage.get_downstream_columns("cap_orders", "amount", "public"),
    )
    rec.call(
        "LineageQueryClient.get_column_lineage_path",
        lambda: lineage.get_column_lineage_path("cap_orders", "amount", "revenue", "amount", "public", "reporting"),
        ordered=True,
    )

    registry = profiler.schema_registry()
    rec.call("SchemaRegistry.get_previous_schema#customers", lambda: registry.get_previous_schema("cap_customers", "public"))
    rec.call(
        "SchemaRegistry.get_previous_schema#customers_run2",
        lambda: registry.get_previous_schema("cap_customers", "public", RUN_2),
    )
    rec.call("SchemaRegistry.get_previous_schema#orders", lambda: registry.get_previous_schema("cap_orders", None))

    quality = profiler.quality_storage()
    rec.call("QualityScoreStorage.get_latest_score#customers", lambda: quality.get_latest_score("cap_customers", "public"))
    rec.call("QualityScoreStorage.get_latest_score#orders", lambda: quality.get_latest_score("cap_orders"))
    rec.call("QualityScoreStorage.get_latest_score#missing", lambda: quality.get_latest_score("nope", "public"))
    rec.call(
        "QualityScoreStorage.get_score_history",
        lambda: quality.get_score_history("cap_customers", "public", days=LONG_AGO_DAYS),
    )
    rec.call("QualityScoreStorage.query_scores_by_schema", lambda: quality.query_scores_by_schema("public"))
    rec.call("QualityScoreStorage.query_all_latest_scores", lambda: quality.query_all_latest_scores())
    rec.call("QualityScoreStorage.query_all_latest_scores#public", lambda: quality.query_all_latest_scores("public"))
    rec.call("QualityScoreStorage.query_system_scores", lambda: quality.query_system_scores())
    rec.call(
        "QualityScoreStorage.get_latest_column_score",
        lambda: quality.get_latest_column_score("cap_customers", "id", "public"),
    )
    rec.call(
        "QualityScoreStorage.get_latest_column_score#no_schema",
        lambda: quality.get_latest_column_score("cap_orders", "amount"),
    )
    rec.call(
        "QualityScoreStorage.get_column_scores_for_table",
        lambda: quality.get_column_scores_for_table("cap_customers", "public", days=LONG_AGO_DAYS),
    )

    rca = profiler.rca_storage()
    rec.call("RCAStorage.get_rca_result#with_db", lambda: rca.get_rca_result("anomaly-with-db"))
    rec.call("RCAStorage.get_rca_result#without_db", lambda: rca.get_rca_result("anomaly-without-db"))
    rec.call("RCAStorage.get_rca_result#missing", lambda: rca.get_rca_result("no-such-anomaly"))
    rec.call("RCAStorage.get_pipeline_runs", lambda: rca.get_pipeline_runs())
    rec.call(
        "RCAStorage.get_pipeline_runs#filtered",
        lambda: rca.get_pipeline_runs(start_time=T0, end_time=T2, pipeline_name="nightly_orders", status="success"),
    )
    rec.call("RCAStorage.get_code_deployments", lambda: rca.get_code_deployments())
    rec.call(
        "RCAStorage.get_code_deployments#filtered",
        lambda: rca.get_code_deployments(start_time=T0 - dt.timedelta(days=1), git_commit_sha="a" * 40),
    )

    rec.call("LineageSyncTracker.get_last_sync", lambda: profiler.sync_tracker().get_last_sync("postgres_query_history"))
    rec.call("LineageSyncTracker.get_last_sync#missing", lambda: profiler.sync_tracker().get_last_sync("dbt"))

    expectations = profiler.expectation_storage()
    rec.call("ExpectationStorage.get_expectation", lambda: expectations.get_expectation("cap_customers", "id", "mean", "public"))
    rec.call("ExpectationStorage.get_expectation#missing", lambda: expectations.get_expectation("cap_customers", "id", "max"))

    def load_state(table: str, schema: str | None = None, database: str | None = None) -> Any:
        return profiler.table_state_store().load_state(table, schema, database)

    rec.call("TableStateStore.load_state#customers", lambda: load_state("cap_customers", "public", "warehouse"))
    rec.call("TableStateStore.load_state#orders", lambda: load_state("cap_orders"))
    rec.call("TableStateStore.load_state#missing", lambda: load_state("cap_customers"))

    scorer = profiler.quality_scorer()
    rec.call(
        "QualityScorer.calculate_table_score",
        lambda: scorer.calculate_table_score("cap_customers", "public", RUN_1, period_days=LONG_AGO_DAYS),
        VOLATILE_FIELDS | NOW_DEPENDENT_SCORE_FIELDS,
    )
    rec.call(
        "QualityScorer.calculate_column_score",
        lambda: scorer.calculate_column_score("cap_customers", "email", "public", RUN_1, period_days=LONG_AGO_DAYS),
        VOLATILE_FIELDS | NOW_DEPENDENT_SCORE_FIELDS,
    )


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[2] not in ("write", "read"):
        print("usage: client_api.py CONFIG.yml write|read", file=sys.stderr)
        return 2
    config_path, mode = argv[1], argv[2]
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    real_stdout = sys.stdout
    sys.stdout = sys.stderr  # the profiler prints; only the JSON document goes to stdout
    rec = Recorder()
    try:
        try:
            profiler = Profiler(config_path)
        except Exception as exc:  # noqa: BLE001 - one line, no traceback, for the calling test
            print(f"client_api: cannot load {config_path}: {_error(exc)['error']}", file=sys.stderr)
            return 2
        (write if mode == "write" else read)(profiler, rec)
        profiler.engine.dispose()
    finally:
        sys.stdout = real_stdout
    print(rec.document())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
