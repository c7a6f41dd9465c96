"""kopf entry points of the operator: thin, level-triggered, one reconcile function behind them all.

Loaded by ``kopf run -m baselinr_operator.handlers`` (see ``__main__``).
Every trigger ends in ``reconcile(namespace, name)``: an event of a
BaselinrSchema (created, edited, annotated, its status written), an event of
one of its Jobs finishing or being deleted (followed by watching Jobs, never
by sleeping), or the scheduler task when a retry or a drift check falls due
(and every few seconds while a Job runs, whose Pod may be unable to start:
nothing a Job watch sees changes then). What the process keeps in memory
(settings, claims, per-resource locks, the schedule) is one ``runtime.Runtime``
on kopf's ``memo``, made by the startup activity. ``reconcile`` reads the
resource fresh under its resource's lock, asks the pure
``planner`` what to do, then writes status (``status``), creates the Job
(``jobs`` + ``kube``; adopted when it already exists), posts Events and
updates ``metrics``. While a migrate Job runs, the tail of its log is read
for the engine's lock-wait line (``outcome.lock_holder``), so the status says
who holds the lock it waits for. A Job the API server refuses ends the run at once
(``planner.rejected``): the resource is Stalled with the API server's
message and its database claim is released.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import kopf

from baselinr import logs, tracing
from baselinr_operator import GROUP, KIND, MANAGED_BY, PLURAL, RETRY_ANNOTATION, VERSION, kube, metrics
from baselinr_operator.claims import database_keys
from baselinr_operator.jobs import CONTAINER, Owner, build_job, expired_jobs, selector_labels
from baselinr_operator.leader import ElectionSettings, Elector, Leadership
from baselinr_operator.outcome import job_finished, job_outcome, lock_holder, running_pod
from baselinr_operator.planner import STARTED, Facts, is_active, next_due, plan, rejected
from baselinr_operator.runtime import Runtime
from baselinr_operator.settings import OperatorSettings
from baselinr_operator.spec import SpecError, parse_spec
from baselinr_operator.status import Phase, StatusDraft, Step

log = logging.getLogger("baselinr_operator")

STUCK_CHECK_SECONDS = 5.0
# Handlers running at once. Each spends its reconcile waiting on the API server (four requests in a row for a new
# resource), so these bound how many Jobs a second the operator creates: 16 made ~30 a second (bench/README.md).
WORKER_THREADS = 32


def _runtime(memo: kopf.Memo) -> Runtime:
    """The operator's in-memory state, shared by every handler through kopf's memo (see ``runtime``)."""
    runtime = memo.get("runtime")
    assert isinstance(runtime, Runtime), "the startup activity puts it there before any handler runs"
    return runtime


# --- activities -------------------------------------------------------------------


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    rt = memo["runtime"] = Runtime(OperatorSettings.from_env())
    logs.install()  # records carry level, resource and trace ids (shown by --log-format=json)
    for handler in logging.getLogger().handlers:  # kopf's, made by `kopf run`
        handler.addFilter(logs.KubeObjects())
    problem = tracing.start("baselinr-operator", quiet=False)  # off unless OTEL_* asks for it
    if problem is not None:
        log.warning("%s", problem)
    settings.posting.level = logging.ERROR  # our own Events say what happens; kopf posts only errors
    settings.scanning.disabled = True  # no CRD or namespace watching: fewer rights needed
    settings.execution.max_workers = WORKER_THREADS
    # kopf runs a worker per object with events, kept 5 s after its last one: a fleet created at once had one
    # per resource waiting for the threads (its events, copies of the body, the handler call), peak RSS 166 MiB
    # at 1,000 (bench/README.md). Twice as many workers as threads keep them busy; other events wait queued.
    settings.queueing.worker_limit = 2 * WORKER_THREADS
    settings.queueing.idle_timeout = 0.5
    settings.watching.server_timeout = 300
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="baselinr.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="baselinr.io", key="last-handled")
    metrics.start(rt.settings.metrics_port)
    if rt.settings.leader_election:
        rt.leadership = Leadership(enabled=True)
        rt.elector = Elector(ElectionSettings.of(rt.settings), rt.leadership, lambda: _take_over(rt), lambda: _stand_by(rt))
        rt.elector.start()
    else:
        await asyncio.to_thread(_resume_claims, rt)
    metrics.leading(rt.leadership.leads())
    rt.scheduler = asyncio.create_task(_schedule_loop(rt))


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    rt = memo.get("runtime")
    if isinstance(rt, Runtime) and rt.elector is not None:
        await asyncio.to_thread(rt.elector.stop)  # stop acting, then hand the Lease over at once
    if isinstance(rt, Runtime) and rt.scheduler is not None:
        rt.scheduler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await rt.scheduler
        rt.scheduler = None
    metrics.stop()
    kube.close()
    tracing.finish()


def _take_over(rt: Runtime) -> None:
    """Just elected: what is in flight and what is due, then every resource once (a standby acted on no event)."""
    metrics.leading(True)
    _resume_claims(rt, everything=True)


def _stand_by(rt: Runtime) -> None:
    """No longer the leader: forget claims and schedule; the next leader starts from the cluster's state."""
    metrics.leading(False)
    rt.reset()


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    # $KUBECONFIG is read now (the kubernetes library reads it at import time). In a Pod, the service
    # account through the kubernetes library, as ``kube`` does: the API server named by
    # KUBERNETES_SERVICE_HOST/PORT. (kopf.login_with_service_account dials kubernetes.default.svc,
    # which needs cluster DNS: the two clients of one operator could reach different servers.)
    import os

    if os.environ.get("KUBECONFIG"):
        return kopf.login_with_kubeconfig(**kwargs)
    return kopf.login_via_client(**kwargs)


