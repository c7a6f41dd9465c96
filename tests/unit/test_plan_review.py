"""Pure parts of a plan's review: which lint findings and steps are lock hazards
(``baselinr.lint.review.lock_hazards``), and the Markdown built from a review
(``baselinr.cli.render.markdown``), from values alone, without a database."""

from __future__ import annotations

import re

from baselinr.cli.render.markdown import plan_markdown, validate_markdown
from baselinr.lint import Finding, LintReport
from baselinr.lint.findings import LintedUnit
from baselinr.lint.review import LOCK_RULES, NOT_ATOMIC, PlanReview, RollbackStep, lock_hazards
from baselinr.lint.rules import RULE_IDS
from baselinr.storage.migrations.results import ApplyResult, Plan, PlannedStep, ValidationResult


def step(version: int, statements: list[str], transactional: bool = True) -> PlannedStep:
    return PlannedStep(version, f"v{version} change", "up", statements, None, transactional)


def finding(rule: str, version: int, index: int, severity: str = "error") -> Finding:
    return Finding(rule, severity, version, f"v{version}.py", index, "CREATE INDEX i ON t (c)", f"advice for {rule}")


def test_lock_rules_are_rules_lint_knows() -> None:
    assert LOCK_RULES <= RULE_IDS


def test_lock_hazards_in_plan_order() -> None:
    plan = Plan(1, 3, "up", [step(2, ["a", "b"]), step(3, ["c"], transactional=False)], "postgres")
    findings = [
        finding("pg-index-not-concurrent", 3, 1),
        finding("drop-column", 2, 1),  # destructive, not a lock: not a hazard here
        finding("pg-type-change-rewrite", 2, 2, "warning"),
    ]
    hazards = lock_hazards(plan, findings)
    assert [(h.version, h.statement_index, h.kind) for h in hazards] == [
        (2, 2, "pg-type-change-rewrite"),
        (3, 0, NOT_ATOMIC),
        (3, 1, "pg-index-not-concurrent"),
    ]
    assert hazards[0].detail == "advice for pg-type-change-rewrite"


def test_plan_markdown_fences_hold_any_statement() -> None:
    tricky = "INSERT INTO notes (body) VALUES ('\n```\n| not a row |\n')"
    plan = Plan(None, 2, "up", [step(2, [tricky])], "sqlite")
    review = PlanReview(
        LintReport("sqlite", [LintedUnit(2, "v2.py", 1)], []),
        [],
        [RollbackStep(2, "v2 change", ["DELETE FROM notes"], None, True)],
    )
    lines = plan_markdown(ApplyResult(None, None, 2, True, plan), review)
    text = "\n".join(lines)
    fences = [line for line in lines if re.fullmatch(r"`{3,}(sql)?", line)]
    assert fences[0] == "````sql" and fences[1] == "````"  # longer than the statement's own ```
    assert "| not a row |" in text.split("````sql")[1].split("````")[0]
    assert "No findings." in lines and "**Passed**: 1 migration(s) on sqlite: 0 error(s), 0 warning(s), 0 acknowledged" in lines
    assert "Database at none recorded, target v2: 1 migration(s) to apply." in lines


def test_validate_markdown_escapes_cells() -> None:
    lines = validate_markdown(ValidationResult(3, 4, False, ["Column a|b differs\nsecond line"], []))
    assert lines[4] == "| v3 | v4 | :x: invalid | 1 | 0 |"
    assert lines[-1] == "| :x: | error | Column a\\|b differs second line |"
