"""A BaselinrSchema's ``spec`` as a frozen, typed object (the CRD's defaults applied again here).

Built by ``handlers`` from the resource and read by the pure ``planner`` and
``jobs`` builders. The API server has already validated the spec against the
CRD; ``parse_spec`` only turns it into Python values (and rejects what a
hand-made object could still get wrong, with ``SpecError``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

BACKUP_MODES = ("Required", "Optional", "Skip")
INT32_MAX = 2**31 - 1
_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


class SpecError(ValueError):
    """The spec cannot be used as it is (the message says which field)."""


@dataclass(frozen=True)
class ObjectStore:
    """``spec.backup.objectStore``: backups in S3 or an S3-compatible server instead of a volume."""

    bucket: str
    prefix: str = ""
    endpoint: str | None = None
    region: str | None = None
    # A Secret with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and optionally AWS_SESSION_TOKEN);
    # None: the AWS chain of the Job's ServiceAccount (IRSA, pod identity) or its node.
    credentials_secret: str | None = None

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix.strip('/')}".rstrip("/")


@dataclass(frozen=True)
class BackupSpec:
    mode: str = "Required"
    volume: Mapping[str, Any] | None = None
    sub_path: str | None = None
    keep: int | None = None
    object_store: ObjectStore | None = None


@dataclass(frozen=True)
class JobTemplate:
    service_account: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()
    resources: Mapping[str, Any] | None = None
    security_context: Mapping[str, Any] = field(default_factory=dict)
    pod_security_context: Mapping[str, Any] = field(default_factory=dict)
    env: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class SchemaSpec:
    target_version: int
    secret_name: str
    secret_key: str = "config.yml"
    image: str | None = None
    backup: BackupSpec = field(default_factory=BackupSpec)
    allow_downgrade: bool = False
    suspend: bool = False
    validate_interval: float | None = None  # seconds; None = off
    backoff_limit: int = 0
    active_deadline_seconds: int = 3600
    job_template: JobTemplate = field(default_factory=JobTemplate)


def parse_duration(text: str | None) -> float | None:
    """``6h``, ``30m``, ``1h30m``, ``90s`` -> seconds; empty or zero -> None (off)."""
    if not text:
        return None
    m = _DURATION.match(text)
    if not m:
        raise SpecError(f"spec.validateInterval {text!r} is not a duration such as 6h, 30m or 90s")
    h, mi, s = (int(g or 0) for g in m.groups())
    seconds = h * 3600 + mi * 60 + s
    return float(seconds) if seconds else None


def parse_spec(spec: Mapping[str, Any]) -> SchemaSpec:
    target = spec.get("targetVersion")
    if not isinstance(target, int) or isinstance(target, bool) or not 1 <= target <= INT32_MAX:
        raise SpecError(f"spec.targetVersion must be a positive 32-bit integer, got {target!r}")
    ref = spec.get("configSecretRef") or {}
    if not ref.get("name"):
        raise SpecError("spec.configSecretRef.name is required")
    raw_backup = spec.get("backup") or {}
    mode = raw_backup.get("mode", "Required")
    if mode not in BACKUP_MODES:
        raise SpecError(f"spec.backup.mode must be one of {', '.join(BACKUP_MODES)}, got {mode!r}")
    if mode != "Skip" and not raw_backup.get("volume") and not raw_backup.get("objectStore"):
        raise SpecError("spec.backup.volume or spec.backup.objectStore is required unless spec.backup.mode is Skip")
    if raw_backup.get("volume") and raw_backup.get("objectStore"):
        raise SpecError("spec.backup takes a volume or an objectStore, not both")
    tpl = spec.get("jobTemplate") or {}
    return SchemaSpec(
        target_version=target,
        secret_name=str(ref["name"]),
        secret_key=str(ref.get("key") or "config.yml"),
        image=spec.get("image") or None,
        backup=BackupSpec(
            mode=mode,
            volume=dict(raw_backup["volume"]) if raw_backup.get("volume") else None,
            sub_path=raw_backup.get("subPath") or None,
            keep=raw_backup.get("keep"),
            object_store=_object_store(raw_backup.get("objectStore")),
        ),
        allow_downgrade=bool(spec.get("allowDowngrade", False)),
        suspend=bool(spec.get("suspend", False)),
        validate_interval=parse_duration(spec.get("validateInterval")),
        backoff_limit=int(spec.get("backoffLimit", 0)),
        active_deadline_seconds=int(spec.get("activeDeadlineSeconds", 3600)),
        job_template=JobTemplate(
            service_account=tpl.get("serviceAccountName") or None,
            annotations=dict(tpl.get("annotations") or {}),
            labels=dict(tpl.get("labels") or {}),
            node_selector=dict(tpl.get("nodeSelector") or {}),
            tolerations=tuple(dict(t) for t in tpl.get("tolerations") or ()),
            resources=dict(tpl["resources"]) if tpl.get("resources") else None,
            security_context=dict(tpl.get("securityContext") or {}),
            pod_security_context=dict(tpl.get("podSecurityContext") or {}),
            env=tuple(dict(e) for e in tpl.get("env") or ()),
        ),
    )


_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def _object_store(raw: Mapping[str, Any] | None) -> ObjectStore | None:
    if not raw:
        return None
    bucket = raw.get("bucket")
    if not isinstance(bucket, str) or not _BUCKET.match(bucket):
        raise SpecError(f"spec.backup.objectStore.bucket must be an S3 bucket name, got {bucket!r}")
    prefix = str(raw.get("prefix") or "").strip("/")
    if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
        raise SpecError(f"spec.backup.objectStore.prefix {prefix!r} has an empty, '.' or '..' part")
    secret = (raw.get("credentialsSecretRef") or {}).get("name") or None
    return ObjectStore(
        bucket=bucket,
        prefix=prefix,
        endpoint=raw.get("endpoint") or None,
        region=raw.get("region") or None,
        credentials_secret=str(secret) if secret else None,
    )
