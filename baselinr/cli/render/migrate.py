"""Text of the ``baselinr migrate`` commands, from the manager's result objects.

The text lines are the user's guide's, emoji included; where the output
stream cannot encode emoji (a legacy console, ``PYTHONIOENCODING=ascii``)
the same lines carry ``[OK]`` / ``[WARNING]`` … markers instead. JSON is
each result's ``to_dict()``. Called by ``baselinr.cli.app`` and, for the
lock retry line, ``baselinr.cli.job``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from baselinr.cli.render import markers
from baselinr.storage.migrations.results import (
    ApplyResult,
    LockRetry,
    PlannedStep,
    RetriedMigration,
    StatusResult,
)

if TYPE_CHECKING:
    from baselinr.lint import LintReport
    from baselinr.storage.migrations.run_results import BackfillProgress
    from baselinr.storage.migrations.scaffold import NewMigration
    from baselinr.storage.migrations.upkeep_results import BaselineResult, RepairResult, ValidationResult

RULE = "=" * 60


def status_text(r: StatusResult) -> list[str]:
    m = markers()
    lines = [
        RULE,
        "SCHEMA VERSION STATUS",
        RULE,
        f"Current database version: {r.database_version if r.database_version is not None else 'not initialized'}",
        f"Current code version: {r.code_version}",
        "",
    ]
    for row in r.problems:
        how = "was interrupted" if row.status == "running" else "failed"
        how += " while being rolled back" if row.direction == "down" else ""
        progress = f" after {row.statements_done or 0} of {row.statements_total} statements" if row.statements_total else ""
        error = f": {row.error_message}" if row.error_message else ""
        lines.append(f"{m['error']} Migration v{row.version} {how}{progress}{error}")
        lines.append(f"Run: {row.resume_command}   (or undo it by hand, then: baselinr migrate repair)")
    if r.state == "not_initialized":
        lines += [f"{m['warn']} Schema version not initialized", f"Run: baselinr migrate apply --target {r.code_version}"]
    elif r.state == "behind" or (r.state == "failed" and (r.database_version or 0) < r.code_version):
        lines += [
            f"{m['warn']} Database schema is behind (v{r.database_version or 0} < v{r.code_version})",
            f"Run: baselinr migrate apply --target {r.code_version}",
        ]
    elif r.state == "ahead":
        lines += [
            f"{m['error']} Database schema is ahead (v{r.database_version} > v{r.code_version})",
            f"Use the Baselinr package or image (or --migrations package) that has v{r.database_version}: keep running "
            f"that one, or run 'baselinr migrate rollback --target {r.code_version}' there to come back to this code",
        ]
    elif r.state == "up_to_date":
        lines.append(f"{m['ok']} Schema version is up to date")
    if r.retried:
        lines += ["", *(retried_line(x) for x in r.retried)]
    if r.database:
        # Last, so that the block the guide shows stays as it shows it.
        lines.append(database_line(r.database))
    return lines


def profiler_learning_note(dialect: str, learning: bool) -> list[str]:
    """The released profiler's defect that this database's config switches on (issue: SQLite
    storage with expectation learning), and the workaround; nothing otherwise."""
    if dialect != "sqlite" or not learning:
        return []
    return [
        f"{markers()['warn']} Baselinr's profiler (0.9.0) cannot learn expectations on SQLite storage: with "
        "storage.enable_expectation_learning on, once baselinr_expectations exists each learned expectation "
        "waits SQLite's 5 s busy timeout and fails (it is written on a second connection while the profiler's "
        "own write transaction is open), so 'baselinr profile' runs for minutes and learns nothing",
        "Set storage.enable_expectation_learning: false while Baselinr's storage is on SQLite, or move the "
        "storage to MySQL/MariaDB, where 0.9.0 learns them (baselinr backup create, then restore there; on "
        "PostgreSQL it does not wait but learns none either: its learner's own query fails there)",
    ]


def retried_line(r: RetriedMigration) -> str:
    """A migration whose run waited out lock timeouts of the DDL lock guard, and who blocked it."""
    n = len(r.retries)
    how = {"applied": "applied after", "failed": "failed after", "running": "interrupted after"}.get(r.status, "after")
    what = f"{n} lock {'retry' if n == 1 else 'retries'}" if r.status == "applied" else f"{n} lock timeout{'s' if n > 1 else ''}"
    return f"   v{r.version} {how} {what} (blocked by {r.held_by})"


def unadopted_text(r: StatusResult) -> list[str]:
    """What Baselinr's profiler left, what repair would do about it, or what stops it."""
    m = markers()
    if r.stamped:
        head = f"Stamped at v{r.database_version} by Baselinr's profiler without running the migrations"
    elif r.database_version is None:
        head = "Baselinr's tables exist but no version is recorded (left by Baselinr's profiler)"
    else:
        head = "Tables of later versions exist already, made outside the migrations (e.g. by Baselinr's profiler)"
    lines = [f"{m['warn']} {head}"]
    lines += [f"   missing: {what}" for what in r.missing]
    lines += [f"   present: {what} (recorded as it is)" for what in r.found]
    if not r.missing and not r.found:
        lines.append("   nothing is missing")
    if r.blocking:
        lines += [f"   differs: {what}" for what in r.blocking]
        lines.append(
            "Fix these differences by hand (repair never changes a column's type or a key), "
            "then run: baselinr migrate repair   (then: baselinr migrate apply)"
        )
    else:
        lines.append("Run: baselinr migrate repair   (then: baselinr migrate apply)")
    return lines


