"""Pure builders of the Jobs the operator runs: backup, migrate and validate.

Called by ``handlers`` (through the planner's choice of step). Each builder
takes the owning resource, its parsed spec, the run number and the default
image, and returns a ``batch/v1`` Job manifest; nothing here talks to the
API. Names are deterministic (resource, step, target, run: ``job_name``), so a
restarted operator finds and adopts the Job it created instead of creating
another; the planner names a run's Job once (``status.run.job``) and the
builders take that name (without one, as for a Job outside a run, they derive
it the same way).
The Job mounts the config Secret read-only at ``/etc/baselinr`` and runs
``baselinr job <step>``, which writes its JSON result to the termination
message (``terminationMessagePolicy: File``: never the container's output). With tracing on, the Pod's environment carries the
operator's ``TRACEPARENT`` (the Job's span) and ``OTEL_*`` settings, so the
engine's spans continue the operator's trace.
Pods follow the Pod Security "restricted" profile (non-root, read-only root
filesystem, no privilege escalation, all capabilities dropped, RuntimeDefault
seccomp) and mount no service-account token; a resource can only tighten
that (``policy``), and the builders drop whatever would loosen it.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from baselinr.config import CONFIG_SOURCE_ENV
from baselinr.errors import EXIT_INVALID, EXIT_MIGRATION_FAILED, EXIT_USAGE
from baselinr.logs import RESOURCE_ENV
from baselinr_operator import API_VERSION, KIND, MANAGED_BY
from baselinr_operator.outcome import job_finished
from baselinr_operator.policy import CONTAINER_FIELDS, ENV_SOURCES, LOOSENING_ANNOTATIONS, POD_FIELDS, tightened
from baselinr_operator.spec import ObjectStore, SchemaSpec
from baselinr_operator.status import Step

CONFIG_DIR = "/etc/baselinr"
CONFIG_PATH = f"{CONFIG_DIR}/config.yml"
BACKUP_DIR = "/var/backups/baselinr"
RESULT_PATH = "/dev/termination-log"
CONTAINER = "baselinr"
PERMANENT_EXIT_CODES = (EXIT_INVALID, EXIT_USAGE, EXIT_MIGRATION_FAILED)  # retrying the Pod cannot help
NAME_MAX = 63  # Job names end up in the job-name label of its Pods

LABEL_SCHEMA = "baselinr.io/schema"
LABEL_STEP = "baselinr.io/step"
LABEL_TARGET = "baselinr.io/target"
LABEL_RUN = "baselinr.io/run"
STEPS = {Step.BACKUP: "backup", Step.MIGRATE: "migrate", Step.VALIDATE: "validate"}

POD_SECURITY_DEFAULTS = {"runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001, "seccompProfile": {"type": "RuntimeDefault"}}
POD_SECURITY_FIXED = {"runAsNonRoot": True}
CONTAINER_SECURITY_DEFAULTS: dict[str, Any] = {}
CONTAINER_SECURITY_FIXED = {
    "allowPrivilegeEscalation": False,
    "privileged": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
}


@dataclass(frozen=True)
class Owner:
    """The BaselinrSchema a Job belongs to."""

    name: str
    namespace: str
    uid: str

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> Owner:
        meta = body["metadata"]
        return cls(meta["name"], meta["namespace"], meta["uid"])


def job_name(owner_name: str, step: str, target: int, run: int) -> str:
    """``<resource>-<step>-v<target>-<run>``, shortened with a hash when longer than 63 characters."""
    suffix = f"-{STEPS[step]}-v{target}-{run}"
    name = owner_name + suffix
    if len(name) <= NAME_MAX:
        return name
    digest = hashlib.sha256(owner_name.encode()).hexdigest()[:8]
    return f"{owner_name[: NAME_MAX - len(suffix) - 9].rstrip('-.')}-{digest}{suffix}"


def selector_labels(owner_name: str) -> dict[str, str]:
    return {"app.kubernetes.io/managed-by": MANAGED_BY, LABEL_SCHEMA: _label_value(owner_name)}


def build_backup_job(
    owner: Owner, spec: SchemaSpec, run: int, default_image: str, name: str | None = None, env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    store = spec.backup.object_store
    dest = store.url if store is not None else BACKUP_DIR
    args = ["job", "backup", "--config", CONFIG_PATH, "--dest", dest, "--result-file", RESULT_PATH]
    if spec.backup.keep:
        args += ["--keep", str(spec.backup.keep)]
    if store is not None:
        return _job(
            owner, spec, Step.BACKUP, run, default_image, args + _object_store_args(store), name, env, extra_env=_aws_env(store)
        )
    mount: dict[str, Any] = {"name": "backups", "mountPath": BACKUP_DIR}
    if spec.backup.sub_path:
        mount["subPath"] = spec.backup.sub_path
    volume = {**copy.deepcopy(dict(spec.backup.volume or {"emptyDir": {}})), "name": "backups"}
    return _job(owner, spec, Step.BACKUP, run, default_image, args, name, env, extra_mounts=[mount], extra_volumes=[volume])


def build_migrate_job(
    owner: Owner, spec: SchemaSpec, run: int, default_image: str, name: str | None = None, env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    args = ["job", "migrate", "--config", CONFIG_PATH, "--target", str(spec.target_version), "--result-file", RESULT_PATH]
    if spec.allow_downgrade:
        args.append("--allow-downgrade")
    return _job(owner, spec, Step.MIGRATE, run, default_image, args, name, env)


def build_validate_job(
    owner: Owner, spec: SchemaSpec, run: int, default_image: str, name: str | None = None, env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    args = ["job", "validate", "--config", CONFIG_PATH, "--result-file", RESULT_PATH]
    return _job(owner, spec, Step.VALIDATE, run, default_image, args, name, env)


def _object_store_args(store: ObjectStore) -> list[str]:
    args = []
    if store.endpoint:
        args += ["--endpoint-url", store.endpoint]
    if store.region:
        args += ["--region", store.region]
    return args


def _aws_env(store: ObjectStore) -> list[dict[str, Any]]:
    """The credentials from the Secret, as the AWS chain's variables (never in the arguments); without a Secret,
    the chain finds the ServiceAccount's web identity (IRSA) or the node's role."""
    if store.credentials_secret is None:
        return []
    keys = (("AWS_ACCESS_KEY_ID", False), ("AWS_SECRET_ACCESS_KEY", False), ("AWS_SESSION_TOKEN", True))
    return [
        {"name": key, "valueFrom": {"secretKeyRef": {"name": store.credentials_secret, "key": key, "optional": optional}}}
        for key, optional in keys
    ]


BUILDERS = {Step.BACKUP: build_backup_job, Step.MIGRATE: build_migrate_job, Step.VALIDATE: build_validate_job}


def build_job(
    step: str, owner: Owner, spec: SchemaSpec, run: int, default_image: str, name: str, env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The Job of ``step`` under ``name``, the one the planner recorded in ``status.run.job``; ``env``:
    the operator's own entries for its Pod (``TRACEPARENT`` and the ``OTEL_*`` settings of
    ``OperatorSettings.trace_env`` that continue its trace, ``BASELINR_LOG_FORMAT``), which win over
    the template's entries of those names."""
    return BUILDERS[step](owner, spec, run, default_image, name, env)


