"""Watch events that need no reconcile: the echo of the operator's own status write, a finished Job seen again.

``runtime.own_echo`` decides from the resource as the reconcile read it and as the status write
returned it; ``Runtime`` remembers that version per resource until the next write or the resource's
deletion. A finished Job reconciles its owner at its first event only (the Job controller updates it
again after ``Complete``). The saving (per run: a get of the resource, its Job and its Pods for the
first write, a get of the resource for the last and for the finished Job's second update) is
measured by ``bench/operator_latency.py --fleet``. So is a scheduled look at a resource whose Job
finished while the scheduler was busy with the others.
"""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone
from typing import Any

from baselinr_operator.runtime import Runtime, own_echo
from baselinr_operator.settings import OperatorSettings

KEY = ("ns", "db")


def resource(version: str, **meta: Any) -> dict[str, Any]:
    body = {
        "metadata": {"name": "db", "namespace": "ns", "uid": "u1", "generation": 1, "resourceVersion": version},
        "spec": {"targetVersion": 2},
        "status": {"phase": "Pending"},
    }
    body["metadata"].update(meta)
    return body


def written(read: dict[str, Any], version: str, **meta: Any) -> dict[str, Any]:
    body = copy.deepcopy(read)
    body["metadata"].update(resourceVersion=version, **meta)
    body["status"] = {"phase": "Migrating"}
    return body


def test_a_write_that_changed_only_the_status_is_an_echo() -> None:
    read = resource("10")
    assert own_echo(read, written(read, "12")) == "12"


def test_a_spec_edit_an_annotation_or_a_deletion_in_between_is_not() -> None:
    read = resource("10")
    assert own_echo(read, written(read, "12", generation=2)) is None
    assert own_echo(read, written(read, "12", annotations={"baselinr.io/retry": "1"})) is None
    assert own_echo(read, written(read, "12", deletionTimestamp="2026-01-01T00:00:00Z")) is None
    assert own_echo(read, written(read, "12", uid="u2")) is None  # deleted and created again
    assert own_echo(read, None) is None  # gone


def test_the_runtime_knows_the_last_own_write_of_each_resource() -> None:
    rt = Runtime(OperatorSettings())
    read = resource("10")
    assert not rt.is_echo(KEY, "12")
    rt.wrote(KEY, read, written(read, "12"))
    assert rt.is_echo(KEY, "12")
    assert not rt.is_echo(KEY, "13") and not rt.is_echo(KEY, None) and not rt.is_echo(("ns", "other"), "12")
    rt.wrote(KEY, read, written(read, "14", generation=2))  # a spec edit came in between: its event is reconciled
    assert not rt.is_echo(KEY, "12") and not rt.is_echo(KEY, "14")
    rt.wrote(KEY, read, written(read, "16"))
    rt.forget(KEY)
    assert not rt.is_echo(KEY, "16")


def test_a_finished_job_reconciles_its_owner_once_until_it_is_deleted() -> None:
    rt = Runtime(OperatorSettings())
    job = ("ns", "db-migrate-v2-1")
    assert rt.job_finished_first(job)
    assert not rt.job_finished_first(job)
    assert rt.job_finished_first(("ns", "db-migrate-v3-2"))
    rt.finished_job_gone(job)
    assert rt.job_finished_first(job)  # a Job of that name created again


def test_a_scheduled_resource_that_a_reconcile_meanwhile_cleared_or_moved_is_passed_over() -> None:
    rt = Runtime(OperatorSettings())
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for name in ("a", "b", "c", "d"):
        rt.schedule(("ns", name), now - timedelta(seconds=1))
    rt.schedule(("ns", "later"), now + timedelta(seconds=1))
    due = rt.take_due(now)
    assert next(due) == ("ns", "a")
    rt.schedule(("ns", "b"), None)  # its Job finished: nothing to look at
    rt.schedule(("ns", "c"), now + timedelta(seconds=10))  # reconciled meanwhile: next look later
    assert list(due) == [("ns", "d")]
    assert list(rt.take_due(now)) == []
    assert set(rt.take_due(now + timedelta(seconds=10))) == {("ns", "later"), ("ns", "c")}
