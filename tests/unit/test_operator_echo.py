"""The echo of the operator's own status write: its watch event needs no reconcile, anything else does.

``runtime.own_echo`` decides from the resource as the reconcile read it and as the status write
returned it; ``Runtime`` remembers that version per resource until the next write or the resource's
deletion. The saving (a get of the resource, its Job and its Pods per write) is measured by
``bench/operator_latency.py --fleet``.
"""

from __future__ import annotations

import copy
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