def step_sql(step: PlannedStep) -> list[str]:
    m = markers()
    if step.transactional:
        head = "    -- in one transaction, with its version row"
    else:
        head = f"    -- {m['warn']}not atomic: each statement commits on its own; progress is recorded"
    body = [head]
    if step.resume_from:
        body.append(f"    -- resuming at statement {step.resume_from + 1}")
    for i, stmt in enumerate(step.statements):
        if i < step.resume_from:
            continue
        body += ["    " + line for line in (stmt + ";").splitlines()]
    if step.python:
        body.append(f"    -- then Python: {step.python}(conn)")
    return body


def apply_text(r: ApplyResult, verbose_sql: bool = True, database: str | None = None) -> list[str]:
    m = markers()
    lines: list[str] = []
    if r.dry_run:
        lines += [f"{m['dry']} DRY RUN MODE - No changes will be applied", ""]
        if not r.plan.steps:
            at = "0 (no version recorded)" if r.from_version is None else r.from_version
            lines.append(f"[DRY RUN] Nothing to do: the database is at version {at}")
        for step in r.plan.steps:
            verb = "apply" if step.direction == "up" else "roll back"
            lines.append(f"[DRY RUN] Would {verb} v{step.version}: {step.description}")
            if verbose_sql:
                lines += step_sql(step)
        if database:
            lines.append(database_line(database))
        return lines
    return lines


def database_line(database: str) -> str:
    """The database a command acts on (SQLite: its absolute path), so a mistyped config shows."""
    return f"Database: {database}"


def retry_line(r: LockRetry) -> str:
    """One lock timeout of a migration's DDL and the retry it leads to."""
    where = f" at statement {r.statement}" if r.statement else ""
    return (
        f"   {markers()['warn']} v{r.version}{where}: waiting for a lock held by {r.held_by}, "
        f"retry {r.attempt + 1}{'' if r.tries is None else f'/{r.tries}'} in {r.delay_seconds:.1f} s"
    )


def progress_line(p: BackfillProgress) -> str:
    """One committed batch of a migration's backfill: rows done of the total, and the rate."""
    share = f" ({100 * p.rows_done / p.rows_total:.0f}%)" if p.rows_total else ""
    resumed = f", resumed after {p.resumed_at:,}" if p.resumed_at else ""
    return (
        f"   v{p.version} backfill {p.table}: {p.rows_done:,} of {p.rows_total:,} rows{share}, "
        f"{p.batches} batches, {p.rows_per_second:,.0f} rows/s{resumed}"
    )


def validate_text(r: ValidationResult) -> list[str]:
    m = markers()
    lines = [
        "Validating schema integrity...",
        "",
        f"Schema Version: {r.version}",
        f"Valid: {m['ok']} Yes" if r.valid else f"Valid: {m['error']} No",
    ]
    if r.errors:
        lines += ["", "Errors:"] + [f"  {m['error']} {e}" for e in r.errors]
    if r.warnings:
        lines += ["", "Warnings:"] + [f"  {m['warn']} {w}" for w in r.warnings]
    return lines


def shown(version: int | None) -> str:
    """A database version for a message: a fresh database is at 0, not "None"."""
    return "0 (no version recorded)" if version is None else str(version)


def step_line(step: PlannedStep) -> str:
    """The line printed as a migration starts (text output of a real run)."""
    verb = "Applying" if step.direction == "up" else "Rolling back"
    return f"{verb} migration v{step.version}: {step.description}"


