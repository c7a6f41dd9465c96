"""Pure: what a Job came to, read from the Job's conditions and its Pod's termination message.

Called by ``handlers`` with the Job and its Pods as ``kube`` returned them
(plain dicts); the planner consumes the ``JobOutcome``. The engine's
``baselinr job ...`` commands write a JSON result to the termination
message; a Pod that died before writing one (killed, deadline, image pull)
leaves no result, and the Job's own condition message is used instead. Only
the engine's own result reaches the status, its message capped at
``status.MESSAGE_MAX`` characters: never raw container output, which could hold
anything the container read (the Job is told ``terminationMessagePolicy:
File`` too, so Kubernetes never puts logs there). The one exception is
``lock_holder``: from a running migrate Job's log it takes only the session
named in the engine's own lock-wait line, checked against that line's shape.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from baselinr.errors import EXIT_UNAVAILABLE
from baselinr_operator.status import cap

# Failures that retrying as they are cannot fix, even when reported with the "unavailable" exit code:
# a wrong password retried would only lock the account.
PERMANENT_ERROR_TYPES = frozenset({"AuthenticationFailed"})
# Failures that say the config Secret's credentials were refused: every Job of the run would use the same ones.
CREDENTIAL_ERROR_TYPES = frozenset({"AuthenticationFailed"})


# Why a Job's Pod has not started, by the reason Kubernetes gives: configuration errors stay until someone
# fixes them (permanent); the others may clear by themselves (an image pull retried, a quota freed).
CONFIG_ERRORS = frozenset({"CreateContainerConfigError", "CreateContainerError", "InvalidImageName", "ErrImageNeverPull"})
WAITING_TROUBLE = CONFIG_ERRORS | {"ErrImagePull", "ImagePullBackOff"}


@dataclass(frozen=True)
class Trouble:
    """Why a running Job has no running Pod: Kubernetes' own reason and message."""

    reason: str
    message: str
    permanent: bool


@dataclass(frozen=True)
class JobOutcome:
    name: str
    finished: bool
    succeeded: bool = False
    exit_code: int | None = None
    result: Mapping[str, Any] = field(default_factory=dict)
    message: str = ""
    started: datetime | None = None
    completed: datetime | None = None
    trouble: Trouble | None = None  # an unfinished Job whose Pod cannot start
    ran: bool = False  # a container of the Job has started at some point

    @property
    def has_result(self) -> bool:
        return bool(self.result)

    @property
    def transient(self) -> bool:
        """Worth retrying as it is: the database was unreachable or locked, or the Pod never reported."""
        if self.succeeded or self.result.get("error_type") in PERMANENT_ERROR_TYPES:
            return False
        return not self.has_result or self.exit_code == EXIT_UNAVAILABLE

    @property
    def credentials_refused(self) -> bool:
        """The database refused the credentials this Job used (those of the config Secret)."""
        return self.result.get("error_type") in CREDENTIAL_ERROR_TYPES

    @property
    def duration(self) -> float | None:
        if self.started and self.completed:
            return max((self.completed - self.started).total_seconds(), 0.0)
        return None

    @property
    def error(self) -> str:
        """The engine's own message when it wrote one, else what Kubernetes said."""
        return cap(str(self.result.get("error") or self.message or "the Job failed without a message"))


JOB_DONE = ("Complete", "Failed")  # the Job conditions that end it


def job_finished(job: Mapping[str, Any]) -> bool:
    """The Job has ended (its ``Complete`` or ``Failed`` condition is True)."""
    conditions = (job.get("status") or {}).get("conditions") or []
    return any(c.get("type") in JOB_DONE and c.get("status") == "True" for c in conditions)


def job_outcome(
    job: Mapping[str, Any], pods: Sequence[Mapping[str, Any]], events: Sequence[Mapping[str, Any]] = ()
) -> JobOutcome:
    name = job["metadata"]["name"]
    status = job.get("status") or {}
    done = {c["type"]: c for c in status.get("conditions") or [] if c.get("status") == "True"}
    started = _time(status.get("startTime"))
    if "Complete" in done:
        succeeded, cond = True, done["Complete"]
    elif "Failed" in done:
        succeeded, cond = False, done["Failed"]
    else:
        return JobOutcome(name, finished=False, started=started, trouble=trouble(pods, events), ran=_ran(pods))
    terminated = _last_terminated(pods)
    result: dict[str, Any] = {}
    exit_code = None
    message = f"{cond.get('reason') or ''}: {cond.get('message') or ''}".strip(": ")
    if terminated is not None:
        exit_code = terminated.get("exitCode")
        text = terminated.get("message") or ""
        result = parse_result(text)
        if not result and not succeeded:
            if terminated.get("reason") == "OOMKilled":
                message = (
                    f"{message} (the container was OOMKilled, exit code {exit_code}, before writing a result: "
                    "raise spec.jobTemplate.resources.limits.memory)"
                ).lstrip()
            else:
                message = f"{message} (the container exited with code {exit_code} without writing a result)".lstrip()
    completed = _time(status.get("completionTime")) or _time(cond.get("lastTransitionTime"))
    return JobOutcome(name, True, succeeded, exit_code, result, message, started, completed)


