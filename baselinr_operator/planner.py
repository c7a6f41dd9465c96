"""Pure reconcile logic: from a resource and the outcome of its current Job, decide what happens next.

Called by ``handlers`` under a per-resource lock with freshly read facts
(``plans.Facts``); returns a ``plans.Plan`` (the new status through
``status.StatusDraft``, at most one Job to create, the Events to post, what
finished for the metrics). A run in flight is followed by ``follow``. Nothing
here talks to the API or reads a clock, so every path is unit-tested.

The flow for a target that differs from ``status.currentVersion`` (or an
unknown one) is one *run*: a backup Job (unless ``backup.mode: Skip``), then
a migrate Job (apply to the target, then validate). ``status.run`` records
the run's number, target, step and Job before the Job is created, so a
restarted operator adopts it. A failed step ends the run: a transient
failure (database unreachable or locked, a Pod that never reported) is
retried with exponential backoff up to a limit; any other failure stalls
until the spec changes or the ``baselinr.io/retry`` annotation gets a new
value. A periodic validate run checks for drift and never applies anything.

No Job is asked for that the operator's settings do not allow (``policy``):
the run fails as NotAllowed instead. Ready is written only when the database
is at the target of the current generation: a run that ends for an older one
goes straight on to the new target. A Job deleted before it finished, or one
the API server rejected (``rejected``), ends its run. A Pod that cannot start
is reported at once; a configuration error that lasts ``STUCK_GRACE`` fails
the run (and its Job is deleted), and a spec change replaces such a run.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from baselinr_operator.follow import STUCK_GRACE, follow, superseded
from baselinr_operator.plans import NORMAL, STARTED, WARNING, Event, Facts, Finished, JobToCreate, Plan, start_run
from baselinr_operator.policy import violations
from baselinr_operator.settings import OperatorSettings
from baselinr_operator.spec import SchemaSpec
from baselinr_operator.status import ACTIVE_STEPS, Phase, Reason, StatusDraft, Step

__all__ = ["STARTED", "STUCK_GRACE", "Event", "Facts", "Finished", "JobToCreate", "Plan", "is_active", "next_due", "plan",
           "rejected"]  # fmt: skip


def is_active(status: dict[str, Any]) -> bool:
    return (status.get("run") or {}).get("step") in ACTIVE_STEPS


def next_due(status: dict[str, Any], spec: SchemaSpec | None) -> datetime | None:
    """When scheduled work (a retry, a drift check) falls due; None if nothing is scheduled."""
    retry = status.get("retry") or {}
    if (status.get("run") or {}).get("step") == Step.FAILED and retry.get("notBefore"):
        return _parse(retry["notBefore"])
    if spec is not None and spec.validate_interval and not spec.suspend and (status.get("run") or {}).get("step") == Step.DONE:
        last = (status.get("validation") or {}).get("time")
        if last:
            return _parse(last) + timedelta(seconds=spec.validate_interval)
    return None


def plan(facts: Facts, settings: OperatorSettings) -> Plan:
    p = _plan(facts, settings)
    if p.create_step:
        refused = violations(facts.spec, settings)
        if refused:
            _refuse(facts, p, refused)
    return p


def _plan(facts: Facts, settings: OperatorSettings) -> Plan:
    spec = facts.spec
    draft = StatusDraft(facts.status, facts.generation, facts.now)
    p = Plan(draft)
    draft.set(targetVersion=spec.target_version)
    force_new = False
    if facts.retry_token and facts.retry_token != draft.get("retryToken"):
        draft.set(retryToken=facts.retry_token)
        if draft.run.get("step") == Step.FAILED:
            force_new = True
            draft.set(retry=None)
            p.event(NORMAL, Reason.RETRY_REQUESTED, f"Retry requested with the {facts.retry_token!r} annotation value")

    if draft.run.get("step") in ACTIVE_STEPS:
        follow(facts, p, settings)
        if draft.run.get("step") in ACTIVE_STEPS and superseded(facts):
            # The spec changed while this run's Pod cannot start: the new spec replaces it.
            p.delete_job, p.create_step = str(draft.run.get("job")), None
            p.event(NORMAL, Reason.SUPERSEDED, f"Job {p.delete_job} never started; replaced by a run for generation "
                    f"{facts.generation}")  # fmt: skip
            draft.run.update(step=Step.FAILED)
        if draft.run.get("step") in ACTIVE_STEPS or draft.run.get("generation") == facts.generation:
            return p
        # The run that just ended was started for an older generation: what the spec asks now comes next,
        # and Ready waits until the database is at this generation's target.

    run = draft.run
    current = draft.get("currentVersion")
    needs = current != spec.target_version
    if run.get("step") == Step.FAILED and not force_new:
        if run.get("generation") == facts.generation:
            retry = draft.get("retry") or {}
            due = retry.get("notBefore") and _parse(retry["notBefore"]) <= facts.now
            if not due:
                return p
            force_new = True
        else:
            draft.set(retry=None)  # the spec changed: a fresh start
    if needs or force_new:
        if spec.suspend:
            draft.suspended("Suspended: no Job is started while spec.suspend is true")
            draft.observed()
            return p
        if facts.busy_with:
            message = f"Waiting: {facts.busy_with} is migrating the same database"
            if draft.get("message") != message:
                p.event(WARNING, Reason.WAITING_FOR_DATABASE, message)
            draft.waiting(Reason.WAITING_FOR_DATABASE, message)
            draft.observed()
            return p
        known = draft.get("codeVersion")
        image = spec.image or settings.image
        if known is not None and draft.get("codeImage") == image and spec.target_version > int(known):
            message = (
                f"spec.targetVersion {spec.target_version} is above v{known}, the latest version image {image} knows: "
                "set spec.image to an image with those migrations (nothing was backed up or migrated)"
            )
            if draft.get("message") != message:
                p.event(WARNING, Reason.TARGET_UNKNOWN, message)
            draft.failed(Reason.TARGET_UNKNOWN, message, retrying=False)
            draft.observed()
            return p
        step = Step.MIGRATE if spec.backup.mode == "Skip" else Step.BACKUP
        start_run(facts, p, step)
        return p

    if spec.validate_interval and not spec.suspend and draft.run.get("step") == Step.DONE:
        due_at = next_due(draft.data, spec)
        if due_at is None or due_at <= facts.now:
            start_run(facts, p, Step.VALIDATE)
            return p
    if draft.get("valid") is False:
        errors = (draft.get("validation") or {}).get("errors") or []
        draft.failed(Reason.VALIDATION_FAILED, "Validation failed: " + "; ".join(errors), retrying=False)
    elif not spec.suspend:
        draft.ready(f"At version {spec.target_version}")
    else:  # at the target: Ready, and the phase says that nothing more is started
        draft.ready(f"At version {spec.target_version} (suspended: no Job is started)")
        draft.set(phase=Phase.SUSPENDED)
    draft.observed()
    return p


def _refuse(facts: Facts, p: Plan, refused: list[str]) -> None:
    """The Job the plan asks for would carry what the operator's settings do not allow: none is created."""
    draft = p.draft
    message = "Not allowed by the operator's settings: " + "; ".join(refused)
    p.create_step = None
    p.events = [e for e in p.events if e.reason not in STARTED]
    draft.run.update(step=Step.FAILED, generation=facts.generation)
    draft.failed(Reason.NOT_ALLOWED, message, retrying=False)
    draft.observed()
    p.event(WARNING, Reason.NOT_ALLOWED, message)


def rejected(facts: Facts, message: str) -> Plan:
    """The API server refused the Job ``facts.status.run`` names: the run ends, Stalled, with its message."""
    draft = StatusDraft(facts.status, facts.generation, facts.now)
    p = Plan(draft)
    step, name = draft.run.get("step"), draft.run.get("job")
    text = f"The API server rejected {str(step).lower()} Job {name}: {message}"
    draft.run.update(step=Step.FAILED)
    draft.set(retry=None)
    draft.failed(Reason.JOB_REJECTED, text, retrying=False)
    draft.observed()
    p.event(WARNING, Reason.JOB_REJECTED, text)
    return p


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
