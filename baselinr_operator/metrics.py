"""Prometheus metrics of the operator, served on ``BASELINR_OPERATOR_METRICS_PORT`` (``/metrics``).

Updated by ``handlers`` after each reconcile:

    baselinr_operator_migrations_total{result}           migrate Jobs finished (succeeded | failed)
    baselinr_operator_jobs_total{step,result}            every Job finished (backup | migrate | validate)
    baselinr_operator_migration_duration_seconds         how long migrate Jobs ran (histogram)
    baselinr_schema_current_version{namespace,name}      status.currentVersion per resource
    baselinr_schema_target_version{namespace,name}       spec.targetVersion per resource
    baselinr_schema_ready{namespace,name}                1 when Ready, else 0
    baselinr_operator_leader                             1 while this replica acts (always, without leader election)
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from baselinr_operator.status import Step

MIGRATIONS = Counter("baselinr_operator_migrations", "Migrate Jobs finished, by result.", ["result"])
JOBS = Counter("baselinr_operator_jobs", "Jobs finished, by step and result.", ["step", "result"])
DURATION = Histogram(
    "baselinr_operator_migration_duration_seconds",
    "How long migrate Jobs ran.",
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600),
)
CURRENT = Gauge("baselinr_schema_current_version", "status.currentVersion of each BaselinrSchema.", ["namespace", "name"])
TARGET = Gauge("baselinr_schema_target_version", "spec.targetVersion of each BaselinrSchema.", ["namespace", "name"])
READY = Gauge("baselinr_schema_ready", "1 when the BaselinrSchema is Ready.", ["namespace", "name"])

LEADER = Gauge("baselinr_operator_leader", "1 while this replica is the one that acts.")

_server: Any = None


def start(port: int) -> None:
    global _server
    if port and _server is None:
        _server = start_http_server(port)


def stop() -> None:
    global _server
    if isinstance(_server, tuple):
        _server[0].shutdown()
        _server[0].server_close()
    _server = None


def finished(step: str, succeeded: bool, seconds: float | None) -> None:
    result = "succeeded" if succeeded else "failed"
    JOBS.labels(step.lower(), result).inc()
    if step == Step.MIGRATE:
        MIGRATIONS.labels(result).inc()
        if seconds is not None:
            DURATION.observe(seconds)


def versions(namespace: str, name: str, current: int | None, target: int, ready: bool) -> None:
    if current is not None:
        CURRENT.labels(namespace, name).set(current)
    TARGET.labels(namespace, name).set(target)
    READY.labels(namespace, name).set(1 if ready else 0)


def forget(namespace: str, name: str) -> None:
    for gauge in (CURRENT, TARGET, READY):
        try:
            gauge.remove(namespace, name)
        except KeyError:
            pass


def leading(leads: bool) -> None:
    LEADER.set(1 if leads else 0)
