"""OpenTelemetry traces of the engine: off unless ``OTEL_*`` asks, and then one span per step.

The CLI (``baselinr.cli.main``) calls ``start`` once and ``finish`` at exit;
the runner, the statement executor (``storage.connection.run_statement``) and
the backup writer and restore call ``span``. That is all the engine knows of
tracing: when it is off (no ``OTEL_TRACES_EXPORTER`` / ``OTEL_EXPORTER_OTLP_*
ENDPOINT`` in the environment, or ``OTEL_SDK_DISABLED=true``) ``span`` hands
back one shared no-op context manager and OpenTelemetry is never imported, so
a command that does not trace pays one function call per span point.

When on: spans go through OTLP over HTTP (protobuf), or to stderr with
``OTEL_TRACES_EXPORTER=console``. The SDK reads the standard variables itself
(endpoint, headers, timeout, sampler, ``OTEL_SERVICE_NAME``, default
``baselinr``). A W3C ``TRACEPARENT`` (and ``TRACESTATE``) in the environment
makes the command's span a child of that trace: the operator passes its own
to the Jobs it starts. Attributes are names, numbers and outcomes; never a
row value, a URL or a password. The SQL text of a statement is added only
when ``BASELINR_TRACE_SQL=1`` (it is the migration's own text, which may hold
literals that its author wrote). An error becomes the span's status with the
exception's type, never its message (a driver's message can quote a row).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

# The variables that switch tracing on (any one of them, set and not empty).
SWITCHES = ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
SQL_SWITCH = "BASELINR_TRACE_SQL"
DEFAULT_EXPORT_TIMEOUT = 2.0  # seconds, unless OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT says otherwise
INSTALL_HINT = "pip install 'baselinr[tracing]'"

_NOOP: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
_state: dict[str, Any] = {}  # tracer, provider, token (context attached for TRACEPARENT), sql


def wanted(environ: dict[str, str] | os._Environ[str] | None = None) -> bool:
    """Whether the environment asks for traces (cheap: reads variables only)."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    return any(env.get(name, "").strip() for name in SWITCHES)


def active() -> bool:
    return "tracer" in _state


def start(service: str = "baselinr", *, quiet: bool = True) -> str | None:
    """Set tracing up if the environment asks for it; a warning to print if it cannot (else ``None``).

    Idempotent. ``service`` is the default ``service.name`` (``OTEL_SERVICE_NAME`` wins).
    ``quiet`` (the CLI): the SDK's own complaints (a receiver that is down) are not logged as
    they come, but summed up in one line by ``finish``; the operator logs them instead."""
    if active() or not wanted():
        return None
    exporter_name = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() or "otlp"
    if exporter_name not in ("otlp", "console"):
        return (
            f"OTEL_TRACES_EXPORTER={exporter_name} is not supported (otlp or console): tracing is off for this run. "
            "Set OTEL_TRACES_EXPORTER=otlp and OTEL_EXPORTER_OTLP_ENDPOINT to an OTLP/HTTP receiver (port 4318)."
        )
    protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or ""
    if exporter_name == "otlp" and protocol.strip() not in ("", "http/protobuf"):
        return (
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol.strip()} is not supported (http/protobuf only): tracing is off for "
            "this run. Unset it and point OTEL_EXPORTER_OTLP_ENDPOINT at the receiver's OTLP/HTTP port (4318)."
        )
    try:
        from opentelemetry import context, trace
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
    except ImportError:
        return f"Tracing is configured (OTEL_*) but OpenTelemetry is not installed: tracing is off. Install it: {INSTALL_HINT}"

    attrs = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service}
    provider = TracerProvider(resource=Resource.create(attrs))
    exporter: SpanExporter
    if exporter_name == "console":
        exporter = ConsoleSpanExporter(out=sys.stderr)
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        timeout = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT") or os.environ.get("OTEL_EXPORTER_OTLP_TIMEOUT")
        # A receiver that is down costs a command this long at exit (the SDK's default is 10 s, with retries).
        exporter = OTLPSpanExporter(timeout=None if timeout else DEFAULT_EXPORT_TIMEOUT)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    carrier = {k.lower(): v for k in ("TRACEPARENT", "TRACESTATE") if (v := os.environ.get(k, "").strip())}
    if carrier:
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        _state["token"] = context.attach(TraceContextTextMapPropagator().extract(carrier))
    if quiet:
        _state["complaints"] = _quiet_sdk_logs()
    _state["provider"] = provider
    _state["tracer"] = provider.get_tracer("baselinr")
    _state["trace"] = trace
    _state["sql"] = os.environ.get(SQL_SWITCH, "").strip().lower() in ("1", "true", "yes")
    return None


def finish() -> str | None:
    """Export what is left and stop (the CLI calls it before it exits; a no-op when off). A warning
    to print when spans could not be exported (``start(quiet=True)``), else ``None``."""
    provider = _state.pop("provider", None)
    token = _state.pop("token", None)
    complaints = _state.pop("complaints", None)
    _state.clear()
    if token is not None:
        from opentelemetry import context

        context.detach(token)
    if provider is not None:
        provider.shutdown()
    if complaints is None:
        return None
    import logging

    sdk = logging.getLogger("opentelemetry")
    sdk.removeHandler(complaints)
    sdk.propagate = True
    if not complaints.count:
        return None
    return (
        "Tracing: spans could not be exported to the receiver of OTEL_EXPORTER_OTLP_ENDPOINT (the command's result "
        "is not affected). Check that the receiver is up and takes OTLP over HTTP (port 4318)."
    )


