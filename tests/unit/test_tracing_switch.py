"""When ``baselinr.tracing`` traces: the ``OTEL_*`` switches, the settings it refuses, the no-op when off."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from baselinr import tracing


@pytest.mark.parametrize(
    ("env", "on"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "x"}, False),  # names the service, asks for nothing
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "  "}, False),
    ],
)
def test_the_switches(env: dict[str, str], on: bool) -> None:
    assert tracing.wanted(env) is on


@pytest.fixture()
def clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for name in (*tracing.SWITCHES, "OTEL_SDK_DISABLED", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"):
        monkeypatch.delenv(name, raising=False)
    yield monkeypatch
    tracing.finish()


def test_off_every_span_is_one_shared_no_op(clean: pytest.MonkeyPatch) -> None:
    assert tracing.start() is None and not tracing.active()
    with tracing.span("x", version=1) as span, tracing.statement("CREATE TABLE t (x INT)") as statement:
        assert span is None and statement is None
    assert tracing.span("a") is tracing.span("b") and tracing.traceparent() is None
    tracing.event("nothing")  # no error, nothing to record it on


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER=zipkin is not supported"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "http/protobuf only"),
    ],
)
def test_a_setting_it_cannot_honour_is_one_warning(clean: pytest.MonkeyPatch, env: dict[str, str], says: str) -> None:
    for k, v in env.items():
        clean.setenv(k, v)
    problem = tracing.start()
    assert problem is not None and says in problem and "\n" not in problem
    assert not tracing.active()


def test_on_a_traceparent_is_continued_and_handed_on(clean: pytest.MonkeyPatch) -> None:
    clean.setenv("OTEL_TRACES_EXPORTER", "console")
    clean.setenv("TRACEPARENT", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    assert tracing.start() is None and tracing.active()
    with tracing.span("outer") as span:
        assert span is not None
        handed = tracing.traceparent()
    assert handed is not None and handed.startswith("00-0af7651916cd43dd8448eb211c80319c-")
    assert handed.split("-")[2] != "b7ad6b7169203331"  # our span's id, a child of the caller's
