"""Pure: follow the Job of a run in flight, and take in what it came to.

Called by ``planner`` while ``status.run`` is at an active step. A Job still
running is waited for (a Pod that cannot start is reported, and failed once a
configuration error has lasted ``STUCK_GRACE``; a migrate Job waiting for a
table lock shows who holds it in ``status.lockWait``, cleared when the Job
ends); a finished one moves the run on (backup,
then migrate) or ends it: Done, or Failed with a retry scheduled when the
failure was transient (``fail``) and stalled otherwise. A Job deleted before
it finished ends its run.
"""

from __future__ import annotations

from datetime import timedelta

from baselinr_operator import RETRY_ANNOTATION
from baselinr_operator.outcome import JobOutcome
from baselinr_operator.plans import NORMAL, WARNING, Facts, Finished, Plan, next_step
from baselinr_operator.settings import OperatorSettings
from baselinr_operator.status import BACKED_UP, MIGRATED, VALIDATED, Phase, Reason, Step, now_iso

STUCK_GRACE = timedelta(seconds=30)  # a configuration error must last this long before the run is failed


def follow(facts: Facts, p: Plan, settings: OperatorSettings) -> None:
    """The run's Job exists (or must): wait for it, or take in its outcome."""
    draft = p.draft
    step = draft.run["step"]
    job = facts.job
    if job is None or job.finished or job.trouble is not None:
        draft.lock_wait(str(draft.run.get("job")), None)  # the Job ended (or never ran): nothing waits any more
    if job is None and facts.job_gone:
        name = draft.run.get("job")
        message = (
            f"{step} Job {name} was deleted before it finished; "
            f"change the spec or set the {RETRY_ANNOTATION} annotation to run it again"
        )
        p.finished = Finished(step, False, None)
        draft.run.update(step=Step.FAILED)
        draft.set(retry=None)
        draft.failed(Reason.JOB_DELETED, message, retrying=False)
        p.event(WARNING, Reason.JOB_DELETED, message)
        return
    if job is not None and not job.finished and job.trouble is not None:
        _stuck(facts, p, job)
        return
    if job is None or not job.finished:
        p.create_step = step if job is None else None
        if job is not None and step == Step.MIGRATE:
            _lock_wait(facts, p, job)
        return
    p.finished = Finished(step, job.succeeded, job.duration)
    if step == Step.BACKUP:
        _backup_done(facts, p, job, settings)
    elif step == Step.MIGRATE:
        _migrate_done(facts, p, job, settings)
    else:
        _validate_done(facts, p, job, settings)


def _lock_wait(facts: Facts, p: Plan, job: JobOutcome) -> None:
    """The running migrate Job's log says it waits for a table lock (or no longer does): show who holds it."""
    draft = p.draft
    before = draft.get("lockWait") or {}
    draft.lock_wait(job.name, facts.lock_holder)
    if facts.lock_holder is None:
        if before:
            draft.progressing(Phase.MIGRATING, Reason.MIGRATION_RUNNING, f"Migrating to v{draft.run['target']} (Job {job.name})")
    elif before.get("job") != job.name:  # one Event per Job: the retries go on in its log
        p.event(WARNING, Reason.WAITING_FOR_LOCK, f"Migrate Job {job.name} is waiting for a lock held by {facts.lock_holder}")


def superseded(facts: Facts) -> bool:
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
        draft.run.update(step=Step.FAILED)
        draft.set(retry=None)
        draft.failed(Reason.POD_CANNOT_START, message, retrying=False)
        p.event(WARNING, Reason.POD_CANNOT_START, message)
        return
    prefix = f"{step} Job {job.name} is waiting: "
    message = prefix + trouble.message
    if draft.get("message") != message:
        if not str(draft.get("message") or "").startswith(prefix):  # once per Job: pulls flap between two reasons
            p.event(WARNING, Reason.POD_NOT_STARTING, message)
        phase = {Step.BACKUP: Phase.BACKING_UP, Step.MIGRATE: Phase.MIGRATING}.get(step)
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
        next_step(facts, p, Step.MIGRATE)
        return
    message = f"Backup Job {job.name} failed: {job.error}"
    draft.set_condition(BACKED_UP, False, Reason.BACKUP_FAILED, message)
    p.event(WARNING, Reason.BACKUP_FAILED, message)
    if job.credentials_refused:  # the migration would try the same credentials again: one refusal is enough
        _fail(facts, p, job, Reason.BACKUP_FAILED, message + " (the migration would use the same credentials: no migration ran)",
              settings)  # fmt: skip
        return
    if facts.spec.backup.mode == "Optional":
        next_step(facts, p, Step.MIGRATE)
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
        draft.run.update(step=Step.DONE)
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
    draft.run.update(step=Step.DONE)
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
    draft.run.update(step=Step.FAILED)
    failures = int((draft.get("retry") or {}).get("failures", 0)) + 1
    if job.transient and failures <= settings.retry_limit:
        delay = settings.retry_delay(failures)
        not_before = facts.now + timedelta(seconds=delay)
        draft.set(retry={"failures": failures, "notBefore": now_iso(not_before)})
        draft.failed(reason, f"{message} (retry {failures} of {settings.retry_limit} in {delay:g}s)", retrying=True)
        return
    draft.set(retry={"failures": failures})
    if job.transient:
        reason = Reason.RETRIES_EXHAUSTED
        message = f"{message} (gave up after {failures - 1} retries; change the spec or set the {RETRY_ANNOTATION} annotation)"
    draft.failed(reason, message, retrying=False)
