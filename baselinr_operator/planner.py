"""Pure reconcile logic: from a resource and the outcome of its current Job, decide what happens next.

Called by ``handlers`` under a per-resource lock with freshly read facts;
returns a ``Plan`` (the new status through ``status.StatusDraft``, at most one
Job to create, the Events to post, what finished for the metrics). Nothing
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

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from baselinr_operator import RETRY_ANNOTATION
from baselinr_operator.jobs import job_name
from baselinr_operator.outcome import JobOutcome
from baselinr_operator.policy import violations
from baselinr_operator.settings import OperatorSettings
from baselinr_operator.spec import SchemaSpec
from baselinr_operator.status import (
    ACTIVE_STEPS,
    BACKED_UP,
    MIGRATED,
    VALIDATED,
    Phase,
    Reason,
    StatusDraft,
    now_iso,
)

STUCK_GRACE = timedelta(seconds=30)  # a configuration error must last this long before the run is failed
NORMAL = "Normal"
WARNING = "Warning"
STARTED = (Reason.BACKUP_RUNNING, Reason.MIGRATION_RUNNING, Reason.VALIDATION_RUNNING)


@dataclass(frozen=True)
class Facts:
    name: str
    generation: int
    spec: SchemaSpec
    status: dict[str, Any]
    now: datetime
    retry_token: str | None = None
    job: JobOutcome | None = None  # the Job of status.run.job, None when absent
    job_gone: bool = False  # that Job was deleted before it finished (not merely not created yet)
    busy_with: str | None = None  # another resource now migrating the same database


@dataclass(frozen=True)
class Event:
    type: str
    reason: str
    message: str


@dataclass(frozen=True)
class Finished:
    """A Job that ended in this reconcile, for the metrics."""

    step: str
    succeeded: bool
    seconds: float | None


@dataclass
class Plan:
    draft: StatusDraft
    create_step: str | None = None  # a Job for this step of status.run must exist
    delete_job: str | None = None  # a Job of this resource to delete (one that cannot start, or superseded)
    events: list[Event] = field(default_factory=list)
    finished: Finished | None = None

    @property
    def status(self) -> dict[str, Any]:
        return self.draft.data

    def event(self, type_: str, reason: str, message: str) -> None:
        self.events.append(Event(type_, reason, message))


def is_active(status: dict[str, Any]) -> bool:
    return (status.get("run") or {}).get("step") in ACTIVE_STEPS


def next_due(status: dict[str, Any], spec: SchemaSpec | None) -> datetime | None:
    """When scheduled work (a retry, a drift check) falls due; None if nothing is scheduled."""
    retry = status.get("retry") or {}
    if (status.get("run") or {}).get("step") == "Failed" and retry.get("notBefore"):
        return _parse(retry["notBefore"])
    if spec is not None and spec.validate_interval and not spec.suspend and (status.get("run") or {}).get("step") == "Done":
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
        if draft.run.get("step") == "Failed":
            force_new = True
            draft.set(retry=None)
            p.event(NORMAL, Reason.RETRY_REQUESTED, f"Retry requested with the {facts.retry_token!r} annotation value")

    if draft.run.get("step") in ACTIVE_STEPS:
        _follow(facts, p, settings)
        if draft.run.get("step") in ACTIVE_STEPS and _superseded(facts):
            # The spec changed while this run's Pod cannot start: the new spec replaces it.
            p.delete_job, p.create_step = str(draft.run.get("job")), None
            p.event(NORMAL, Reason.SUPERSEDED, f"Job {p.delete_job} never started; replaced by a run for generation "
                    f"{facts.generation}")  # fmt: skip
            draft.run.update(step="Failed")
        if draft.run.get("step") in ACTIVE_STEPS or draft.run.get("generation") == facts.generation:
            return p
        # The run that just ended was started for an older generation: what the spec asks now comes next,
        # and Ready waits until the database is at this generation's target.

    run = draft.run
    current = draft.get("currentVersion")
    needs = current != spec.target_version
    if run.get("step") == "Failed" and not force_new:
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
        step = "Migrate" if spec.backup.mode == "Skip" else "Backup"
        _start(facts, p, step)
        return p

    if spec.validate_interval and not spec.suspend and draft.run.get("step") == "Done":
        due_at = next_due(draft.data, spec)
        if due_at is None or due_at <= facts.now:
            _start(facts, p, "Validate")
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
    draft.run.update(step="Failed", generation=facts.generation)
    draft.failed(Reason.NOT_ALLOWED, message, retrying=False)
    draft.observed()
    p.event(WARNING, Reason.NOT_ALLOWED, message)


def rejected(facts: Facts, message: str) -> Plan:
    """The API server refused the Job ``facts.status.run`` names: the run ends, Stalled, with its message."""
    draft = StatusDraft(facts.status, facts.generation, facts.now)
    p = Plan(draft)
    step, name = draft.run.get("step"), draft.run.get("job")
    text = f"The API server rejected {str(step).lower()} Job {name}: {message}"
    draft.run.update(step="Failed")
    draft.set(retry=None)
    draft.failed(Reason.JOB_REJECTED, text, retrying=False)
    draft.observed()
    p.event(WARNING, Reason.JOB_REJECTED, text)
    return p


def _start(facts: Facts, p: Plan, step: str) -> None:
    spec, draft = facts.spec, p.draft
    run_id = int(draft.run.get("id", 0)) + 1
    name = job_name(facts.name, step, spec.target_version, run_id)
    draft.set(
        run={
            "id": run_id,
            "target": spec.target_version,
            "step": step,
            "job": name,
            "generation": facts.generation,
            "startedAt": now_iso(facts.now),
        }
    )
    draft.observed()
    _announce(facts, p, step, name)


def _next_step(facts: Facts, p: Plan, step: str) -> None:
    """Move the current run on to ``step`` (a new Job of the same run)."""
    draft = p.draft
    name = job_name(facts.name, step, int(draft.run["target"]), int(draft.run["id"]))
    draft.run.update(step=step, job=name)
    _announce(facts, p, step, name)


def _announce(facts: Facts, p: Plan, step: str, name: str) -> None:
    draft, target = p.draft, p.draft.run["target"]
    if step == "Backup":
        draft.progressing(Phase.BACKING_UP, Reason.BACKUP_RUNNING, f"Backing up before migrating to v{target} (Job {name})")
        p.event(NORMAL, Reason.BACKUP_RUNNING, f"Started backup Job {name}")
    elif step == "Migrate":
        draft.progressing(Phase.MIGRATING, Reason.MIGRATION_RUNNING, f"Migrating to v{target} (Job {name})")
        p.event(NORMAL, Reason.MIGRATION_RUNNING, f"Started migrate Job {name} (target v{target})")
    else:
        draft.checking(Reason.VALIDATION_RUNNING, f"Validating the schema (Job {name})")
        p.event(NORMAL, Reason.VALIDATION_RUNNING, f"Started validate Job {name}")
    p.create_step = step


def _follow(facts: Facts, p: Plan, settings: OperatorSettings) -> None:
    """The run's Job exists (or must): wait for it, or take in its outcome."""
    draft = p.draft
    step = draft.run["step"]
    job = facts.job
    if job is None and facts.job_gone:
        name = draft.run.get("job")
        message = (
            f"{step} Job {name} was deleted before it finished; "
            f"change the spec or set the {RETRY_ANNOTATION} annotation to run it again"
        )
        p.finished = Finished(step, False, None)
        draft.run.update(step="Failed")
        draft.set(retry=None)
        draft.failed(Reason.JOB_DELETED, message, retrying=False)
        p.event(WARNING, Reason.JOB_DELETED, message)
        return
    if job is not None and not job.finished and job.trouble is not None:
        _stuck(facts, p, job)
        return
    if job is None or not job.finished:
        p.create_step = step if job is None else None
        return
    p.finished = Finished(step, job.succeeded, job.duration)
    if step == "Backup":
        _backup_done(facts, p, job, settings)
    elif step == "Migrate":
        _migrate_done(facts, p, job, settings)
    else:
        _validate_done(facts, p, job, settings)


