"""The operator's own settings, read once from the environment into a frozen object.

Read by the startup activity of ``handlers`` into ``runtime.Runtime`` and
passed down explicitly. Every variable is optional:

    BASELINR_OPERATOR_IMAGE            default Job image (spec.image overrides)
    BASELINR_OPERATOR_NAMESPACES       comma-separated namespaces to watch (default: all)
    BASELINR_OPERATOR_METRICS_PORT     Prometheus endpoint port, 0 = off (default 8080)
    BASELINR_OPERATOR_HEALTH_PORT      liveness endpoint port (default 8081)
    BASELINR_OPERATOR_RETRY_SECONDS    first retry delay after a transient failure (default 30)
    BASELINR_OPERATOR_RETRY_LIMIT      transient failures before giving up (default 5)
    BASELINR_OPERATOR_TICK_SECONDS     how often scheduled work (retries, drift checks) is looked at (default 10)
    BASELINR_OPERATOR_KEEP_JOBS        finished Jobs kept per resource, the newest; older ones are deleted (default 5)
    BASELINR_OPERATOR_LOG_FORMAT       text (default) or json: one JSON object per line with level, message,
                                       resource, trace_id and span_id, for the operator and its Jobs

Leader election, for more than one replica (``leader``; the chart turns it on):

    BASELINR_OPERATOR_LEADER_ELECTION  "true": only the replica that holds the Lease acts (default: off, one
                                       replica acts alone)
    BASELINR_OPERATOR_LEASE_NAME       the Lease's name (default baselinr-operator)
    BASELINR_OPERATOR_LEASE_NAMESPACE  its namespace (default: the pod's own, from its service account)
    BASELINR_OPERATOR_LEASE_SECONDS    how long a Lease not renewed stays its holder's (default 15)
    BASELINR_OPERATOR_RENEW_DEADLINE   how long the leader acts without a successful renewal (default 10;
                                       less than the lease duration)
    BASELINR_OPERATOR_RETRY_PERIOD     how often the leader renews and a standby looks (default 2)

What a BaselinrSchema may put into its Jobs (its editors need no rights on
Pods, Jobs or Secrets, so the operator must not lend them its own):

    BASELINR_OPERATOR_ALLOWED_IMAGES            comma-separated image repositories spec.image may name; an
                                                entry ending in "/" allows every repository under it
                                                (default: the repository of BASELINR_OPERATOR_IMAGE)
    BASELINR_OPERATOR_ALLOWED_SERVICE_ACCOUNTS  comma-separated ServiceAccounts jobTemplate.serviceAccountName
                                                may name (default: none, the Jobs run as "default")
    BASELINR_OPERATOR_ALLOWED_VOLUME_KINDS      comma-separated volume kinds backup.volume may be, and
                                                "objectStore" to allow backup.objectStore
                                                (default: persistentVolumeClaim)

Tracing (``baselinr.tracing``): the standard ``OTEL_*`` variables switch it on
for the operator (service name ``baselinr-operator`` unless
``OTEL_SERVICE_NAME``); the Jobs get those of ``TRACE_ENV_PASSED`` and the
Job's ``TRACEPARENT``. ``OTEL_EXPORTER_OTLP_HEADERS`` is not passed on (it
may hold a token, and a Job's spec is readable by more people than the
operator's): give the Jobs a collector that needs no headers.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

TRACE_ENV_PASSED = (
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_SDK_DISABLED",
    "BASELINR_TRACE_SQL",
)


@dataclass(frozen=True)
class OperatorSettings:
    image: str = "baselinr:0.1.0"
    namespaces: tuple[str, ...] = ()
    metrics_port: int = 8080
    health_port: int = 8081
    retry_seconds: float = 30.0
    retry_limit: int = 5
    tick_seconds: float = 10.0
    keep_jobs: int = 5
    allowed_images: tuple[str, ...] = ()  # empty: the repository of ``image`` only
    allowed_service_accounts: tuple[str, ...] = ()
    allowed_volume_kinds: tuple[str, ...] = ("persistentVolumeClaim",)
    leader_election: bool = False
    lease_name: str = "baselinr-operator"
    lease_namespace: str = ""  # empty: the service account's namespace
    lease_seconds: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    log_format: str = "text"  # text | json (kopf's JSON lines, with level, resource, trace_id, span_id)
    # The OTEL_* settings the Jobs get from the operator's environment (TRACE_ENV_PASSED), when it traces.
    trace_env: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OperatorSettings:
        e = os.environ if env is None else env
        d = cls()
        namespaces = _list(e, "BASELINR_OPERATOR_NAMESPACES")
        kinds = _list(e, "BASELINR_OPERATOR_ALLOWED_VOLUME_KINDS") if "BASELINR_OPERATOR_ALLOWED_VOLUME_KINDS" in e else None
        return cls(
            image=e.get("BASELINR_OPERATOR_IMAGE") or d.image,
            namespaces=namespaces,
            metrics_port=int(_number(e, "BASELINR_OPERATOR_METRICS_PORT", d.metrics_port, int)),
            health_port=int(_number(e, "BASELINR_OPERATOR_HEALTH_PORT", d.health_port, int)),
            retry_seconds=_number(e, "BASELINR_OPERATOR_RETRY_SECONDS", d.retry_seconds, float),
            retry_limit=int(_number(e, "BASELINR_OPERATOR_RETRY_LIMIT", d.retry_limit, int)),
            tick_seconds=_number(e, "BASELINR_OPERATOR_TICK_SECONDS", d.tick_seconds, float),
            keep_jobs=max(int(_number(e, "BASELINR_OPERATOR_KEEP_JOBS", d.keep_jobs, int)), 1),
            allowed_images=_list(e, "BASELINR_OPERATOR_ALLOWED_IMAGES"),
            allowed_service_accounts=_list(e, "BASELINR_OPERATOR_ALLOWED_SERVICE_ACCOUNTS"),
            allowed_volume_kinds=d.allowed_volume_kinds if kinds is None else kinds,
            **_election(e, d),
            log_format="json" if e.get("BASELINR_OPERATOR_LOG_FORMAT", "").strip().lower() == "json" else "text",
            trace_env=tuple((k, e[k].strip()) for k in TRACE_ENV_PASSED if e.get(k, "").strip()),
        )

    def retry_delay(self, failures: int) -> float:
        """Exponential backoff: retry_seconds, then twice that, ... capped at one hour."""
        return float(min(self.retry_seconds * 2 ** max(failures - 1, 0), 3600.0))


def _election(e: Mapping[str, str], d: OperatorSettings) -> dict[str, Any]:
    flag = e.get("BASELINR_OPERATOR_LEADER_ELECTION", "").strip().lower()
    if flag not in ("", "true", "false", "1", "0", "yes", "no"):
        raise SystemExit(f"BASELINR_OPERATOR_LEADER_ELECTION={flag!r} is not true or false")
    lease = _number(e, "BASELINR_OPERATOR_LEASE_SECONDS", d.lease_seconds, float)
    deadline = _number(e, "BASELINR_OPERATOR_RENEW_DEADLINE", d.renew_deadline, float)
    period = _number(e, "BASELINR_OPERATOR_RETRY_PERIOD", d.retry_period, float)
    if not 0 < period < deadline < lease:
        raise SystemExit(
            "leader election needs 0 < BASELINR_OPERATOR_RETRY_PERIOD < BASELINR_OPERATOR_RENEW_DEADLINE < "
            f"BASELINR_OPERATOR_LEASE_SECONDS; got {period}, {deadline}, {lease}"
        )
    return {
        "leader_election": flag in ("true", "1", "yes"),
        "lease_name": e.get("BASELINR_OPERATOR_LEASE_NAME", "").strip() or d.lease_name,
        "lease_namespace": e.get("BASELINR_OPERATOR_LEASE_NAMESPACE", "").strip(),
        "lease_seconds": lease,
        "renew_deadline": deadline,
        "retry_period": period,
    }


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in env.get(name, "").split(",") if item.strip())


def _number(env: Mapping[str, str], name: str, default: int | float, kind: type[int] | type[float]) -> int | float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise SystemExit(f"{name}={raw!r} is not a number") from None
    if value < 0:
        raise SystemExit(f"{name} must not be negative")
    return value
