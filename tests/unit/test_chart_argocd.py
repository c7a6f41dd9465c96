"""The Argo CD health check for BaselinrSchema (``docs/argocd-health.lua``), run by a real Lua interpreter (lupa).

The statuses come from the operator's own status writer, and each verdict is
compared with ``baselinr-schema wait``'s (``baselinr_operator.waiter.judge``),
so the two never disagree. ``docs/argocd.md`` must carry the script as it is.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from lupa import LuaRuntime

from baselinr_operator.status import Phase, Reason, StatusDraft
from baselinr_operator.waiter import judge
from tests.helm.helm import ROOT

SCRIPT = (ROOT / "docs" / "argocd-health.lua").read_text()
NOW = datetime(2025, 1, 1, tzinfo=timezone.utc)


def health(obj: dict[str, Any]) -> tuple[str, str]:
    lua = LuaRuntime(unpack_returned_tuples=True)

    def to_lua(value: Any) -> Any:
        if isinstance(value, dict):
            return lua.table_from({k: to_lua(v) for k, v in value.items() if v is not None})
        if isinstance(value, list):
            return lua.table_from([to_lua(v) for v in value])
        return value

    lua.globals().obj = to_lua(obj)
    result = lua.execute(SCRIPT)
    return str(result["status"]), str(result["message"] or "")


def resource(target: int, generation: int, status: dict[str, Any] | None) -> dict[str, Any]:
    body: dict[str, Any] = {"metadata": {"name": "app", "generation": generation}, "spec": {"targetVersion": target}}
    if status is not None:
        body["status"] = status
    return body


def draft(generation: int, current: int | None) -> StatusDraft:
    d = StatusDraft({}, generation, NOW)
    d.set(currentVersion=current)
    d.observed()
    return d


def _ready() -> dict[str, Any]:
    d = draft(2, 2)
    d.ready("At version 2")
    return resource(2, 2, d.data)


def _stale_ready() -> dict[str, Any]:
    d = draft(1, 1)
    d.ready("At version 1")
    return resource(2, 2, d.data)


def _migrating() -> dict[str, Any]:
    d = draft(2, 1)
    d.progressing(Phase.MIGRATING, Reason.MIGRATION_RUNNING, "Migrating to v2 (Job app-migrate-v2-1)")
    return resource(2, 2, d.data)


def _stalled() -> dict[str, Any]:
    d = draft(2, 1)
    d.failed(Reason.MIGRATION_FAILED, "Migrate Job app-migrate-v2-1 failed: no such table: app_missing", retrying=False)
    return resource(2, 2, d.data)


def _retrying() -> dict[str, Any]:
    d = draft(2, 1)
    d.failed(Reason.MIGRATION_FAILED, "database unreachable (retry 1 of 5 in 30s)", retrying=True)
    return resource(2, 2, d.data)


def _suspended() -> dict[str, Any]:
    d = draft(2, 1)
    d.suspended("Suspended: no Job is started while spec.suspend is true")
    return resource(2, 2, d.data)


@pytest.mark.parametrize(
    ("make", "expected", "exit_code"),
    [
        (_ready, "Healthy", 0),
        (_stale_ready, "Progressing", None),
        (_migrating, "Progressing", None),
        (_stalled, "Degraded", 4),
        (_retrying, "Progressing", None),
        (_suspended, "Suspended", 1),
        (lambda: resource(1, 1, None), "Progressing", None),
    ],
    ids=["ready", "stale-ready", "migrating", "stalled", "retrying", "suspended", "new"],
)
def test_health_matches_the_waiter(make: Any, expected: str, exit_code: int | None) -> None:
    obj = make()
    status, message = health(obj)
    assert status == expected
    assert judge(obj, obj["spec"]["targetVersion"]).exit_code == exit_code
    if expected == "Degraded":
        assert "no such table: app_missing" in message


def test_the_docs_carry_the_script_verbatim() -> None:
    doc = (ROOT / "docs" / "argocd.md").read_text()
    indented = "\n".join(("      " + line) if line else "" for line in SCRIPT.rstrip("\n").split("\n"))
    assert indented in doc
    assert "resource.customizations.health.baselinr.io_BaselinrSchema: |" in doc
