"""Validation: the ``validate`` verb.

Called by the ``MigrationManager`` facade. Checks the chain, the recorded
history (unfinished rows, gaps, stamped versions), every applied
migration's checksum and the live schema against the model of the current
version (``drift.compare``, which reflects all tables in batches).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from baselinr.storage.migrations import adopt, history
from baselinr.storage.migrations.adoption import versions_to_adopt
from baselinr.storage.migrations.chain import DEFAULT_PACKAGE, Chain
from baselinr.storage.migrations.planner import fmt
from baselinr.storage.migrations.results import HistoryRow
from baselinr.storage.migrations.upkeep_results import ValidationResult
from baselinr.storage.version_table import RUNNING

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from baselinr.storage.database import Database


def validate(db: Database, chain: Chain) -> ValidationResult:
    """Check the recorded history, checksums and the live schema against ``chain``."""
    from baselinr.storage import schema_version

    warnings: list[str] = []
    code = chain.code_version
    if chain.package == DEFAULT_PACKAGE:
        missing_history = [v for v in chain.migrations if v not in schema_version.VERSION_HISTORY]
        if missing_history:
            warnings.append(f"VERSION_HISTORY has no entry for {fmt(missing_history)}")
    with db.connect() as conn:
        rows = history.read_history(conn)
        if not rows and versions_to_adopt(db, chain, conn, []):
            return ValidationResult(
                None,
                code,
                False,
                [
                    "Baselinr's tables exist but no version is recorded (left by Baselinr's profiler): run "
                    "'baselinr migrate repair' to adopt them, then 'baselinr migrate apply'"
                ],
                warnings,
            )
        if rows is None:
            return ValidationResult(None, code, False, ["Schema version not initialized: run 'baselinr migrate apply'"], warnings)
        result = _validate_rows(db, chain, conn, rows, warnings)
        if conn.in_transaction():
            conn.rollback()
    return result


def _validate_rows(
    db: Database, chain: Chain, conn: Connection, rows: list[HistoryRow], warnings: list[str]
) -> ValidationResult:
    errors: list[str] = []
    code = chain.code_version
    applied = history.applied_versions(rows)
    current = max(applied, default=None)
    for row in history.unfinished(rows):
        how = "was interrupted" if row.status == RUNNING else "failed"
        how += " while being rolled back" if row.direction == "down" else ""
        errors.append(
            f"Migration v{row.version} {how}"
            + (f" after {row.statements_done or 0} of {row.statements_total} statements" if row.statements_total else "")
            + (f": {row.error_message}" if row.error_message else "")
            + f" (run '{row.resume_command}', or fix by hand and run 'baselinr migrate repair')"
        )
    if current is None:
        errors.append("No applied version recorded: run 'baselinr migrate apply'")
        return ValidationResult(None, code, False, errors, warnings)
    if current > code:
        errors.append(f"Database schema is ahead (v{current} > v{code}): update Baselinr to match")
    elif current < code:
        warnings.append(f"Database schema is behind (v{current} < v{code}): run 'baselinr migrate apply --target {code}'")
    stamped = adopt.unverified(rows)
    gaps = [v for v in range(1, current + 1) if v not in applied]
    if stamped:
        errors.append(
            f"Versions {fmt(versions_to_adopt(db, chain, conn, rows))} are not verified: Baselinr's profiler "
            f"{adopt.note(stamped)} without running the migrations. Run 'baselinr migrate repair' to create "
            "what is missing and record them (or 'baselinr migrate baseline --version N' if the schema is complete)"
        )
    elif gaps:
        errors.append(f"Versions {fmt(gaps)} are not recorded as applied below v{current}")
    stamped_versions = {r.version for r in stamped}
    for row in rows:
        if row.status != "applied" or row.version not in chain.migrations or row.version in stamped_versions:
            continue
        m = chain.get(row.version)
        if row.checksum is None:
            warnings.append(f"v{row.version} has no recorded checksum (recorded by another tool)")
        elif row.checksum != m.checksum(db.dialect, db.names):
            errors.append(
                f"v{row.version} ({m.script or m.description}) was modified after it was applied, or its recorded "
                "checksum was changed: the two differ. If the file was edited, revert the edit and add a new migration instead; "
                "if the file is right (the record was changed by hand or by another tool), run "
                "'baselinr migrate repair' to record the file's checksum ('--dry-run' shows it first)."
            )
    from baselinr.storage.migrations.drift import compare, split

    model, exact = chain.model_at(min(current, code), db.dialect.name)
    differences = compare(conn, model, exact, db.dialect, db.names)
    if stamped:
        # The profiler's narrower version table is widened by repair before anything is written.
        differences = [d for d in differences if not adopt.is_version_table_column(d)]
    live_errors, live_warnings = split(differences)
    errors += live_errors
    warnings += live_warnings
    return ValidationResult(current, code, not errors, errors, warnings)