@kopf.on.probe(id="claims")
def probe_claims(memo: kopf.Memo, **_: Any) -> int:
    return len(_runtime(memo).claims.holders())


@kopf.on.probe(id="leader")
def probe_leader(memo: kopf.Memo, **_: Any) -> bool:
    return _runtime(memo).leadership.leads()


# --- triggers ---------------------------------------------------------------------------


@kopf.on.event(GROUP, VERSION, PLURAL)
def schema_event(event: kopf.RawEvent, body: kopf.Body, namespace: str | None, name: str, memo: kopf.Memo, **_: Any) -> None:
    assert namespace is not None  # the resource is namespaced
    rt = _runtime(memo)
    if event.get("type") == "DELETED":
        rt.forget((namespace, name))
        metrics.forget(namespace, name)
        return
    _reconcile_or_reschedule(rt, namespace, name, seen=body.metadata.get("resourceVersion"))


@kopf.on.event("batch", "v1", "jobs", labels={"app.kubernetes.io/managed-by": MANAGED_BY})
def job_event(event: kopf.RawEvent, body: kopf.Body, namespace: str | None, memo: kopf.Memo, **_: Any) -> None:
    assert namespace is not None
    rt = _runtime(memo)
    gone = event.get("type") == "DELETED" or bool(body.metadata.get("deletionTimestamp"))
    if not job_finished(body):
        if not gone or not rt.job_deleted((namespace, str(body.metadata["name"])), event.get("type") == "DELETED"):
            return
    elif event.get("type") == "DELETED":
        rt.finished_job_gone((namespace, str(body.metadata["name"])))
        return  # a finished Job removed (cleanup): its outcome was taken in when it finished
    elif not rt.job_finished_first((namespace, str(body.metadata["name"]))):
        return  # the Job controller writes a finished Job again: its outcome was taken in at the first event
    for ref in body.metadata.get("ownerReferences") or []:
        if ref.get("kind") == KIND and ref.get("controller"):
            _reconcile_or_reschedule(rt, namespace, ref["name"])


class NotLeading(Exception):
    """This replica lost the lead during a reconcile: it writes nothing more; the leader takes it from here."""


def _act(rt: Runtime) -> None:
    """Before every write: only the leader (or the one replica, without leader election) acts."""
    if not rt.leadership.leads():
        raise NotLeading


def _reconcile_or_reschedule(rt: Runtime, namespace: str, name: str, seen: str | None = None) -> None:
    if not rt.leadership.leads():
        return  # a standby: the leader handles it
    try:
        reconcile(rt, namespace, name, seen)
    except NotLeading:
        log.info("Not reconciling %s/%s further: this replica no longer leads", namespace, name)
    except kopf.TemporaryError as exc:
        log.warning("Reconciling %s/%s failed for now, retrying in %ss: %s", namespace, name, exc.delay, exc)
        rt.schedule((namespace, name), datetime.now(timezone.utc) + timedelta(seconds=float(exc.delay or 5)))
    except kopf.PermanentError as exc:
        log.error("Reconciling %s/%s failed: %s", namespace, name, exc)


