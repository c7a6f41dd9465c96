"""A plan's review before it runs: lint findings, lock hazards, and what a rollback would run.

Called by ``baselinr migrate apply --dry-run`` (text, JSON and the Markdown a
CI job posts on a pull request) and ``baselinr migrate lint --config``;
library callers get the same facts. ``lint_pending`` lints what
``MigrationManager.plan`` would apply; ``review`` adds, for an up plan, the
hazards (statements that hold a lock other sessions wait for, steps that
cannot run in one transaction) and the down steps that would take the
database back, newest first (a version without one is marked: rollback
refuses to pass it). Everything is a typed
value; the CLI renders it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from baselinr.lint.findings import Finding, LintReport
from baselinr.lint.linter import lint
from baselinr.lint.rules import BIG_TABLES
from baselinr.lint.sources import units_from_manager

if TYPE_CHECKING:
    from baselinr.storage.migrations.manager import MigrationManager
    from baselinr.storage.migrations.results import Plan

# The rules whose finding means the statement holds (or waits for) a lock that blocks other
# sessions' reads or writes while it runs: a table rewrite, a scan under an exclusive lock,
# an index build that blocks writes, a copy of the table.
LOCK_RULES = frozenset(
    {
        "pg-index-not-concurrent",
        "pg-drop-index-not-concurrent",
        "pg-type-change-rewrite",
        "pg-volatile-default",
        "pg-constraint-not-valid",
        "pg-set-not-null",
        "pg-unique-constraint",
        "mysql-copy-algorithm",
        "sqlite-table-rebuild",
    }
)

NOT_ATOMIC = "not-atomic"  # the step's statements commit one by one


@dataclass(frozen=True)
class Hazard:
    """Something about a planned step a reviewer should weigh before it runs."""

    kind: str  # a lint rule id from LOCK_RULES, or NOT_ATOMIC
    version: int
    statement_index: int  # 1-based; 0 for the whole migration
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RollbackStep:
    """What rolling back one planned version would run."""

    version: int
    description: str
    statements: list[str]
    python: str | None
    reversible: bool  # False: the migration has no down step, and rollback refuses to pass it

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PlanReview:
    """The review of one plan (empty lists for a plan that runs nothing or goes down)."""

    lint: LintReport
    hazards: list[Hazard] = field(default_factory=list)
    rollback: list[RollbackStep] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "lint": self.lint.to_dict(),
            "hazards": [h.to_dict() for h in self.hazards],
            "rollback": [r.to_dict() for r in self.rollback],
        }


def lint_pending(mgr: MigrationManager, target: int | None) -> LintReport:
    """The lint report of the migrations ``apply --target`` would run, on the model of the applied ones."""
    units, model = units_from_manager(mgr, target)
    return lint(units, mgr.dialect.name, model, big_tables=[mgr.names(t) for t in BIG_TABLES])


def lock_hazards(plan: Plan, findings: list[Finding]) -> list[Hazard]:
    """Non-atomic steps and lock-holding statements of ``plan``, in plan order."""
    by_version: dict[int | None, list[Finding]] = {}
    for f in findings:
        if f.rule in LOCK_RULES:
            by_version.setdefault(f.version, []).append(f)
    hazards: list[Hazard] = []
    for step in plan.steps:
        if not step.transactional:
            hazards.append(
                Hazard(NOT_ATOMIC, step.version, 0, "each statement commits on its own; a failure leaves it partly applied")
            )
        hazards += [Hazard(f.rule, step.version, f.statement_index, f.advice) for f in by_version.get(step.version, [])]
    return hazards


def rollback_steps(mgr: MigrationManager, plan: Plan) -> list[RollbackStep]:
    """The down steps that would undo ``plan`` (an up plan), newest first."""
    if plan.direction != "up":
        return []
    steps = []
    for planned in reversed(plan.steps):
        m = mgr.chain.get(planned.version)
        fn = m.down_python
        python = getattr(fn, "__qualname__", None) if fn else None
        statements = m.down_statements(mgr.dialect, mgr.names) if m.has_down else []
        steps.append(RollbackStep(m.version, m.description, statements, python, m.has_down))
    return steps


def review(mgr: MigrationManager, plan: Plan) -> PlanReview:
    """Lint, lock hazards and rollback of ``plan`` (from ``mgr.plan`` or a dry run's ``ApplyResult.plan``)."""
    if plan.direction != "up" or not plan.steps:
        return PlanReview(LintReport(mgr.dialect.name))
    report = lint_pending(mgr, plan.target_version)
    return PlanReview(report, lock_hazards(plan, report.findings), rollback_steps(mgr, plan))
