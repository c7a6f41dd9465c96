"""One trace from a BaselinrSchema change to each statement, across pods of our image on a real node:
the chart's operator (two replicas, ``tracing.otlpEndpoint`` and ``operator.logFormat: json``) traces
its reconciles and Jobs and hands the run's trace to each Job's pod as ``TRACEPARENT``; the engine
in the pod continues it down to each migration and statement. Jaeger listens on the bridge address,
where the pods reach it; the trace is read back through its query API. The operator's log is JSON
lines that name their resource (and trace, when logged inside a span).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from baselinr.storage.schema_version import CURRENT_SCHEMA_VERSION as LATEST
from tests.e2e.cluster import Cluster
from tests.support.jaeger import Jaeger, Span, start_jaeger
from tests.support.servers import Server

from .chart import Installed, assert_no_traceback, config_secret, install_operator, schema, wait_ready
from .node import Bridge

pytestmark = pytest.mark.node


@pytest.fixture(scope="module")
def bridge_jaeger(node_network: Bridge, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Jaeger]:
    with start_jaeger(tmp_path_factory.mktemp("jaeger"), host=node_network.address) as receiver:
        yield receiver


@pytest.fixture(scope="module")
def module_operator(
    k8s: Cluster, helm_bin: str, tmp_path_factory: pytest.TempPathFactory, bridge_jaeger: Jaeger
) -> Iterator[Installed]:
    """This module's operator: the chart's defaults, traced into the bridge's Jaeger, logging JSON lines."""
    values = {"logFormat": "json"}
    extra = {"tracing": {"otlpEndpoint": bridge_jaeger.otlp_endpoint}}
    with install_operator(
        k8s, helm_bin, tmp_path_factory.mktemp("operator"), watch=[], operator_values=values, chart_values=extra
    ) as made:
        yield made
        assert_no_traceback(made.all_logs())


def test_one_trace_from_the_resource_through_the_job_pods_to_each_statement(
    installed: Installed, backup_volume: Path, bridge_jaeger: Jaeger, pg_server: Server, tmp_path: Path
) -> None:
    k8s, ns = installed.k8s, installed.namespace
    database = config_secret(k8s, ns, pg_server, tmp_path)
    k8s.apply(json.dumps(schema("analytics", LATEST - 1)), ns).check_returncode()
    wait_ready(installed, "analytics", LATEST - 1)
    k8s.kubectl("patch", "bschema", "analytics", "-n", ns, "--type=merge", "-p",
                json.dumps({"spec": {"targetVersion": LATEST}}), check=True)  # fmt: skip
    status = wait_ready(installed, "analytics", LATEST)
    assert database
    traceparent = status["run"]["traceparent"]
    trace_id = traceparent.split("-")[1]
    names = {"job backup", "job migrate", "baselinr job backup", "baselinr job migrate", f"migration v{LATEST}"}
    spans = bridge_jaeger.trace(trace_id, until=lambda found: names <= {s.name for s in found}, timeout=60)
    assert names <= {s.name for s in spans}, sorted(s.name for s in spans)

    def one(name: str) -> Span:
        found = [s for s in spans if s.name == name]
        assert len(found) == 1, (name, sorted(s.name for s in spans))
        return found[0]

    by_id = {s.span_id: s for s in spans}
    for step in ("backup", "migrate"):
        job, engine = one(f"job {step}"), one(f"baselinr job {step}")
        assert job.service == "baselinr-operator" and by_id[job.parent_id].name == "reconcile"
        assert job.tags["baselinr.job"] == f"analytics-{step}-v{LATEST}-2"
        assert engine.service == "baselinr" and engine.parent_id == job.span_id  # the pod continued the Job's span
    migration = one(f"migration v{LATEST}")
    assert migration.parent_id == one("baselinr job migrate").span_id and migration.tags["baselinr.outcome"] == "applied"
    statements = [s for s in spans if s.parent_id == migration.span_id]
    assert len(statements) == migration.tags["baselinr.statements"] > 0
    backup_tables = [s for s in spans if s.parent_id == one("baselinr job backup").span_id]
    assert backup_tables, "a span per table backed up"
    raw = json.dumps(bridge_jaeger.raw_trace(trace_id))
    assert pg_server.password not in raw

    # The Jobs' pods got the trace; the operator logs JSON lines that carry it.
    pods = k8s.get_json("pods", "-n", ns)["items"]
    envs = [{e["name"]: e.get("value") for e in p["spec"]["containers"][0].get("env") or []} for p in pods]
    assert any(env.get("TRACEPARENT", "").split("-")[1:2] == [trace_id] for env in envs), envs
    assert all(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") == bridge_jaeger.otlp_endpoint for env in envs)
    lines = [line for line in installed.all_logs().splitlines() if line.strip() and not line.startswith("--- ")]
    records = [json.loads(line) for line in lines]
    assert all({"level", "message"} <= set(r) for r in records)
    assert any(r.get("resource") == f"{ns}/analytics" for r in records), lines[-20:]
    ids = [r["trace_id"] for r in records if r.get("trace_id")]
    assert all(len(i) == 32 and int(i, 16) for i in ids), ids  # a record logged inside a span names its trace
