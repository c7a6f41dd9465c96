"""JSON log lines: the CLI under ``--log-format json``, kopf's JSON lines in the operator, and what each line names.

Each line is one JSON object with level, message, resource, trace_id and
span_id; the ids are those of the span the line was written in (tracing on),
``null`` otherwise. The operator still reads the engine's lock-wait line out of
a JSON log (``outcome.lock_holder``).
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from baselinr import logs, tracing
from baselinr.cli.render.migrate import retry_line
from baselinr.storage.migrations.results import Blocker, LockRetry
from baselinr_operator.__main__ import kopf_args
from baselinr_operator.outcome import lock_holder
from baselinr_operator.settings import OperatorSettings
from tests.support.cli import run

KEYS = {"time", "level", "logger", "message", "resource", "trace_id", "span_id"}


@pytest.fixture()
def traced(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in tracing.SWITCHES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.delenv("TRACEPARENT", raising=False)
    assert tracing.start() is None
    yield
    tracing.finish()


def test_cli_errors_are_one_json_object_per_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    r = run(capsys, "--log-format", "json", "migrate", "status", "--config", str(tmp_path / "missing.yml"))
    assert r.code == 2
    (line,) = r.err.splitlines()
    record = json.loads(line)
    assert set(record) == KEYS and record["level"] == "error" and "missing.yml" in record["message"]
    assert record["trace_id"] is None and record["span_id"] is None  # tracing off
    text = run(capsys, "migrate", "status", "--config", str(tmp_path / "missing.yml"))
    assert text.code == 2 and not text.err.startswith("{")  # the default stays the guide's line


def test_a_job_names_its_resource_and_trace(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BASELINR_RESOURCE", "data/analytics")
    monkeypatch.setenv("BASELINR_LOG_FORMAT", "json")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.setenv("TRACEPARENT", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    args = ("job", "migrate", "--config", str(tmp_path / "missing.yml"), "--result-file", str(tmp_path / "result"))
    r = run(capsys, *args)
    assert r.code == 2
    records = [json.loads(line) for line in r.err.splitlines() if line.startswith("{\"time\"")]
    (record,) = records
    assert record["resource"] == "data/analytics" and record["level"] == "error"
    assert record["trace_id"] == "0af7651916cd43dd8448eb211c80319c"  # the operator's trace, continued
    assert record["span_id"] not in (None, "b7ad6b7169203331")  # the command's own span


def test_json_lines_of_the_engines_log_inside_a_span(traced: None) -> None:
    logs.install()
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logs.JsonLines())
    logger = logging.getLogger("baselinr.test_json_logs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with logs.bound_resource("team-a/orders"), tracing.span("outer") as span:
            logger.info("v3: lock timeout at statement %s,\n try %s", 1, 2)
            ids = span.get_span_context()
        logger.info("outside")
    finally:
        logger.removeHandler(handler)
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["message"] == "v3: lock timeout at statement 1, try 2" and first["level"] == "info"
    assert first["resource"] == "team-a/orders"
    assert (first["trace_id"], first["span_id"]) == (f"{ids.trace_id:032x}", f"{ids.span_id:016x}")
    assert second["resource"] is None and second["span_id"] is None


def test_the_operator_logs_kopfs_json_with_our_fields(traced: None) -> None:
    from kopf._core.actions.loggers import LogFormat, make_formatter

    assert "--log-format=json" in kopf_args(OperatorSettings.from_env({"BASELINR_OPERATOR_LOG_FORMAT": "json"}), [])
    assert "--log-format=json" not in kopf_args(OperatorSettings.from_env({}), [])
    logs.install()
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(make_formatter(LogFormat.JSON))
    handler.addFilter(logs.KubeObjects())  # as the operator's startup does to kopf's handler
    logger = logging.getLogger("baselinr_operator.test_json_logs")
    logger.addHandler(handler)
    try:
        with tracing.span("reconcile"):
            logger.warning("Job created", extra={"k8s_ref": {"namespace": "team-a", "name": "orders"}})
    finally:
        logger.removeHandler(handler)
    record = json.loads(out.getvalue())
    assert record["message"] == "Job created" and record["level"] == "warning"
    assert record["resource"] == "team-a/orders" and len(record["trace_id"]) == 32 and len(record["span_id"]) == 16
    assert record["object"]["name"] == "orders"  # kopf's own reference stays


def test_the_operator_reads_the_lock_wait_line_from_a_json_log() -> None:
    blocker = Blocker(4242, user="analyst", application="dashboard")
    line = retry_line(LockRetry(3, "up", 1, 1, 5, 1.3, 2.0, [blocker], "postgres")).strip()
    log = json.dumps({"level": "warning", "message": line, "resource": "a/b", "trace_id": None, "span_id": None})
    assert lock_holder(log + "\n") == blocker.describe("postgres")