def _superseded(facts: Facts) -> bool:
    job = facts.job
    return (
        job is not None
        and not job.finished
        and not job.ran
        and job.trouble is not None
        and facts.status.get("run", {}).get("generation") != facts.generation
    )


def _stuck(facts: Facts, p: Plan, job: JobOutcome) -> None:
    """The run's Pod cannot start: say why now; fail the run once a configuration error has lasted."""
    draft, trouble = p.draft, job.trouble
    assert trouble is not None
    step = draft.run["step"]
    if trouble.permanent and job.started is not None and facts.now - job.started >= STUCK_GRACE and not job.ran:
        message = f"{step} Job {job.name} cannot start: {trouble.message} (fix it, then change the spec or set the " \
                  f"{RETRY_ANNOTATION} annotation)"  # fmt: skip
        p.finished = Finished(step, False, None)
        p.delete_job = job.name  # else it would start, unwatched, once the cause is fixed
        draft.run.update(step="Failed")
        draft.set(retry=None)
        draft.failed(Reason.POD_CANNOT_START, message, retrying=False)
        p.event(WARNING, Reason.POD_CANNOT_START, message)
        return
    prefix = f"{step} Job {job.name} is waiting: "
    message = prefix + trouble.message
    if draft.get("message") != message:
        if not str(draft.get("message") or "").startswith(prefix):  # once per Job: pulls flap between two reasons
            p.event(WARNING, Reason.POD_NOT_STARTING, message)
        phase = {"Backup": Phase.BACKING_UP, "Migrate": Phase.MIGRATING}.get(step)
        if phase is None:
            draft.checking(Reason.POD_NOT_STARTING, message)
        else:
            draft.progressing(phase, Reason.POD_NOT_STARTING, message)


