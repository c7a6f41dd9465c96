"""The one writer of a BaselinrSchema's ``.status``: phases, conditions and their reasons.

The planner edits a ``StatusDraft`` (a copy of the live status) through the
methods here; ``handlers`` then sends ``merge_patch(old, new)`` through
``kube.patch_status``, a JSON merge patch on the status subresource, so a
concurrent edit of the spec or metadata never conflicts with it or is lost.

Conditions follow kstatus: ``Ready``, ``Reconciling`` and ``Stalled``, plus
``BackedUp``, ``Migrated`` and ``Validated``; each carries one of the
``Reason`` names below. ``lastTransitionTime`` changes only when a
condition's status does. Messages are capped at ``MESSAGE_MAX`` characters.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any


class Phase:
    PENDING = "Pending"
    BACKING_UP = "BackingUp"
    MIGRATING = "Migrating"
    VALIDATING = "Validating"
    READY = "Ready"
    FAILED = "Failed"
    SUSPENDED = "Suspended"


class Step:
    """``status.run.step``: the Job the run is at (Backup, Migrate, Validate), or how it ended (Done, Failed)."""

    BACKUP = "Backup"
    MIGRATE = "Migrate"
    VALIDATE = "Validate"
    DONE = "Done"
    FAILED = "Failed"


class Reason:
    BACKUP_RUNNING = "BackupRunning"
    BACKUP_SUCCEEDED = "BackupSucceeded"
    BACKUP_SKIPPED = "BackupSkipped"
    BACKUP_FAILED = "BackupFailed"
    MIGRATION_RUNNING = "MigrationRunning"
    MIGRATION_SUCCEEDED = "MigrationSucceeded"
    MIGRATION_FAILED = "MigrationFailed"
    VALIDATION_RUNNING = "ValidationRunning"
    VALIDATION_SUCCEEDED = "ValidationSucceeded"
    VALIDATION_FAILED = "ValidationFailed"
    VALIDATION_JOB_FAILED = "ValidationJobFailed"
    AT_TARGET = "AtTargetVersion"
    RETRY_SCHEDULED = "RetryScheduled"
    RETRIES_EXHAUSTED = "RetriesExhausted"
    RETRY_REQUESTED = "RetryRequested"
    WAITING_FOR_DATABASE = "WaitingForDatabase"
    SUSPENDED = "Suspended"
    INVALID_SPEC = "InvalidSpec"
    NOT_ALLOWED = "NotAllowed"
    JOB_REJECTED = "JobRejected"
    JOB_DELETED = "JobDeleted"
    TARGET_UNKNOWN = "TargetAboveCodeVersion"
    POD_NOT_STARTING = "PodNotStarting"
    POD_CANNOT_START = "PodCannotStart"
    SUPERSEDED = "Superseded"
    WAITING_FOR_LOCK = "WaitingForLock"


READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"
BACKED_UP = "BackedUp"
MIGRATED = "Migrated"
VALIDATED = "Validated"

ACTIVE_STEPS = (Step.BACKUP, Step.MIGRATE, Step.VALIDATE)
MESSAGE_MAX = 1024
LIST_MAX = 50  # validation errors or warnings kept in the status


def cap(text: str, limit: int = MESSAGE_MAX) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def now_iso(now: datetime) -> str:
    return now.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class StatusDraft:
    """A working copy of ``.status`` that the planner changes; ``data`` is the result."""

    def __init__(self, status: Mapping[str, Any] | None, generation: int, now: datetime) -> None:
        self.original: dict[str, Any] = copy.deepcopy(dict(status or {}))
        self.data: dict[str, Any] = copy.deepcopy(self.original)
        self.generation = generation
        self.now = now

    # --- plain fields -----------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def set(self, **fields: Any) -> None:
        if isinstance(fields.get("message"), str):
            fields["message"] = cap(fields["message"])
        self.data.update(fields)

    @property
    def run(self) -> dict[str, Any]:
        run: dict[str, Any] = self.data.setdefault("run", {})
        return run

    def observed(self) -> None:
        self.data["observedGeneration"] = self.generation

    def condition(self, type_: str) -> dict[str, Any] | None:
        for c in self.data.get("conditions") or []:
            if c.get("type") == type_:
                found: dict[str, Any] = c
                return found
        return None

    def set_condition(self, type_: str, status: bool, reason: str, message: str = "") -> None:
        value = "True" if status else "False"
        conditions: list[dict[str, Any]] = self.data.setdefault("conditions", [])
        old = self.condition(type_)
        new = {
            "type": type_,
            "status": value,
            "reason": reason,
            "message": cap(message),
            "observedGeneration": self.generation,
            "lastTransitionTime": old["lastTransitionTime"] if old and old.get("status") == value else now_iso(self.now),
        }
        if old is None:
            conditions.append(new)
        else:
            conditions[conditions.index(old)] = new

    # --- the shapes a resource can be in ------------------------------------------

    def progressing(self, phase: str, reason: str, message: str) -> None:
        """Work is under way (a Job runs or is about to)."""
        self.data.update(phase=phase, message=cap(message))
        self.set_condition(READY, False, reason, message)
        self.set_condition(RECONCILING, True, reason, message)
        self.set_condition(STALLED, False, reason, "")

    def checking(self, reason: str, message: str) -> None:
        """A drift check runs: the resource stays Ready while it does."""
        self.data.update(phase=Phase.VALIDATING, message=cap(message))

    def ready(self, message: str) -> None:
        self.data.update(phase=Phase.READY, message=cap(message))
        self.set_condition(READY, True, Reason.AT_TARGET, message)
        self.set_condition(RECONCILING, False, Reason.AT_TARGET, "")
        self.set_condition(STALLED, False, Reason.AT_TARGET, "")

    def failed(self, reason: str, message: str, *, retrying: bool) -> None:
        """A step failed: stalled until something changes, or waiting for a scheduled retry."""
        self.data.update(phase=Phase.FAILED, message=cap(message))
        self.set_condition(READY, False, reason, message)
        if retrying:
            self.set_condition(RECONCILING, True, Reason.RETRY_SCHEDULED, message)
            self.set_condition(STALLED, False, Reason.RETRY_SCHEDULED, "")
        else:
            self.set_condition(RECONCILING, False, reason, "")
            self.set_condition(STALLED, True, reason, message)

    def waiting(self, reason: str, message: str) -> None:
        """Blocked by something outside this resource (another resource migrating the database)."""
        self.data.update(phase=Phase.PENDING, message=cap(message))
        self.set_condition(READY, False, reason, message)
        self.set_condition(RECONCILING, True, reason, message)
        self.set_condition(STALLED, False, reason, "")

    def suspended(self, message: str) -> None:
        self.data.update(phase=Phase.SUSPENDED, message=cap(message))
        self.set_condition(READY, False, Reason.SUSPENDED, message)
        self.set_condition(RECONCILING, False, Reason.SUSPENDED, "")
        self.set_condition(STALLED, False, Reason.SUSPENDED, "")

    def invalid_spec(self, message: str) -> None:
        self.data.update(phase=Phase.FAILED, message=cap(message))
        self.set_condition(READY, False, Reason.INVALID_SPEC, message)
        self.set_condition(RECONCILING, False, Reason.INVALID_SPEC, "")
        self.set_condition(STALLED, True, Reason.INVALID_SPEC, message)
        self.observed()

    def validation(self, valid: bool | None, errors: list[str], warnings: list[str], job: str) -> None:
        self.data["valid"] = valid
        errors = [cap(str(e), 512) for e in errors[:LIST_MAX]]
        warnings = [cap(str(w), 512) for w in warnings[:LIST_MAX]]
        self.data["validation"] = {"errors": errors, "warnings": warnings, "job": job, "time": now_iso(self.now)}
        if valid is True:
            self.set_condition(VALIDATED, True, Reason.VALIDATION_SUCCEEDED, "schema matches the code")
        elif valid is False:
            self.set_condition(VALIDATED, False, Reason.VALIDATION_FAILED, "; ".join(errors) or "validation failed")

    def lock_wait(self, job: str, held_by: str | None) -> None:
        """The migrate Job ``job`` waits for a lock ``held_by`` a session (None: it does not, or it ended)."""
        if held_by is None:
            self.data.pop("lockWait", None)
            return
        old = self.data.get("lockWait") or {}
        since = old.get("since") if old.get("job") == job else None
        self.data["lockWait"] = {"job": job, "heldBy": cap(held_by, 512), "since": since or now_iso(self.now)}
        message = f"Migrating to v{self.run.get('target')} (Job {job}): waiting for a lock held by {held_by}"
        self.progressing(Phase.MIGRATING, Reason.WAITING_FOR_LOCK, message)

    # --- output ---------------------------------------------------------------------

    def patch(self) -> dict[str, Any]:
        return merge_patch(self.original, self.data)


def merge_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The RFC 7386 merge patch that turns ``old`` into ``new`` (lists are replaced whole)."""
    patch: dict[str, Any] = {}
    for key in old.keys() - new.keys():
        patch[key] = None
    for key, value in new.items():
        before = old.get(key, _MISSING)
        if before == value:
            continue
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            sub = merge_patch(before, value)
            if sub:
                patch[key] = sub
        else:
            patch[key] = copy.deepcopy(value)
    return patch


_MISSING = object()