def applied_text(r: ApplyResult) -> list[str]:
    """After a real ``apply`` (the per-step lines were printed as they ran)."""
    m = markers()
    lines = [f"   v{s.version} was applied meanwhile by another runner" for s in r.steps if s.skipped]
    if r.applied_meanwhile:
        versions = ", ".join(f"v{v}" for v in r.applied_meanwhile)
        were = "was" if len(r.applied_meanwhile) == 1 else "were"
        lines.append(f"   {versions} {were} applied by another runner while this one waited")
    if not r.steps:
        lines.append(f"{m['ok']} Already at version {shown(r.to_version)}; nothing to apply")
    else:
        lines.append(f"{m['ok']} Successfully migrated to version {r.to_version}")
    return lines


def rolled_back_text(r: ApplyResult) -> list[str]:
    """After a real ``rollback``."""
    if not r.steps:
        return [f"{markers()['ok']} Already at version {shown(r.to_version)}; nothing to roll back"]
    return [f"{markers()['ok']} Successfully rolled back to version {r.to_version}"]


def dry_run_lint_text(report: LintReport) -> list[str]:
    """The lint findings of the migrations a dry run would apply, after its plan."""
    from baselinr.cli.render.lint import lint_text

    if not report.units:
        return []
    lines = ["", "Lint of the planned migrations:", *lint_text(report)]
    if not report.ok:
        # Decided: a dry run shows the plan and exits 0 (CI posts it either way); the gate is lint's exit code.
        lines.append(
            "This dry run exits 0; 'baselinr migrate lint' (same --config) exits 1 on these errors "
            "until they are fixed or acknowledged."
        )
    return lines


def repair_text(r: RepairResult) -> list[str]:
    m = markers()
    if not r.removed and not r.adopted and not r.realigned:
        return [
            f"{m['ok']} Nothing to repair: no failed or interrupted migration is recorded, "
            "and every recorded checksum matches its migration file"
        ]
    lines = []
    verb = "Would clear" if r.dry_run else "Cleared"
    for row in r.removed:
        lines.append(f"{verb} the {row.status} record of v{row.version}: {row.description}")
    for fix in r.realigned:
        lines.append(
            f"{'Would realign' if r.dry_run else 'Realigned'} the recorded checksum of v{fix.version} ({fix.script}) "
            f"with its file: {fix.recorded[:12]}... -> {fix.file[:12]}..."
            + ("" if r.dry_run else " (the old value is noted in the row's description)")
        )
    for step in r.adopted:
        what = ", ".join(step.created) if step.created else "nothing to create"
        if step.found:
            what += f" (kept as found: {', '.join(step.found)})"
        lines.append(f"{'Would adopt' if r.dry_run else 'Adopted'} v{step.version}: {what}")
        if r.dry_run:
            lines += ["    " + stmt.replace("\n", "\n    ") + ";" for stmt in step.statements]
    if r.dry_run:
        lines.append("[DRY RUN] Nothing was changed")
    elif r.adopted:
        top = r.adopted[-1].version
        lines.append(f"{m['ok']} Adopted: versions 1..{top} are recorded; run 'baselinr migrate apply' to continue")
    elif not r.removed:
        lines.append(f"{m['ok']} Repaired; run 'baselinr migrate validate' to check the database")
    else:
        lines.append(f"{m['ok']} Repaired; run 'baselinr migrate apply' to apply them again")
    return lines


def baseline_text(r: BaselineResult) -> list[str]:
    m = markers()
    lines = [f"{m['warn']} {difference}" for difference in r.differences]
    if r.dry_run:
        lines.append(f"[DRY RUN] Would record versions 1..{r.version} as applied")
    else:
        lines.append(f"{m['ok']} Baselined at version {r.version}" + (" (forced)" if r.differences else ""))
    return lines


def new_text(created: NewMigration) -> list[str]:
    path = os.path.relpath(created.path)
    lines = [f"{markers()['ok']} Created v{created.version}: {path}"]
    lines.append(f"   registered in {os.path.relpath(created.registered_in)}")
    if created.version_file:
        lines.append(f"   CURRENT_SCHEMA_VERSION = {created.version} in {os.path.relpath(created.version_file)}")
    lines.append("Next: write its up_sql, then: baselinr migrate apply --dry-run")
    lines.append(f"   lint it once it is edited: {lint_command(path)}")
    return lines


def lint_command(path: str) -> str:
    """The command that lints a migration file (quoted when the path needs it in a shell)."""
    import shlex

    return f"baselinr migrate lint {shlex.quote(path)}"
