"""The one module that talks to the Kubernetes API (through the ``kubernetes`` client, Events included).

Called by ``handlers`` (module functions on one shared client) and by
``waiter`` (``SchemaClient``, a short-lived client of its own process that
applies, reads and watches one BaselinrSchema). Everything comes back as plain dicts in the API's
own camelCase shape, the same shape the builders produce. Errors surface as
kopf's vocabulary: ``kopf.TemporaryError`` for what a retry can fix (the API
server unreachable, a conflict), ``kopf.PermanentError`` for what it cannot
(a Job of that name that belongs to someone else), and ``JobRejected`` (a
``PermanentError``) when the API server refuses a Job the operator built.
Events are posted here too, not through ``kopf.event``: that needs kopf's
handler context, which the operator's own scheduler does not have. The
operator reads no Secrets: the Jobs mount the config Secret themselves.
``SchemaClient`` raises ``ConfigError`` and ``ApiFailure`` instead (the
waiter maps them to its exit codes; it runs outside kopf).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import kopf
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from baselinr_operator import API_VERSION, GROUP, KIND, MANAGED_BY, PLURAL, VERSION

log = logging.getLogger("baselinr_operator")
SA_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
_lock = threading.Lock()
_api: client.ApiClient | None = None


class JobRejected(kopf.PermanentError):
    """The API server refused to create a Job (invalid, forbidden, over quota): the message is its own."""


def api_client() -> client.ApiClient:
    """One shared client: $KUBECONFIG when set (read now, not at import), else the in-cluster account."""
    global _api
    with _lock:
        if _api is None:
            cfg, _ = configuration(os.environ.get("KUBECONFIG"))
            cfg.connection_pool_maxsize = 48  # the handlers' threads (32) and the scheduler's, each with one
            _api = client.ApiClient(cfg)
        return _api


def configuration(path: str | None) -> tuple[client.Configuration, str | None]:
    """The client configuration of kubeconfig ``path`` (else the in-cluster account) and its context's namespace."""
    cfg = client.Configuration()
    loader: Any = config  # the kubernetes package's config loaders carry no annotations
    namespace = None
    if path:
        loader.load_kube_config(config_file=path, client_configuration=cfg)
        _, active = loader.list_kube_config_contexts(config_file=path)
        namespace = (active or {}).get("context", {}).get("namespace")
    else:
        loader.load_incluster_config(client_configuration=cfg)
    return cfg, namespace


def close() -> None:
    global _api
    with _lock:
        if _api is not None:
            _api.close()  # type: ignore[no-untyped-call]
            _api = None


def _call(what: str, fn: Any, *args: Any, missing_ok: bool = False, **kwargs: Any) -> Any:
    try:
        response = fn(*args, _preload_content=False, **kwargs)
    except ApiException as exc:
        if missing_ok and exc.status == 404:
            return None
        if exc.status in (409, 429) or (exc.status or 0) >= 500:
            raise kopf.TemporaryError(f"{what}: {exc.status} {exc.reason}", delay=2) from None
        raise kopf.PermanentError(f"{what}: {exc.status} {exc.reason}: {_api_message(exc)}") from None
    except OSError as exc:  # connection refused, reset, TLS
        raise kopf.TemporaryError(f"{what}: {exc}", delay=5) from None
    return json.loads(response.data or "null")


def _api_message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or "{}").get("message", ""))
    except (TypeError, ValueError, AttributeError):
        return ""


def get_schema(namespace: str, name: str) -> dict[str, Any] | None:
    api = client.CustomObjectsApi(api_client())
    found: dict[str, Any] | None = _call(
        f"get {PLURAL}/{name}", api.get_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, name, missing_ok=True
    )
    return found