def trouble(pods: Sequence[Mapping[str, Any]], events: Sequence[Mapping[str, Any]] = ()) -> Trouble | None:
    """Why the Job's Pod is not running: a container waiting on a known reason, an unschedulable Pod,
    or (no Pod at all) the Job controller's FailedCreate Event."""
    for pod in pods:
        name = (pod.get("metadata") or {}).get("name", "")
        status = pod.get("status") or {}
        for cs in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            reason = str(waiting.get("reason") or "")
            if reason in WAITING_TROUBLE:
                text = cap(f"Pod {name}: {reason}: {waiting.get('message') or 'no message'}", 512)
                return Trouble(reason, text, reason in CONFIG_ERRORS)
        for c in status.get("conditions") or []:
            if c.get("type") == "PodScheduled" and c.get("status") == "False" and c.get("reason") == "Unschedulable":
                return Trouble("Unschedulable", cap(f"Pod {name}: Unschedulable: {c.get('message') or ''}", 512), False)
    if not pods:
        failed = [e for e in events if e.get("reason") == "FailedCreate"]
        if failed:
            latest = max(failed, key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))
            return Trouble("FailedCreate", cap(f"FailedCreate: {latest.get('message') or ''}", 512), False)
    return None


def _ran(pods: Sequence[Mapping[str, Any]]) -> bool:
    for pod in pods:
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            if (cs.get("state") or {}).get("running") or (cs.get("state") or {}).get("terminated") or cs.get("lastState"):
                return True
    return False


def parse_result(text: str) -> dict[str, Any]:
    """The engine's JSON result, or ``{}`` when the message is not one."""
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) and "command" in data else {}


def _last_terminated(pods: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    found: list[tuple[str, Mapping[str, Any]]] = []
    for pod in pods:
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            term = (cs.get("state") or {}).get("terminated")
            if term:
                found.append((str(term.get("finishedAt") or ""), term))
    return max(found, key=lambda f: f[0])[1] if found else None


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


# The engine's line for a DDL lock timeout (``baselinr.cli.render.migrate.retry_line``): "... v3 at statement 1: waiting
# for a lock held by <sessions>, retry 2/5 in 1.3 s". The sessions are the engine's ``Blocker.describe`` texts.
LOCK_WAIT_LINE = re.compile(r": waiting for a lock held by (?P<held>.{1,600}?), retry \d+(?:/\d+)? in [0-9.]+ s\s*$")
HELD_BY = re.compile(r"^(?:another session|(?:(?:PostgreSQL backend|connection) \d+ \([^()]{0,400}\))(?:; |$))+$")


def lock_holder(log: str) -> str | None:
    """Who the migration waits for, by the last lock-wait line of its log; None when there is none.

    Only a text in the shape the engine writes is taken (control characters removed, at most 512
    characters): the rest of the log never reaches the status.
    """
    for line in reversed(log.splitlines()[-50:]):
        found = LOCK_WAIT_LINE.search(_message(line))
        if found:
            held = "".join(ch for ch in found.group("held") if ch.isprintable())
            return cap(held, 512) if HELD_BY.match(held) else None
    return None


def _message(line: str) -> str:
    """The message of a JSON log line (``--log-format json``), else the line itself."""
    if not line.startswith("{"):
        return line
    try:
        message = json.loads(line).get("message")
    except (ValueError, AttributeError):
        return line
    return message if isinstance(message, str) else line


def running_pod(pods: Sequence[Mapping[str, Any]], container: str) -> str | None:
    """The name of the Pod whose ``container`` runs now (a Job has at most one at a time here), if any."""
    for pod in pods:
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            if cs.get("name") == container and "running" in (cs.get("state") or {}):
                return str((pod.get("metadata") or {}).get("name") or "") or None
    return None
