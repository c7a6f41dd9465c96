"""Markdown documents a CI job posts as a pull-request comment: a dry run's plan, a validation.

Called by ``baselinr.cli.app`` for ``migrate apply --dry-run --output
markdown`` (the ``ApplyResult`` and its ``PlanReview``) and ``migrate
validate --output markdown`` (the ``ValidationResult``). Every fact is a
table row, one row per version, finding, hazard or problem, so a reader (or
a script) can scan it; the SQL itself goes into collapsed code blocks. The
findings table is ``migrate lint``'s own (``render.lint.findings_table``).
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from baselinr.cli.render.lint import cell, code, findings_table, first_line, summary

if TYPE_CHECKING:
    from baselinr.lint.review import PlanReview
    from baselinr.storage.migrations.results import ApplyResult, PlannedStep, ValidationResult


def _version(v: int | None) -> str:
    return "none recorded" if v is None else f"v{v}"


def _fence(statements: list[str], python: str | None, lang: str = "sql") -> list[str]:
    """Statements in a fenced block long enough that no statement can close it."""
    body = [f"{s};" for s in statements]
    if python:
        body.append(f"-- then Python: {python}(conn)")
    longest = max((len(run) for text in body for run in text.split("\n") if set(run) == {"`"}), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}{lang}", *body, fence]


def _transaction(step: PlannedStep) -> str:
    return "one transaction, with its version row" if step.transactional else ":warning: not atomic"


def plan_markdown(result: ApplyResult, review: PlanReview) -> list[str]:
    """``apply --dry-run``: versions, statements, lint findings, lock hazards, rollback."""
    plan = result.plan
    lines = [f"### baselinr migrate apply --dry-run ({plan.dialect})", ""]
    lines.append(
        f"Database at {_version(plan.current_version)}, target v{result.target_version}: "
        + (f"{len(plan.steps)} migration(s) to apply." if plan.steps else "nothing to apply.")
    )
    if not plan.steps:
        return lines
    lines += ["", "#### Versions", "", "| Version | Description | Statements | Python | Transaction |", "|---|---|---|---|---|"]
    for step in plan.steps:
        python = code(step.python) if step.python else "-"
        count = len(step.statements) - step.resume_from
        lines.append(f"| v{step.version} | {cell(step.description)} | {count} | {python} | {_transaction(step)} |")
    lines += ["", "#### Statements", ""]
    for step in plan.steps:
        resumed = f" (resuming at statement {step.resume_from + 1})" if step.resume_from else ""
        lines += [f"<details><summary>v{step.version}: {html.escape(step.description)}{resumed}</summary>", ""]
        lines += [*_fence(step.statements[step.resume_from :], step.python), "", "</details>", ""]
    lines += ["#### Lint findings", ""]
    lint = review.lint
    lines += findings_table(lint.findings) if lint.findings else ["No findings."]
    lines += ["", f"**{'Passed' if lint.ok else 'Failed'}**: {summary(lint)}", "", "#### Lock hazards", ""]
    if review.hazards:
        lines += ["| Migration | Statement | Hazard | Detail |", "|---|---|---|---|"]
        for h in review.hazards:
            stmt = str(h.statement_index) if h.statement_index else "-"
            lines.append(f"| v{h.version} | {stmt} | `{h.kind}` | {cell(h.detail)} |")
    else:
        lines.append("None: every migration runs in one transaction and no statement holds a blocking lock.")
    lines += ["", "#### Rollback", "", "| Version | Description | Statements | Rollback |", "|---|---|---|---|"]
    for r in review.rollback:
        what = f"{len(r.statements)} statement(s)" + (f" and {code(r.python)}" if r.python else "")
        if not r.reversible:
            what = "-"
        verdict = "possible" if r.reversible else ":x: no down migration"
        lines.append(f"| v{r.version} | {cell(r.description)} | {what} | {verdict} |")
    for r in review.rollback:
        if r.reversible and (r.statements or r.python):
            lines += ["", f"<details><summary>rollback of v{r.version}</summary>", "", *_fence(r.statements, r.python)]
            lines += ["", "</details>"]
    return lines


def validate_markdown(result: ValidationResult) -> list[str]:
    """``validate``: the version, the verdict, and one row per error or warning."""
    verdict = ":white_check_mark: valid" if result.valid else ":x: invalid"
    lines = [
        "### baselinr migrate validate",
        "",
        "| Schema version | Code version | Result | Errors | Warnings |",
        "|---|---|---|---|---|",
        f"| {_version(result.version)} | v{result.code_version} | {verdict} | {len(result.errors)} | {len(result.warnings)} |",
        "",
    ]
    problems = [(":x:", "error", e) for e in result.errors] + [(":warning:", "warning", w) for w in result.warnings]
    if not problems:
        return [*lines, "No problems found."]
    lines += ["| | Severity | Problem |", "|---|---|---|"]
    lines += [f"| {icon} | {severity} | {cell(first_line(text, 300))} |" for icon, severity, text in problems]
    return lines