def patch_status(namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any] | None:
    """A JSON merge patch of ``.status`` alone: no resourceVersion, so spec edits never conflict with it.

    Returns the resource as written (None when it is gone).
    """
    api = client.CustomObjectsApi(api_client())
    written: dict[str, Any] | None = _call(
        f"patch {PLURAL}/{name}/status",
        api.patch_namespaced_custom_object_status,
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        name,
        {"status": dict(patch)},
        _content_type="application/merge-patch+json",
        missing_ok=True,
    )
    return written


def get_job(namespace: str, name: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = _call(
        f"get job {name}", client.BatchV1Api(api_client()).read_namespaced_job, name, namespace, missing_ok=True
    )
    return found


def create_job(manifest: Mapping[str, Any], owner_uid: str) -> tuple[dict[str, Any], bool]:
    """Create the Job, or adopt the one of that name that this resource already owns; (job, created)."""
    meta = manifest["metadata"]
    batch = client.BatchV1Api(api_client())
    try:
        response: Any = batch.create_namespaced_job(meta["namespace"], dict(manifest), _preload_content=False)  # type: ignore[arg-type]
        return json.loads(response.data), True
    except ApiException as exc:
        if exc.status != 409:
            if exc.status in (400, 403, 404, 422):
                detail = _api_message(exc) or str(exc.reason)
                raise JobRejected(f"{exc.status} {exc.reason}: {detail}") from None
            _call(f"create job {meta['name']}", _raise, exc)
    existing = get_job(meta["namespace"], meta["name"])
    if existing is None:
        raise kopf.TemporaryError(f"job {meta['name']} exists and is gone again", delay=1)
    owners = existing["metadata"].get("ownerReferences") or []
    if not any(o.get("uid") == owner_uid for o in owners):
        raise JobRejected(f"a Job named {meta['name']} exists and is not owned by this {KIND}; delete or rename it")
    return existing, False


def _raise(exc: ApiException, **_: Any) -> None:
    raise exc


def list_jobs(namespace: str, labels: Mapping[str, str]) -> list[dict[str, Any]]:
    selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    found = _call(
        f"list jobs {selector}", client.BatchV1Api(api_client()).list_namespaced_job, namespace, label_selector=selector
    )
    items: list[dict[str, Any]] = found.get("items") or []
    return items


def delete_job(namespace: str, name: str) -> None:
    """Delete a Job and, through the garbage collector, its Pods; already gone is fine."""
    _call(
        f"delete job {name}",
        client.BatchV1Api(api_client()).delete_namespaced_job,
        name,
        namespace,
        propagation_policy="Background",
        missing_ok=True,
    )


def job_pods(namespace: str, job_name: str) -> list[dict[str, Any]]:
    pods = _call(
        f"list pods of job {job_name}",
        client.CoreV1Api(api_client()).list_namespaced_pod,
        namespace,
        label_selector=f"batch.kubernetes.io/job-name={job_name}",
    )
    items: list[dict[str, Any]] = pods.get("items") or []
    return items


def pod_log_tail(namespace: str, pod: str, container: str, lines: int = 20) -> str | None:
    """The last ``lines`` lines of a running container's output; None when it cannot be read (best effort)."""
    try:
        response: Any = client.CoreV1Api(api_client()).read_namespaced_pod_log(
            pod, namespace, container=container, tail_lines=lines, limit_bytes=64 * 1024, _preload_content=False,
            _request_timeout=10,
        )  # fmt: skip
        return bytes(response.data).decode("utf-8", errors="replace")
    except (ApiException, OSError) as exc:
        log.debug("The log of pod %s/%s is not readable: %s", namespace, pod, exc)
        return None


def job_events(namespace: str, job: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The Events about one Job (the Job controller's FailedCreate says why it has no Pod)."""
    uid = job["metadata"].get("uid")
    found = _call(
        f"list events of job {job['metadata']['name']}",
        client.CoreV1Api(api_client()).list_namespaced_event,
        namespace,
        field_selector=f"involvedObject.uid={uid}",
    )
    items: list[dict[str, Any]] = found.get("items") or []
    return items


def post_event(body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
    """A core/v1 Event on the resource. Best effort: a refused Event is logged, never fatal to a reconcile."""
    meta = body["metadata"]
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": body.get("apiVersion") or API_VERSION,
            "kind": body.get("kind") or KIND,
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta.get("uid"),
        },
        "type": type_,
        "reason": reason,
        "message": message[:1024],
        "source": {"component": MANAGED_BY},
        "reportingComponent": MANAGED_BY,
        "reportingInstance": socket.gethostname()[:128],
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }
    try:
        _call(f"post event {reason}", client.CoreV1Api(api_client()).create_namespaced_event, meta["namespace"], event)
    except (kopf.TemporaryError, kopf.PermanentError) as exc:
        log.warning("Event %s on %s/%s not posted: %s", reason, meta["namespace"], meta["name"], exc)


def owner_body(namespace: str, name: str, uid: str) -> dict[str, Any]:
    """Enough of a resource to post Events about it."""
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"namespace": namespace, "name": name, "uid": uid}}


