"""Bring a database to a declared version: decide apply, roll back or refuse, then do it.

The decision a declarative caller needs (the operator's migrate Job through
``baselinr job migrate``, or any library caller that holds a desired version
rather than a verb): ``decide`` is pure, a ``StatusResult`` and a target in,
a ``Decision`` out, unit-tested without a server; ``reconcile`` runs a
decision through ``MigrationManager`` (its public ``apply`` / ``rollback``
only). A refusal is a value until the caller asks for its error
(``Decision.error``), a ``UsageError`` (exit 2) with the reason and a hint.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Protocol

from baselinr.errors import UsageError

if TYPE_CHECKING:
    from baselinr.storage.migrations.results import ApplyResult, LockRetry, StatusResult


class Action(str, Enum):
    """What reaching the target takes."""

    APPLY = "apply"  # up to the target (nothing to run when the database is there already)
    ROLLBACK = "rollback"  # down to the target, allowed by the caller
    REFUSE = "refuse"  # not allowed or not possible: see Decision.reason


class Refusal(str, Enum):
    """Why a target is refused (stable names a caller can branch on)."""

    BEYOND_CODE = "beyond_code"  # the code does not know the target version
    DOWNGRADE_NOT_ALLOWED = "downgrade_not_allowed"  # below the database's version without permission


@dataclass(frozen=True)
class Decision:
    """How to bring the database from ``current_version`` to ``target_version``."""

    action: Action
    target_version: int
    current_version: int | None
    code_version: int
    refusal: Refusal | None = None

    @property
    def refused(self) -> bool:
        return self.action is Action.REFUSE

    @property
    def up_to_date(self) -> bool:
        """The database is at the target already: applying runs nothing."""
        return self.action is Action.APPLY and self.current_version == self.target_version

    def error(self) -> UsageError:
        """The refusal as the engine's error (exit 2); only for a refused decision."""
        if self.refusal is Refusal.BEYOND_CODE:
            return UsageError(
                f"Target v{self.target_version} is beyond the latest version this image knows (v{self.code_version})."
            )
        if self.refusal is Refusal.DOWNGRADE_NOT_ALLOWED:
            return UsageError(
                f"Target v{self.target_version} is below the database version v{self.current_version}.",
                hint="Set allowDowngrade to roll back.",
            )
        raise ValueError(f"not a refusal: {self.action.value}")


def decide(status: StatusResult, target: int, *, allow_downgrade: bool = False) -> Decision:
    """Apply, roll back or refuse, from where the database stands (``status``) and the ``target``.

    A target beyond the code's latest version is refused even with
    ``allow_downgrade``; a target below the recorded version is a rollback
    only when the caller allows it. A database with no version recorded is
    at 0.
    """
    current = status.database_version

    def decision(action: Action, refusal: Refusal | None = None) -> Decision:
        return Decision(action, target, current, status.code_version, refusal)

    if target > status.code_version:
        return decision(Action.REFUSE, Refusal.BEYOND_CODE)
    if current is not None and target < current:
        if not allow_downgrade:
            return decision(Action.REFUSE, Refusal.DOWNGRADE_NOT_ALLOWED)
        return decision(Action.ROLLBACK)
    return decision(Action.APPLY)


class Migrator(Protocol):
    """The part of ``MigrationManager`` that ``reconcile`` uses."""

    def apply(
        self, target: int | None = ..., *, on_retry: Callable[[LockRetry], None] | None = ...
    ) -> ApplyResult: ...  # pragma: no cover - a protocol

    def rollback(
        self, target: int, *, on_retry: Callable[[LockRetry], None] | None = ...
    ) -> ApplyResult: ...  # pragma: no cover - a protocol


def reconcile(mgr: Migrator, decision: Decision, *, on_retry: Callable[[LockRetry], None] | None = None) -> ApplyResult:
    """Carry out ``decision`` (raise its error when it is a refusal)."""
    if decision.action is Action.REFUSE:
        raise decision.error()
    if decision.action is Action.ROLLBACK:
        return mgr.rollback(decision.target_version, on_retry=on_retry)
    return mgr.apply(decision.target_version, on_retry=on_retry)
