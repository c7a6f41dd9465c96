"""One trace from a BaselinrSchema change to the statements of its migrate Job, read back from Jaeger.

The operator runs under ``KopfRunner`` in this process with
``OTEL_EXPORTER_OTLP_ENDPOINT`` pointing at the session's Jaeger; the node
agent runs its Jobs' ``baselinr job ...`` commands as real processes with the
environment the Job builders gave them (``TRACEPARENT``). The trace is found
through ``status.run.traceparent`` and read through Jaeger's query API.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.jaeger import Jaeger, Span
from tests.support.servers import Server

from .cluster import Cluster
from .operator_support import Setup, install_crd, make_setup, operator

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]


@pytest.fixture
def setup(k8s: Cluster, namespace: str, pg_server: Server, tmp_path: Path) -> Iterator[Setup]:
    install_crd(k8s)
    made = make_setup(k8s, namespace, pg_server, tmp_path)
    yield made
    made.close()
    gc.collect()


def one(spans: list[Span], name: str) -> Span:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, (name, sorted(s.name for s in spans))
    return found[0]


def ends(s: Span) -> int:
    return s.start_us + s.duration_us


def complete(spans: list[Span]) -> bool:
    names = {s.name for s in spans}
    return {"job backup", "job migrate", "baselinr job backup", "baselinr job migrate", "migration v3"} <= names


def tree(spans: list[Span]) -> str:
    """The trace as an indented list of spans with their start offsets and durations (shown with ``-s``)."""
    children: dict[str | None, list[Span]] = {}
    ids = {s.span_id for s in spans}
    for s in sorted(spans, key=lambda s: s.start_us):
        children.setdefault(s.parent_id if s.parent_id in ids else None, []).append(s)
    t0 = min(s.start_us for s in spans)
    lines: list[str] = []

    def walk(parent: str | None, depth: int) -> None:
        for s in children.get(parent, []):
            at, took = (s.start_us - t0) / 1000, s.duration_us / 1000
            lines.append(f"{'  ' * depth}{s.name} [{s.service}] +{at:.0f} ms, {took:.1f} ms")
            walk(s.span_id, depth + 1)

    walk(None, 0)
    return "\n".join(lines)


def test_one_trace_from_the_resource_to_each_statement(setup: Setup, monkeypatch: pytest.MonkeyPatch, jaeger: Jaeger) -> None:
    with operator(setup.k8s, setup.namespace, monkeypatch, OTEL_EXPORTER_OTLP_ENDPOINT=jaeger.otlp_endpoint):
        setup.apply(setup.schema("analytics", 3)).check_returncode()
        status = setup.wait_phase("analytics", "Ready", currentVersion=3)
    traceparent = status["run"]["traceparent"]
    trace_id = traceparent.split("-")[1]
    spans = jaeger.trace(trace_id, until=complete)
    assert complete(spans), sorted(s.name for s in spans)
    print(tree(spans))

    by_id = {s.span_id: s for s in spans}
    reconciles = [s for s in spans if s.name == "reconcile"]
    assert reconciles and all(s.service == "baselinr-operator" for s in reconciles)
    assert all(s.tags["baselinr.resource"] == f"{setup.namespace}/analytics" for s in reconciles)
    first = min(reconciles, key=lambda s: s.start_us)
    assert first.span_id == traceparent.split("-")[2] and first.parent_id is None  # the change that started the run

    backup_job, migrate_job = one(spans, "job backup"), one(spans, "job migrate")
    for job, step in ((backup_job, "backup"), (migrate_job, "migrate")):
        assert by_id[job.parent_id].name == "reconcile"  # created by a reconcile of this run
        assert job.tags["baselinr.job"] == f"analytics-{step}-v3-1" and job.tags["baselinr.succeeded"] is True
        engine = one(spans, f"baselinr job {step}")
        assert engine.service == "baselinr" and engine.parent_id == job.span_id  # the Pod continued the Job's span
        assert job.start_us <= engine.start_us and ends(engine) <= ends(job)  # created -> finished
    assert ends(backup_job) <= migrate_job.start_us  # backup, then migrate

    command = one(spans, "baselinr job migrate")
    migrations = sorted((s for s in spans if s.name.startswith("migration v")), key=lambda s: s.start_us)
    assert [m.name for m in migrations] == ["migration v1", "migration v2", "migration v3"]
    for m in migrations:
        assert m.parent_id == command.span_id and m.tags["baselinr.outcome"] == "applied"
        statements = [s for s in spans if s.parent_id == m.span_id]
        assert len(statements) == m.tags["baselinr.statements"] > 0
    v3 = [s for s in spans if s.parent_id == migrations[-1].span_id]
    assert [s.tags["db.operation.name"] for s in v3] == ["CREATE"]

    everything = json.dumps(jaeger.raw_trace(trace_id))
    assert setup.password not in everything and "password" not in everything.lower()