def list_schemas(namespaces: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Every BaselinrSchema in ``namespaces`` (all namespaces when empty)."""
    api = client.CustomObjectsApi(api_client())
    if not namespaces:
        found = _call(f"list {PLURAL}", api.list_cluster_custom_object, GROUP, VERSION, PLURAL)
        return list(found.get("items") or [])
    items: list[dict[str, Any]] = []
    for ns in namespaces:
        found = _call(f"list {PLURAL} in {ns}", api.list_namespaced_custom_object, GROUP, VERSION, ns, PLURAL)
        items += found.get("items") or []
    return items


# --- the leader election's Lease ------------------------------------------------------


def own_namespace(context_namespace: str | None = None) -> str:
    """A kubeconfig context's namespace (given, else $KUBECONFIG's), else the Pod's (its service account's),
    else ``default``: where the operator keeps its Lease, and the waiter's default namespace."""
    if context_namespace is None and os.environ.get("KUBECONFIG"):
        try:
            _, context_namespace = configuration(os.environ["KUBECONFIG"])
        except (config.ConfigException, OSError, TypeError, ValueError):
            context_namespace = None
    if context_namespace:
        return context_namespace
    try:
        return Path(SA_NAMESPACE_FILE).read_text().strip() or "default"
    except OSError:
        return "default"


def get_lease(namespace: str, name: str) -> dict[str, Any] | None:
    """The ``coordination.k8s.io/v1`` Lease, or None when there is none."""
    api = client.CoordinationV1Api(api_client())
    found: dict[str, Any] | None = _call(f"get lease {name}", api.read_namespaced_lease, name, namespace, missing_ok=True)
    return found


def write_lease(namespace: str, lease: Mapping[str, Any]) -> dict[str, Any] | None:
    """Create the Lease (no ``resourceVersion``) or replace it (with the one read): None when another
    writer got there first (409 Conflict or AlreadyExists), so that only one of two candidates wins."""
    api = client.CoordinationV1Api(api_client())
    name = lease["metadata"]["name"]
    replace = bool(lease["metadata"].get("resourceVersion"))
    try:
        if replace:
            response = api.replace_namespaced_lease(name, namespace, dict(lease), _preload_content=False)
        else:
            response = api.create_namespaced_lease(namespace, dict(lease), _preload_content=False)
    except ApiException as exc:
        if exc.status == 409:
            return None
        return _call(f"{'update' if replace else 'create'} lease {name}", _raise, exc)  # type: ignore[no-any-return]
    except OSError as exc:
        raise kopf.TemporaryError(f"write lease {name}: {exc}", delay=2) from None
    written: dict[str, Any] = json.loads(response.data or "null")
    return written


# --- a client of its own for the waiter -----------------------------------------------


class ConfigError(Exception):
    """Neither the kubeconfig given nor an in-cluster service account could be loaded."""