def _backup_done(facts: Facts, p: Plan, job: JobOutcome, settings: OperatorSettings) -> None:
    draft, r = p.draft, job.result
    if job.succeeded:
        skipped = bool(r.get("skipped"))
        draft.set(
            lastBackup={
                "job": job.name,
                "name": r.get("name") or "",
                "location": r.get("location") or "",
                "version": r.get("current_version"),
                "time": now_iso(job.completed or facts.now),
                "skipped": skipped,
            }
        )
        if r.get("database"):
            draft.set(database=r["database"])
        if skipped:
            message = str(r.get("reason") or "nothing to back up")
            draft.set_condition(BACKED_UP, True, Reason.BACKUP_SKIPPED, message)
            p.event(NORMAL, Reason.BACKUP_SKIPPED, f"Backup Job {job.name}: {message}")
        else:
            message = f"Backup {r.get('name')} of v{r.get('current_version')} written to {r.get('location')}"
            draft.set_condition(BACKED_UP, True, Reason.BACKUP_SUCCEEDED, message)
            p.event(NORMAL, Reason.BACKUP_SUCCEEDED, f"Backup Job {job.name} succeeded: {message}")
        _next_step(facts, p, "Migrate")
        return
    message = f"Backup Job {job.name} failed: {job.error}"
    draft.set_condition(BACKED_UP, False, Reason.BACKUP_FAILED, message)
    p.event(WARNING, Reason.BACKUP_FAILED, message)
    if job.credentials_refused:  # the migration would try the same credentials again: one refusal is enough
        _fail(facts, p, job, Reason.BACKUP_FAILED, message + " (the migration would use the same credentials: no migration ran)",
              settings)  # fmt: skip
        return
    if facts.spec.backup.mode == "Optional":
        _next_step(facts, p, "Migrate")
        return
    _fail(facts, p, job, Reason.BACKUP_FAILED, message + " (backup.mode is Required: no migration ran)", settings)