def _job(
    owner: Owner,
    spec: SchemaSpec,
    step: str,
    run: int,
    default_image: str,
    args: list[str],
    name: str | None,
    env: Mapping[str, str] | None = None,
    *,
    extra_mounts: list[dict[str, Any]] | None = None,
    extra_volumes: list[dict[str, Any]] | None = None,
    extra_env: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    tpl = spec.job_template
    labels = {
        **tpl.labels,
        **selector_labels(owner.name),
        LABEL_STEP: STEPS[step],
        LABEL_TARGET: str(spec.target_version),
        LABEL_RUN: str(run),
    }
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": spec.image or default_image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["baselinr"],
        "args": args,
        "env": [
            {"name": "HOME", "value": "/tmp"},
            {"name": "TMPDIR", "value": "/tmp"},
            {"name": CONFIG_SOURCE_ENV, "value": f"key {spec.secret_key!r} of Secret {spec.secret_name!r}"},
            {"name": RESOURCE_ENV, "value": f"{owner.namespace}/{owner.name}"},  # the resource its log lines name
            *(extra_env or []),
            *(e for e in _env(spec) if e.get("name") not in (env or {}) and e.get("name") != RESOURCE_ENV),
            *({"name": k, "value": v} for k, v in (env or {}).items()),
        ],
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
            *(extra_mounts or []),
        ],
        "terminationMessagePath": RESULT_PATH,
        "terminationMessagePolicy": "File",  # the engine's result only, never the container's output
        "securityContext": tightened(
            tpl.security_context, CONTAINER_FIELDS, CONTAINER_SECURITY_DEFAULTS, CONTAINER_SECURITY_FIXED
        ),
    }
    if tpl.resources:
        container["resources"] = dict(tpl.resources)
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "securityContext": tightened(tpl.pod_security_context, POD_FIELDS, POD_SECURITY_DEFAULTS, POD_SECURITY_FIXED),
        "containers": [container],
        "volumes": [
            {
                "name": "config",
                "secret": {
                    "secretName": spec.secret_name,
                    "items": [{"key": spec.secret_key, "path": "config.yml"}],
                    "defaultMode": 0o440,
                    # A kubelet cannot mount a missing Secret or key: the Pod would wait in ContainerCreating
                    # with only a FailedMount Event to say why. Optional, the container starts and the engine
                    # reports the file missing, naming the Secret and key (CONFIG_SOURCE_ENV).
                    "optional": True,
                },
            },
            {"name": "tmp", "emptyDir": {}},
            *(extra_volumes or []),
        ],
    }
    if tpl.service_account:
        pod_spec["serviceAccountName"] = tpl.service_account
    if tpl.node_selector:
        pod_spec["nodeSelector"] = dict(tpl.node_selector)
    if tpl.tolerations:
        pod_spec["tolerations"] = [dict(t) for t in tpl.tolerations]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name or job_name(owner.name, step, spec.target_version, run),
            "namespace": owner.namespace,
            "labels": labels,
            "annotations": _annotations(spec),
            "ownerReferences": [
                {"apiVersion": API_VERSION, "kind": KIND, "name": owner.name, "uid": owner.uid, "controller": True}
            ],
        },
        "spec": {
            "backoffLimit": spec.backoff_limit,
            "activeDeadlineSeconds": spec.active_deadline_seconds,
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "FailJob",
                        "onExitCodes": {"containerName": CONTAINER, "operator": "In", "values": list(PERMANENT_EXIT_CODES)},
                    }
                ]
            },
            "template": {
                "metadata": {"labels": labels, "annotations": _annotations(spec)},
                "spec": pod_spec,
            },
        },
    }