class ApiFailure(Exception):
    """An API call failed: ``status`` is the HTTP status, None when the API server was not reached."""

    def __init__(self, what: str, status: int | None, detail: str) -> None:
        super().__init__(f"{what}: {detail}")
        self.what, self.status, self.detail = what, status, detail


class SchemaClient:
    """The few calls ``baselinr-schema wait`` makes on one BaselinrSchema, in a process of its own."""

    def __init__(self, kubeconfig: str | None) -> None:
        path = kubeconfig or os.environ.get("KUBECONFIG")
        try:
            cfg, self.context_namespace = configuration(path)
        except (config.ConfigException, OSError, TypeError, ValueError) as exc:
            where = f"kubeconfig {path}" if path else "in-cluster config (no KUBECONFIG or --kubeconfig given)"
            raise ConfigError(f"Cannot load the {where}: {exc}") from None
        cfg.retries = False  # a dead API server is reported once, not retried by urllib3 with warnings
        self.server: str = cfg.host
        self.api: Any = client.CustomObjectsApi(client.ApiClient(cfg))

    def default_namespace(self) -> str:
        """The kubeconfig context's namespace, else the Pod's (its service account's), else ``default``."""
        return own_namespace(self.context_namespace or "")

    def _failure(self, what: str, exc: Exception) -> ApiFailure:
        if isinstance(exc, ApiException):
            return ApiFailure(what, exc.status, _api_message(exc) or str(exc.reason or ""))
        text = str(exc).splitlines()[0][:300] if str(exc) else exc.__class__.__name__
        return ApiFailure(what, None, f"the Kubernetes API at {self.server} is unreachable: {text}")

    def apply(self, body: Mapping[str, Any], field_manager: str) -> dict[str, Any]:
        """Server-side apply of ``body`` (forced: this field manager owns the fields it sets)."""
        meta = body["metadata"]
        try:
            response = self.api.patch_namespaced_custom_object(
                GROUP, VERSION, meta["namespace"], PLURAL, meta["name"], dict(body), field_manager=field_manager,
                force=True, _content_type="application/apply-patch+yaml", _preload_content=False,
            )  # fmt: skip
            result: dict[str, Any] = json.loads(response.data)
        except Exception as exc:  # noqa: BLE001 - every failure becomes one ApiFailure
            raise self._failure(f"Cannot apply {KIND} {meta['namespace']}/{meta['name']}", exc) from None
        return result

    def list_one(self, namespace: str, name: str) -> tuple[dict[str, Any] | None, str]:
        """The object (or None) and the list's resourceVersion to watch from."""
        try:
            response = self.api.list_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, field_selector=f"metadata.name={name}", _request_timeout=30,
                _preload_content=False,
            )  # fmt: skip
            listing = json.loads(response.data)
        except Exception as exc:  # noqa: BLE001
            raise self._failure(f"Cannot read {KIND} {namespace}/{name}", exc) from None
        items = listing.get("items") or []
        return (items[0] if items else None), str(listing["metadata"]["resourceVersion"])

    def watch(self, namespace: str, name: str, resource_version: str, seconds: int) -> Iterator[dict[str, Any] | None]:
        """The object after each change (None once deleted) for up to ``seconds``; ends early on an expired version."""
        w: Any = watch.Watch()  # type: ignore[no-untyped-call]
        try:
            for event in w.stream(
                self.api.list_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL,
                field_selector=f"metadata.name={name}", resource_version=resource_version, timeout_seconds=seconds,
                _request_timeout=(10, seconds + 15),
            ):  # fmt: skip
                yield None if event["type"] == "DELETED" else event["object"]
        except ApiException as exc:
            if exc.status != 410:  # 410 Gone: the version expired; the caller lists again
                raise self._failure(f"Cannot watch {KIND} {namespace}/{name}", exc) from None
        except Exception as exc:  # noqa: BLE001
            raise self._failure(f"Cannot watch {KIND} {namespace}/{name}", exc) from None
        finally:
            w.stop()
