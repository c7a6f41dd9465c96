"""Log records that name their resource and trace, and the one-JSON-object-per-line format.

``install`` (called by the CLI under ``--log-format json`` and by the
operator's startup) makes every log record carry ``level``, ``resource``
(the ``BaselinrSchema`` it is about: ``bound_resource`` in the operator, the
``BASELINR_RESOURCE`` variable the operator puts in its Jobs' Pods), and the
``trace_id`` / ``span_id`` of the current span when tracing is on
(``baselinr.tracing``), ``None`` otherwise. ``JsonLines`` formats a record as
one JSON object (the CLI's handler); the operator's JSON lines are kopf's
(``kopf run --log-format=json``), which add those attributes by themselves;
``KubeObjects`` on its handler names the object of kopf's own records.
Messages are the callers' own, which never hold a password.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import logging
import os
from collections.abc import Iterator
from typing import Any

from baselinr import tracing

RESOURCE_ENV = "BASELINR_RESOURCE"
FORMATS = ("text", "json")
_resource: contextvars.ContextVar[str | None] = contextvars.ContextVar("baselinr_resource", default=None)


@contextlib.contextmanager
def bound_resource(resource: str) -> Iterator[None]:
    """Records logged in this block (this thread or task) are about ``resource`` (``namespace/name``)."""
    token = _resource.set(resource)
    try:
        yield
    finally:
        _resource.reset(token)


def install() -> None:
    """Make every record carry ``level``, ``resource``, ``trace_id`` and ``span_id`` (idempotent)."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "baselinr", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        record.level = record.levelname.lower()
        record.resource = _resource.get() or os.environ.get(RESOURCE_ENV) or None
        record.trace_id, record.span_id = tracing.current_ids()
        return record

    factory.baselinr = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


class KubeObjects(logging.Filter):
    """On a handler: a record of kopf's about an object (its ``k8s_ref``, set after the record was
    made) names that object as its ``resource``."""

    def filter(self, record: logging.LogRecord) -> bool:
        ref = getattr(record, "k8s_ref", None)
        if isinstance(ref, dict) and ref.get("name"):
            record.resource = f"{ref.get('namespace') or ''}/{ref['name']}".lstrip("/")
        return True


class JsonLines(logging.Formatter):
    """One JSON object per line: time, level, logger, message, resource, trace_id, span_id."""

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds"),
            "level": getattr(record, "level", record.levelname.lower()),
            "logger": record.name,
            "message": " ".join(record.getMessage().split()),
            "resource": getattr(record, "resource", None),
            "trace_id": getattr(record, "trace_id", None),
            "span_id": getattr(record, "span_id", None),
        }
        if record.exc_info and record.exc_info[0] is not None:
            data["error_type"] = record.exc_info[0].__name__  # its message may quote a row: the type only
        return json.dumps(data, ensure_ascii=False)
