"""``baselinr.storage.migrations.reconcile``: the apply / roll back / refuse decision of a declared target.

``decide`` is pure and tested on ``StatusResult`` values alone; ``reconcile``
is tested through a recording stand-in for the manager's ``apply`` /
``rollback`` (the real runs against SQLite and PostgreSQL go through
``baselinr job migrate`` in ``test_operator_job_cli.py`` and the e2e tier).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from baselinr.errors import EXIT_USAGE, UsageError
from baselinr.storage.migrations.reconcile import Action, Decision, Refusal, decide, reconcile
from baselinr.storage.migrations.results import ApplyResult, LockRetry, Plan, StatusResult


def status(current: int | None, code: int = 5) -> StatusResult:
    state = "not_initialized" if current is None else "up_to_date" if current == code else "behind"
    return StatusResult(current, code, state)


@pytest.mark.parametrize(
    ("current", "target", "allow", "action", "refusal"),
    [
        (None, 1, False, Action.APPLY, None),
        (None, 5, False, Action.APPLY, None),
        (2, 5, False, Action.APPLY, None),
        (5, 5, False, Action.APPLY, None),
        (5, 5, True, Action.APPLY, None),
        (4, 2, True, Action.ROLLBACK, None),
        (4, 0, True, Action.ROLLBACK, None),
        (4, 2, False, Action.REFUSE, Refusal.DOWNGRADE_NOT_ALLOWED),
        (None, 6, False, Action.REFUSE, Refusal.BEYOND_CODE),
        (7, 6, True, Action.REFUSE, Refusal.BEYOND_CODE),  # permission to roll back never reaches past the code
        (3, 9, True, Action.REFUSE, Refusal.BEYOND_CODE),
    ],
)
def test_decide(current: int | None, target: int, allow: bool, action: Action, refusal: Refusal | None) -> None:
    d = decide(status(current), target, allow_downgrade=allow)
    assert (d.action, d.refusal, d.refused) == (action, refusal, action is Action.REFUSE)
    assert (d.current_version, d.target_version, d.code_version) == (current, target, 5)


def test_up_to_date_only_when_at_the_target() -> None:
    assert decide(status(5), 5).up_to_date
    assert not decide(status(4), 5).up_to_date
    assert not decide(status(None), 1).up_to_date
    assert not decide(status(5), 3, allow_downgrade=True).up_to_date


def test_refusals_become_usage_errors_with_the_reason() -> None:
    beyond = decide(status(2), 9).error()
    assert isinstance(beyond, UsageError) and beyond.exit_code == EXIT_USAGE
    assert str(beyond) == "Target v9 is beyond the latest version this image knows (v5)."
    below = decide(status(4), 2).error()
    assert below.message == "Target v2 is below the database version v4." and below.hint == "Set allowDowngrade to roll back."
    with pytest.raises(ValueError, match="not a refusal"):
        decide(status(4), 5).error()


class Recorder:
    """Stands in for ``MigrationManager``: records which verb a decision calls, with which target."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int | None]] = []

    def _result(self, target: int) -> ApplyResult:
        return ApplyResult(None, target, target, False, Plan(None, target, "none", [], "sqlite"))

    def apply(self, target: int | None = None, *, on_retry: Callable[[LockRetry], None] | None = None) -> ApplyResult:
        self.calls.append(("apply", target))
        return self._result(target or 0)

    def rollback(self, target: int, *, on_retry: Callable[[LockRetry], None] | None = None) -> ApplyResult:
        self.calls.append(("rollback", target))
        return self._result(target)


def test_reconcile_calls_the_verb_the_decision_names() -> None:
    mgr = Recorder()
    assert reconcile(mgr, decide(status(1), 4)).to_version == 4
    assert reconcile(mgr, decide(status(4), 2, allow_downgrade=True)).to_version == 2
    with pytest.raises(UsageError, match="below the database version"):
        reconcile(mgr, decide(status(4), 2))
    assert mgr.calls == [("apply", 4), ("rollback", 2)]


def test_decision_is_frozen() -> None:
    d = decide(status(1), 2)
    with pytest.raises(AttributeError):
        d.action = Action.ROLLBACK  # type: ignore[misc]
    assert isinstance(d, Decision)