def _migrate_done(facts: Facts, p: Plan, job: JobOutcome, settings: OperatorSettings) -> None:
    draft, r = p.draft, job.result
    if r:
        if "current_version" in r:
            draft.set(currentVersion=r["current_version"])
        if r.get("code_version") is not None:
            draft.set(codeVersion=r["code_version"], codeImage=facts.spec.image or settings.image)
        if r.get("database"):
            draft.set(database=r["database"])
        draft.set(
            lastMigration={
                "from": r.get("from_version"),
                "to": r.get("current_version"),
                "job": job.name,
                "durationSeconds": round(job.duration if job.duration is not None else float(r.get("seconds") or 0), 3),
                "time": now_iso(job.completed or facts.now),
                "succeeded": job.succeeded,
            }
        )
        if "valid" in r:
            draft.validation(bool(r["valid"]), list(r.get("errors") or []), list(r.get("warnings") or []), job.name)
    if job.succeeded:
        applied = r.get("applied") or []
        verb = "rolled back" if r.get("direction") == "down" else "applied"
        what = f"{verb} {', '.join(f'v{v}' for v in applied)}" if applied else "nothing to apply"
        message = f"Migrated to v{r.get('current_version')}: {what}"
        draft.set_condition(MIGRATED, True, Reason.MIGRATION_SUCCEEDED, message)
        p.event(NORMAL, Reason.MIGRATION_SUCCEEDED, f"Migrate Job {job.name} succeeded: {message}")
        draft.run.update(step="Done")
        draft.set(retry=None)
        draft.ready(f"At version {r.get('current_version')}")
        return
    if r.get("exit_code") == 1 and "valid" in r and r.get("error") is None:
        message = f"Validation after migrating failed: {'; '.join(r.get('errors') or [])}"
        draft.set_condition(MIGRATED, True, Reason.MIGRATION_SUCCEEDED, f"Migrated to v{r.get('current_version')}")
        p.event(WARNING, Reason.VALIDATION_FAILED, f"Migrate Job {job.name}: {message}")
        _fail(facts, p, job, Reason.VALIDATION_FAILED, message, settings)
        return
    message = f"Migrate Job {job.name} failed: {job.error}"
    draft.set_condition(MIGRATED, False, Reason.MIGRATION_FAILED, message)
    p.event(WARNING, Reason.MIGRATION_FAILED, message)
    _fail(facts, p, job, Reason.MIGRATION_FAILED, message, settings)


def _validate_done(facts: Facts, p: Plan, job: JobOutcome, settings: OperatorSettings) -> None:
    draft, r = p.draft, job.result
    draft.run.update(step="Done")
    if "valid" in r:
        if "current_version" in r and r["current_version"] is not None:
            draft.set(currentVersion=r["current_version"])
        if r.get("code_version") is not None:
            draft.set(codeVersion=r["code_version"], codeImage=facts.spec.image or settings.image)
        valid = bool(r["valid"])
        draft.validation(valid, list(r.get("errors") or []), list(r.get("warnings") or []), job.name)
        if valid:
            p.event(NORMAL, Reason.VALIDATION_SUCCEEDED, f"Validate Job {job.name}: schema matches the code")
            draft.ready(f"At version {draft.get('currentVersion')}")
        else:
            message = "Validation failed: " + "; ".join(r.get("errors") or [])
            p.event(WARNING, Reason.VALIDATION_FAILED, f"Validate Job {job.name}: {message}")
            draft.failed(Reason.VALIDATION_FAILED, message, retrying=False)
        return
    # The check itself could not run: keep the last verdict, note why, try again next interval.
    message = f"Validate Job {job.name} failed: {job.error}"
    val = dict(draft.get("validation") or {})
    val["time"] = now_iso(facts.now)
    draft.set(validation=val)
    draft.set_condition(VALIDATED, False, Reason.VALIDATION_JOB_FAILED, message)
    p.event(WARNING, Reason.VALIDATION_JOB_FAILED, message)
    draft.set(phase=Phase.READY if draft.get("valid") is not False else Phase.FAILED, message=message)


def _fail(facts: Facts, p: Plan, job: JobOutcome, reason: str, message: str, settings: OperatorSettings) -> None:
    draft = p.draft
    draft.run.update(step="Failed")
    failures = int((draft.get("retry") or {}).get("failures", 0)) + 1
    if job.transient and failures <= settings.retry_limit:
        delay = settings.retry_delay(failures)
        not_before = facts.now + timedelta(seconds=delay)
        draft.set(retry={"failures": failures, "notBefore": now_iso(not_before)})
        draft.failed(reason, f"{message} (retry {failures} of {settings.retry_limit} in {delay:g}s)", retrying=True)
        return
    draft.set(retry={"failures": failures})
    if job.transient:
        reason = "RetriesExhausted"
        message = f"{message} (gave up after {failures - 1} retries; change the spec or set the baselinr.io/retry annotation)"
    draft.failed(reason, message, retrying=False)


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