def _quiet_sdk_logs() -> Any:
    """Count the SDK's warnings and errors instead of printing them (multi-line, one per retry)."""
    import logging

    class Counter(logging.Handler):
        count = 0

        def emit(self, record: logging.LogRecord) -> None:
            self.count += 1

    handler = Counter(logging.WARNING)
    sdk = logging.getLogger("opentelemetry")
    sdk.addHandler(handler)
    sdk.propagate = False
    return handler


def span(name: str, /, *, parent: str | None = None, **attributes: Any) -> contextlib.AbstractContextManager[Any]:
    """A context manager around one step: a span named ``name`` when tracing is on, else a no-op.

    ``attributes`` are added as ``baselinr.<key>`` unless the key holds a dot already
    (``db.operation.name``); ``None`` values are left out; ``dialect`` adds ``db.system.name``
    too. ``parent``: a W3C ``traceparent`` to continue instead of the current span (the
    operator's run, kept in the resource's status). It yields the span (or ``None``)."""
    tracer = _state.get("tracer")
    if tracer is None:
        return _NOOP
    return _span(tracer, name, parent, attributes)


def _context(parent: str | None) -> Any:
    if not parent:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator().extract({"traceparent": parent})


@contextlib.contextmanager
def _span(tracer: Any, name: str, parent: str | None, attributes: dict[str, Any]) -> Iterator[Any]:
    trace = _state["trace"]
    with tracer.start_as_current_span(
        name, context=_context(parent), record_exception=False, set_status_on_exception=False
    ) as current:
        annotate(current, **attributes)
        try:
            yield current
        except BaseException as exc:
            current.set_attribute("error.type", type(exc).__name__)
            current.set_status(trace.Status(trace.StatusCode.ERROR, type(exc).__name__))
            raise


def annotate(current: Any, **attributes: Any) -> None:
    """Add ``attributes`` to a span from ``span`` (nothing when it is ``None``: tracing off)."""
    if current is None:
        return
    if "dialect" in attributes:
        attributes["db.system.name"] = db_system(attributes["dialect"])
    for key, value in attributes.items():
        if value is not None:
            current.set_attribute(key if "." in key else f"baselinr.{key}", value)


def end_command(current: Any, name: str, exit_code: int) -> None:
    """Name the command's span after the command that ran; an error status for a non-zero exit."""
    if current is None:
        return
    current.update_name(name)
    if exit_code != 0:
        trace = _state["trace"]
        current.set_status(trace.Status(trace.StatusCode.ERROR, f"exit {exit_code}"))


def event(name: str, **attributes: Any) -> None:
    """An event on the current span (a lock retry, for instance); nothing when tracing is off."""
    if "tracer" not in _state:
        return
    current = _state["trace"].get_current_span()
    current.add_event(name, {k if "." in k else f"baselinr.{k}": v for k, v in attributes.items() if v is not None})


def sql_text_wanted() -> bool:
    """Whether statement spans carry their SQL text (``BASELINR_TRACE_SQL=1``)."""
    return bool(_state.get("sql"))


def statement(sql: str) -> contextlib.AbstractContextManager[Any]:
    """The span of one SQL statement: its first keyword and, when asked, its text (the dialect is its parent's)."""
    if "tracer" not in _state:
        return _NOOP
    words = sql.lstrip().split(None, 1)
    operation = words[0].upper() if words and words[0].isalpha() else None
    text = sql if _state.get("sql") else None
    return span("statement", **{"db.operation.name": operation, "db.query.text": text})


def db_system(dialect: str) -> str:
    """OpenTelemetry's ``db.system.name`` for one of our dialect names."""
    return {"postgres": "postgresql"}.get(dialect, dialect)


def open_span(name: str, /, **attributes: Any) -> tuple[Any, str | None]:
    """A span under the current one that outlives this call (a Job, from its creation to its end),
    and its ``traceparent`` to hand to what it covers; ``(None, None)`` when off. End it with ``close_span``."""
    tracer = _state.get("tracer")
    if tracer is None:
        return None, None
    opened = tracer.start_span(name, record_exception=False, set_status_on_exception=False)
    annotate(opened, **attributes)
    ctx = opened.get_span_context()
    return opened, f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def close_span(opened: Any, *, failed: bool = False, **attributes: Any) -> None:
    """End a span from ``open_span`` with its last attributes (an error status if ``failed``)."""
    if opened is None or "tracer" not in _state:
        return
    annotate(opened, **attributes)
    if failed:
        trace = _state["trace"]
        opened.set_status(trace.Status(trace.StatusCode.ERROR, "failed"))
    opened.end()


def current_ids() -> tuple[str | None, str | None]:
    """The trace and span ids of the current span, in hex, for a log line; ``(None, None)`` when off or outside."""
    if "tracer" not in _state:
        return None, None
    ctx = _state["trace"].get_current_span().get_span_context()
    if not ctx.is_valid:
        return None, None
    return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"


def traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span, for a child process's environment (``None`` when off)."""
    if "tracer" not in _state:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier.get("traceparent")