# --- the reconcile ------------------------------------------------------------------------------


def reconcile(rt: Runtime, namespace: str, name: str, seen: str | None = None) -> None:
    """Bring one resource a step closer to its target; safe to call any time, from any trigger.

    One trace span per call; while a run is in flight it continues the run's trace
    (``status.run.traceparent``, the span of the reconcile that started it). ``seen``: the
    resourceVersion a watch event showed; the echo of the operator's own status write
    (``runtime.own_echo``) is skipped, its Job and schedule being taken care of already."""
    with rt.lock_for((namespace, name)):
        if rt.is_echo((namespace, name), seen):
            return
        body = kube.get_schema(namespace, name)
        status = (body or {}).get("status") or {}
        parent = (status.get("run") or {}).get("traceparent") if is_active(status) else None
        resource = f"{namespace}/{name}"
        with logs.bound_resource(resource), tracing.span("reconcile", parent=parent, resource=resource) as span:
            _reconcile(rt, namespace, name, body)
            tracing.annotate(span, generation=(body or {}).get("metadata", {}).get("generation"))


def _reconcile(rt: Runtime, namespace: str, name: str, body: dict[str, Any] | None) -> None:
    settings, claims = rt.settings, rt.claims
    key = f"{namespace}/{name}"
    if body is None or body["metadata"].get("deletionTimestamp"):
        claims.release(key)
        return
    meta, status = body["metadata"], dict(body.get("status") or {})
    now = datetime.now(timezone.utc)
    try:
        spec = parse_spec(body.get("spec") or {})
    except SpecError as exc:
        draft = StatusDraft(status, int(meta.get("generation", 0)), now)
        token = (meta.get("annotations") or {}).get(RETRY_ANNOTATION)
        if token:
            draft.set(retryToken=token)  # seen: a waiter for this retry reads the verdict below
        draft.invalid_spec(str(exc))
        _act(rt)
        _write(rt, body, draft.patch())
        return
    run = status.get("run") or {}
    outcome = None
    job_gone = False
    holder = None
    if is_active(status) and run.get("job"):
        job = kube.get_job(namespace, run["job"])
        seen_deleted = rt.seen_deleted((namespace, run["job"]))
        if job is not None and not job_finished(job) and job["metadata"].get("deletionTimestamp"):
            job, seen_deleted = None, True
        if job is not None:
            pods = kube.job_pods(namespace, run["job"])
            events = kube.job_events(namespace, job) if not pods and not job_finished(job) else []
            outcome = job_outcome(job, pods, events)
            if outcome.finished:
                rt.job_span_ends(namespace, outcome)
            if run.get("step") == Step.MIGRATE and not outcome.finished:
                holder = _lock_holder(namespace, pods)
        job_gone = job is None and seen_deleted
    keys = database_keys(namespace, body.get("spec") or {}, status)
    with claims.lock:
        busy = claims.conflict(key, keys)
        facts = Facts(
            name=name,
            generation=int(meta.get("generation", 0)),
            spec=spec,
            status=status,
            now=now,
            retry_token=(meta.get("annotations") or {}).get(RETRY_ANNOTATION),
            job=outcome,
            job_gone=job_gone,
            busy_with=busy,
            lock_holder=holder,
        )
        p = plan(facts, settings)
        traceparent = tracing.traceparent()
        if traceparent and p.status.get("run", {}).get("id") != run.get("id"):  # a new run: its trace is this reconcile's
            p.draft.run.update(traceparent=traceparent)
        if is_active(p.status):
            claims.hold(key, database_keys(namespace, body.get("spec") or {}, p.status))
        else:
            claims.release(key)
    try:
        _act(rt)
        _write(rt, body, p.draft.patch())
    except Exception:
        if not is_active(status):
            claims.release(key)
        raise
    if p.delete_job:
        _act(rt)
        rt.deleting((namespace, p.delete_job))
        kube.delete_job(namespace, p.delete_job)
    create = p.create
    if create is not None:
        job_spec = dataclasses.replace(spec, target_version=create.target)
        job_span, trace = rt.job_span_starts(namespace, create.name, create.step, create.target)
        env = {**({"BASELINR_LOG_FORMAT": "json"} if settings.log_format == "json" else {}), **(trace or {})}
        manifest = build_job(create.step, Owner.of(body), job_spec, create.run, settings.image, create.name, env)
        _act(rt)
        try:
            _, created = kube.create_job(manifest, meta["uid"])
        except kube.JobRejected as exc:
            tracing.close_span(rt.job_spans.pop((namespace, create.name), job_span), failed=True, outcome="rejected")
            started = [e for e in p.events if e.reason not in STARTED]
            p = rejected(dataclasses.replace(facts, status=p.status), str(exc))
            p.events[:0] = started
            with claims.lock:
                claims.release(key)
            _write(rt, body, p.draft.patch())
        else:
            if not created:  # its Pod has the TRACEPARENT of the span that created it
                tracing.close_span(rt.job_spans.pop((namespace, create.name), job_span), outcome="adopted")
                log.info("Adopted the existing Job %s/%s", namespace, manifest["metadata"]["name"])
    for e in p.events:
        _act(rt)
        kube.post_event(body, e.type, e.reason, e.message)
    if p.finished is not None:
        metrics.finished(p.finished.step, p.finished.succeeded, p.finished.seconds)
        _clean_up(settings, namespace, name, p.status)
    ready = p.status.get("phase") == Phase.READY
    metrics.versions(namespace, name, p.status.get("currentVersion"), spec.target_version, ready)
    due = next_due(p.status, spec)
    if p.status.get("phase") == Phase.PENDING and busy:
        due = now + timedelta(seconds=settings.tick_seconds)
    if is_active(p.status):  # a Job that cannot start changes nothing a watch would see: look again
        due = now + timedelta(seconds=max(settings.tick_seconds, STUCK_CHECK_SECONDS))
    rt.schedule((namespace, name), due)