def expired_jobs(jobs: Sequence[Mapping[str, Any]], keep: int, current: str | None) -> list[str]:
    """Names of a resource's finished Jobs beyond the newest ``keep`` (never ``current``, never a running one)."""
    finished = [j for j in jobs if job_finished(j)]
    finished.sort(key=lambda j: (str(j["metadata"].get("creationTimestamp") or ""), j["metadata"]["name"]), reverse=True)
    return [j["metadata"]["name"] for j in finished[max(keep, 1) :] if j["metadata"]["name"] != current]


def _annotations(spec: SchemaSpec) -> dict[str, str]:
    return {k: v for k, v in spec.job_template.annotations.items() if not k.startswith(LOOSENING_ANNOTATIONS)}


def _env(spec: SchemaSpec) -> list[dict[str, Any]]:
    """The template's env entries that reach nothing but literals, the pod's own fields and the config Secret."""
    kept = []
    for entry in spec.job_template.env:
        source = entry.get("valueFrom")
        if source is not None:
            kinds = list(source) if isinstance(source, Mapping) else []
            if len(kinds) != 1 or kinds[0] not in ENV_SOURCES:
                continue
            if kinds[0] == "secretKeyRef" and (source["secretKeyRef"] or {}).get("name") != spec.secret_name:
                continue
        kept.append(copy.deepcopy(dict(entry)))
    return kept


def _label_value(text: str) -> str:
    if len(text) <= 63:
        return text
    return text[:54].rstrip("-._") + "-" + hashlib.sha256(text.encode()).hexdigest()[:8]
