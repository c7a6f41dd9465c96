"""The planner's vocabulary: the facts it is given, the plan it returns, and the bookkeeping of a run.

Used by ``planner`` (what to do next) and ``follow`` (what a run's Job came
to), and read by ``handlers``, which gathers the ``Facts`` and carries out the
``Plan``. A run's Job is named here, once (``jobs.job_name``), when the run
reaches a step: the name goes into ``status.run.job`` before the Job is
created, and ``handlers`` builds the Job under that name. Pure: no API, no
clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from baselinr_operator.jobs import job_name
from baselinr_operator.outcome import JobOutcome
from baselinr_operator.spec import SchemaSpec
from baselinr_operator.status import Phase, Reason, StatusDraft, Step, now_iso

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
    lock_holder: str | None = None  # the running migrate Job's last word: it waits for a lock held by this session


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


@dataclass(frozen=True)
class JobToCreate:
    """The Job of ``status.run`` that must exist: its step, target, run number and (the one) name."""

    step: str
    target: int
    run: int
    name: str


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

    @property
    def create(self) -> JobToCreate | None:
        """The Job to create (or adopt), as ``status.run`` names it."""
        if self.create_step is None:
            return None
        run = self.draft.run
        return JobToCreate(self.create_step, int(run["target"]), int(run["id"]), str(run["job"]))

    def event(self, type_: str, reason: str, message: str) -> None:
        self.events.append(Event(type_, reason, message))


def start_run(facts: Facts, p: Plan, step: str) -> None:
    """A new run (the next number) towards the spec's target, at ``step``."""
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
    _announce(p, step, name)


def next_step(facts: Facts, p: Plan, step: str) -> None:
    """Move the current run on to ``step`` (a new Job of the same run)."""
    draft = p.draft
    name = job_name(facts.name, step, int(draft.run["target"]), int(draft.run["id"]))
    draft.run.update(step=step, job=name)
    _announce(p, step, name)


def _announce(p: Plan, step: str, name: str) -> None:
    draft, target = p.draft, p.draft.run["target"]
    if step == Step.BACKUP:
        draft.progressing(Phase.BACKING_UP, Reason.BACKUP_RUNNING, f"Backing up before migrating to v{target} (Job {name})")
        p.event(NORMAL, Reason.BACKUP_RUNNING, f"Started backup Job {name}")
    elif step == Step.MIGRATE:
        draft.progressing(Phase.MIGRATING, Reason.MIGRATION_RUNNING, f"Migrating to v{target} (Job {name})")
        p.event(NORMAL, Reason.MIGRATION_RUNNING, f"Started migrate Job {name} (target v{target})")
    else:
        draft.checking(Reason.VALIDATION_RUNNING, f"Validating the schema (Job {name})")
        p.event(NORMAL, Reason.VALIDATION_RUNNING, f"Started validate Job {name}")
    p.create_step = step
