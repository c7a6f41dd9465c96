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
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


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
        )

    def retry_delay(self, failures: int) -> float:
        """Exponential backoff: retry_seconds, then twice that, ... capped at one hour."""
        return float(min(self.retry_seconds * 2 ** max(failures - 1, 0), 3600.0))


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
