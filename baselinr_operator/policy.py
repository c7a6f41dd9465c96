"""Pure: what a BaselinrSchema may put into the Jobs the operator creates for it.

A ``BaselinrSchema`` is edited by people who may have no rights on Pods,
Jobs, ServiceAccounts or Secrets; the operator creates Jobs with its own
rights, so without bounds it would lend them those rights (a confused
deputy). Called by the ``planner`` before any Job is asked for, and by the
``jobs`` builders (which keep only what passes here, whatever they are given):

* the image's repository must be one of the operator's allowed repositories;
* a ServiceAccount must be one the operator allows (none by default);
* the backup volume must be an allowed kind (``persistentVolumeClaim`` by default);
* security contexts follow the Pod Security "restricted" profile and can only
  be tightened: a non-root user or group id, a seccomp profile, nothing else;
* ``env`` may hold literal values and references to the pod's own fields, or
  to keys of the config Secret itself; no other Secret or ConfigMap;
* annotations that would loosen AppArmor or seccomp are refused.

``violations`` returns one line per refused field; empty means allowed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from baselinr_operator.settings import OperatorSettings
from baselinr_operator.spec import SchemaSpec

# Fields of a security context a resource may set, each with the test its value must pass.
_ID = "a user or group id of at least 1"


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _seccomp_ok(value: Any) -> bool:
    return isinstance(value, Mapping) and value.get("type") in ("RuntimeDefault", "Localhost")


POD_FIELDS: dict[str, tuple[Any, str]] = {
    "runAsUser": (_is_id, _ID),
    "runAsGroup": (_is_id, _ID),
    "fsGroup": (_is_id, _ID),
    "supplementalGroups": (lambda v: isinstance(v, list) and all(_is_id(g) for g in v), "a list of group ids of at least 1"),
    "fsGroupChangePolicy": (lambda v: v in ("OnRootMismatch", "Always"), "OnRootMismatch or Always"),
    "runAsNonRoot": (lambda v: v is True, "true"),
    "seccompProfile": (_seccomp_ok, "type RuntimeDefault or Localhost"),
}
CONTAINER_FIELDS: dict[str, tuple[Any, str]] = {
    "runAsUser": (_is_id, _ID),
    "runAsGroup": (_is_id, _ID),
    "runAsNonRoot": (lambda v: v is True, "true"),
    "allowPrivilegeEscalation": (lambda v: v is False, "false"),
    "privileged": (lambda v: v is False, "false"),
    "readOnlyRootFilesystem": (lambda v: v is True, "true"),
    "capabilities": (lambda v: isinstance(v, Mapping) and set(v) <= {"drop"}, "only drop (nothing can be added)"),
    "seccompProfile": (_seccomp_ok, "type RuntimeDefault or Localhost"),
}
LOOSENING_ANNOTATIONS = (
    "container.apparmor.security.beta.kubernetes.io/",
    "seccomp.security.alpha.kubernetes.io/",
    "container.seccomp.security.alpha.kubernetes.io/",
)
ENV_SOURCES = ("secretKeyRef", "fieldRef", "resourceFieldRef")
# The entry of allowedVolumeKinds that lets spec.backup.objectStore send backups out of the cluster (off by default).
OBJECT_STORE_KIND = "objectStore"


def allowed_images(settings: OperatorSettings) -> tuple[str, ...]:
    return settings.allowed_images or (image_repository(settings.image),)


def image_repository(image: str) -> str:
    """``registry:5000/team/baselinr:1.2@sha256:...`` -> ``registry:5000/team/baselinr``."""
    name = image.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


def image_allowed(image: str, settings: OperatorSettings) -> bool:
    repo = image_repository(image)
    for entry in allowed_images(settings):
        if repo == entry or (entry.endswith("/") and repo.startswith(entry) and len(repo) > len(entry)):
            return True
    return False


def violations(spec: SchemaSpec, settings: OperatorSettings) -> list[str]:
    """Every field of ``spec`` the operator will not put into a Job, one line each."""
    found: list[str] = []
    if spec.image and not image_allowed(spec.image, settings):
        found.append(f"spec.image {spec.image!r} is not from an allowed repository ({', '.join(allowed_images(settings))})")
    tpl = spec.job_template
    account = tpl.service_account
    if account and account != "default" and account not in settings.allowed_service_accounts:
        allowed = ", ".join(settings.allowed_service_accounts) or "none"
        found.append(f"spec.jobTemplate.serviceAccountName {account!r} is not an allowed ServiceAccount (allowed: {allowed})")
    store = spec.backup.object_store
    if spec.backup.mode != "Skip" and store is not None:
        if OBJECT_STORE_KIND not in settings.allowed_volume_kinds:
            allowed = ", ".join(settings.allowed_volume_kinds) or "none"
            found.append(
                f"spec.backup.objectStore is not allowed (allowed: {allowed}; the operator's settings add {OBJECT_STORE_KIND!r})"
            )
        if store.credentials_secret is not None and store.credentials_secret != spec.secret_name:
            found.append(f"spec.backup.objectStore.credentialsSecretRef may only name the config Secret {spec.secret_name!r}")
    if spec.backup.mode != "Skip" and spec.backup.volume is not None:
        kinds = sorted(spec.backup.volume)
        if len(kinds) != 1 or kinds[0] not in settings.allowed_volume_kinds:
            allowed = ", ".join(settings.allowed_volume_kinds) or "none"
            found.append(f"spec.backup.volume of kind {'/'.join(kinds) or 'none'} is not allowed (allowed: {allowed})")
    found += _security_context("spec.jobTemplate.podSecurityContext", tpl.pod_security_context, POD_FIELDS)
    found += _security_context("spec.jobTemplate.securityContext", tpl.security_context, CONTAINER_FIELDS)
    for key in tpl.annotations:
        if key.startswith(LOOSENING_ANNOTATIONS):
            found.append(f"spec.jobTemplate.annotations {key!r} cannot be set (the Jobs keep the restricted profile)")
    for i, entry in enumerate(tpl.env):
        source = entry.get("valueFrom")
        if source is None:
            continue
        where = f"spec.jobTemplate.env[{i}].valueFrom"
        kinds = list(source) if isinstance(source, Mapping) else []
        if len(kinds) != 1 or kinds[0] not in ENV_SOURCES:
            found.append(f"{where} may only be a fieldRef, a resourceFieldRef or a secretKeyRef of the config Secret")
        elif kinds[0] == "secretKeyRef" and (source["secretKeyRef"] or {}).get("name") != spec.secret_name:
            found.append(f"{where}.secretKeyRef may only name the config Secret {spec.secret_name!r}")
    return found


def _security_context(where: str, given: Mapping[str, Any], fields: Mapping[str, tuple[Any, str]]) -> list[str]:
    found = []
    for key, value in given.items():
        rule = fields.get(key)
        if rule is None:
            found.append(f"{where}.{key} cannot be set (the Jobs run with the restricted profile; allowed: {', '.join(fields)})")
        elif not rule[0](value):
            found.append(f"{where}.{key} must be {rule[1]}, got {value!r}")
    return found


def tightened(
    given: Mapping[str, Any], fields: Mapping[str, tuple[Any, str]], defaults: Mapping[str, Any], fixed: Mapping[str, Any]
) -> dict[str, Any]:
    """``defaults``, overridden by the fields of ``given`` that pass their rule, then ``fixed`` over all."""
    allowed = {k: v for k, v in given.items() if k in fields and fields[k][0](v)}
    return {**defaults, **allowed, **fixed}