def _lock_holder(namespace: str, pods: list[dict[str, Any]]) -> str | None:
    """Who the running migrate Job waits for, from the engine's lock-wait line in its log (best effort)."""
    pod = running_pod(pods, CONTAINER)
    text = kube.pod_log_tail(namespace, pod, CONTAINER) if pod else None
    return lock_holder(text) if text else None


def _clean_up(settings: OperatorSettings, namespace: str, name: str, status: Mapping[str, Any]) -> None:
    """A Job ended: delete this resource's finished Jobs beyond the newest ``keep_jobs`` (best effort)."""
    try:
        jobs = kube.list_jobs(namespace, selector_labels(name))
        for job in expired_jobs(jobs, settings.keep_jobs, (status.get("run") or {}).get("job")):
            kube.delete_job(namespace, job)
            log.info("Deleted the old Job %s/%s (keeping the newest %d)", namespace, job, settings.keep_jobs)
    except (kopf.TemporaryError, kopf.PermanentError) as exc:
        log.warning("Cleaning up the old Jobs of %s/%s failed: %s", namespace, name, exc)


def _write(rt: Runtime, body: Mapping[str, Any], patch: Mapping[str, Any]) -> None:
    if patch:
        meta = body["metadata"]
        rt.wrote((meta["namespace"], meta["name"]), body, kube.patch_status(meta["namespace"], meta["name"], patch))


async def _schedule_loop(rt: Runtime) -> None:
    """Wake resources whose retry or drift check fell due (the only timed work; Jobs are watched)."""
    while True:
        await asyncio.sleep(rt.settings.tick_seconds)
        for namespace, name in rt.take_due(datetime.now(timezone.utc)):
            try:
                await asyncio.to_thread(_reconcile_or_reschedule, rt, namespace, name)
            except Exception:  # one resource's trouble must not stop the others' schedule
                log.exception("Scheduled reconcile of %s/%s failed", namespace, name)


def _resume_claims(rt: Runtime, everything: bool = False) -> None:
    """Before handling anything: who has a run in flight (after a restart), and what is scheduled
    (``everything``: each resource at once, as a newly elected leader does)."""
    now = datetime.now(timezone.utc)
    for body in kube.list_schemas(rt.settings.namespaces):
        meta, status, raw_spec = body["metadata"], body.get("status") or {}, body.get("spec") or {}
        key = (meta["namespace"], meta["name"])
        if is_active(status):
            rt.claims.hold(f"{key[0]}/{key[1]}", database_keys(meta["namespace"], raw_spec, status))
        if everything:
            rt.schedule(key, now)
            continue
        try:
            spec = parse_spec(raw_spec)
        except SpecError:
            continue
        due = next_due(status, spec)
        if due is not None:
            rt.schedule(key, min(due, now + timedelta(seconds=rt.settings.tick_seconds)))
