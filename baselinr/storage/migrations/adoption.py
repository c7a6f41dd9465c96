"""Adoption: the ``repair`` and ``baseline`` verbs, and what ``status`` says about adoption.

Called by the ``MigrationManager`` facade. ``repair`` forgets failed or
interrupted rows and adopts what Baselinr's profiler made without the
migrations (versions it stamped, tables it created): it creates what their
migrations would have created (additive DDL only, planned by ``adopt.py``)
and records them as applied. ``baseline`` records versions as applied on a
database whose schema already matches. Every refusal is decided before any
change.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from baselinr.errors import BaselinrError, MigrationFailed, UsageError, ValidationFailed
from baselinr.storage.connection import run_statement
from baselinr.storage.dialects import runner_id
from baselinr.storage.migrations import adopt, failures, history
from baselinr.storage.migrations.chain import Chain
from baselinr.storage.migrations.migration import CHECKSUM_ALGORITHM
from baselinr.storage.migrations.planner import fmt
from baselinr.storage.migrations.results import HistoryRow
from baselinr.storage.version_table import FAILED, RUNNING, VERSION_TABLE_NAME

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy.engine import Connection

    from baselinr.storage.database import Database
    from baselinr.storage.migrations.drift import Difference
    from baselinr.storage.migrations.upkeep_results import BaselineResult, RepairResult


def may_hold_preexisting(db: Database, chain: Callable[[], Chain], rows: list[HistoryRow], state: str) -> bool:
    """Whether tables of unrecorded versions may exist. Looked up with the bare driver
    where it can, so that ``status`` of a database that is merely behind stays free of
    SQLAlchemy. ``chain`` is called only then: for an up-to-date database the
    migrations are never imported."""
    from baselinr.storage.database import NO_QUICK_PATH

    if state not in ("not_initialized", "behind"):
        return False
    tables = db.bare_table_names()
    if tables is NO_QUICK_PATH:
        return True
    if tables is None:
        return state != "not_initialized"  # a SQLite file that does not exist holds nothing
    return bool(adopt.preexisting(rows, chain(), tables, db.names))


def adoption(db: Database, chain: Chain, rows: list[HistoryRow]) -> tuple[list[Any], list[Difference]] | None:
    """What ``repair`` would adopt (``None``: nothing) and the differences that would stop it."""
    with db.connect() as conn:
        versions = versions_to_adopt(db, chain, conn, rows)
        if not versions:
            return None
        planned = adopt.plan(conn, chain, versions, db.dialect, db.names)
        found = blocking(db, chain, conn, versions[-1])
        if conn.in_transaction():
            conn.rollback()
    return planned, found


def versions_to_adopt(db: Database, chain: Chain, conn: Connection, rows: list[HistoryRow]) -> list[int]:
    existing = adopt.preexisting(rows, chain, adopt.live_tables(conn), db.names)
    versions = adopt.versions_to_adopt(rows, existing)
    if versions and versions[-1] > chain.latest:
        raise UsageError(
            f"The database is stamped at v{versions[-1]}, above the latest version this code has (v{chain.latest}).",
            hint="Upgrade Baselinr's schema toolkit.",
        )
    return versions


def blocking(db: Database, chain: Chain, conn: Connection, version: int) -> list[Difference]:
    """Differences from ``version``'s model that repair can neither create nor rebuild."""
    from baselinr.storage.migrations.drift import compare

    model, exact = chain.model_at(version, db.dialect.name)
    return adopt.blocking(compare(conn, model, exact, db.dialect, db.names))


def refuse_blocking(found: list[Difference], version: int) -> None:
    if found:
        raise ValidationFailed(
            f"Cannot adopt the database at v{version}: {'; '.join(map(str, found))}.",
            hint="Nothing was changed. These are not missing objects that repair could create: fix them by hand, "
            "then run 'baselinr migrate repair' again (or 'baselinr migrate baseline --version N --force').",
        )


def repair(db: Database, chain: Chain, *, dry_run: bool = False) -> RepairResult:
    """Forget failed or interrupted rows, once the schema was fixed by hand, and adopt
    what Baselinr's profiler made without the migrations."""
    from baselinr.storage.migrations.upkeep_results import RepairResult  # status imports this module too

    rows = db.read_history() or []
    bad = [r for r in rows if r.status in (RUNNING, FAILED)]
    stamped = adopt.unverified(rows)
    found = adoption(db, chain, rows)
    if found is not None:
        refuse_blocking(found[1], found[0][-1].version)
    planned = found[0] if found is not None else []
    realigned = checksums_to_realign(db, chain, rows)
    if dry_run:
        return RepairResult(True, bad, planned, stamped, realigned)
    if not bad and not planned and not realigned:
        return RepairResult(False, bad)
    with db.locked():
        if bad or realigned:
            with db.connect() as conn:
                with conn.execution_options(baselinr_write=True).begin():
                    for r in bad:
                        history.delete(conn, r.version)
                    # Re-read under the lock: only what still differs is realigned.
                    realigned = checksums_to_realign(db, chain, history.read_history(conn) or [])
                    for fix in realigned:
                        _realign(conn, fix, rows)
        planned = _adopt(db, chain)
    return RepairResult(False, bad, planned, stamped, realigned)


def checksums_to_realign(db: Database, chain: Chain, rows: list[HistoryRow]) -> list[Any]:
    """Applied versions whose recorded checksum is not their file's (Flyway's repair realigns
    them too): the record was changed by hand or by another tool, or the file was edited after
    it was applied, which ``validate`` reports and only the user can tell apart."""
    from baselinr.storage.migrations.upkeep_results import RealignedChecksum

    stamped = {r.version for r in adopt.unverified(rows)}
    found = []
    for row in rows:
        if row.status != "applied" or row.checksum is None or row.version in stamped or row.version not in chain.migrations:
            continue
        m = chain.get(row.version)
        file = m.checksum(db.dialect, db.names)
        if row.checksum != file:
            found.append(RealignedChecksum(row.version, m.script or m.description, row.checksum, file))
    return found


def _realign(conn: Connection, fix: Any, rows: list[HistoryRow]) -> None:
    """Record the file's checksum, with a note in the row's description of what it replaced."""
    from baselinr.storage.migrations.history import now

    before = next((r.description for r in rows if r.version == fix.version), None) or ""
    note = f" [checksum realigned by repair {now():%Y-%m-%d %H:%M:%S} UTC by {runner_id()}: was {fix.recorded[:64]}]"
    history.realign_checksum(
        conn, fix.version, checksum=fix.file, algorithm=CHECKSUM_ALGORITHM, description=before[: 500 - len(note)] + note
    )


def _adopt(db: Database, chain: Chain) -> list[Any]:
    """Under the lock: re-check, widen the version table, create what is missing, record each version."""
    dialect = db.dialect
    transactional = dialect.transactional_ddl
    at = 0
    with db.connect() as conn:
        if transactional:
            conn = conn.execution_options(baselinr_write=True)
            conn.begin()
        else:
            conn.execution_options(isolation_level="AUTOCOMMIT")
        try:
            rows = history.read_history(conn) or []
            stamped = adopt.unverified(rows)
            versions = versions_to_adopt(db, chain, conn, rows)
            if versions:
                # Before the first DDL: on a refusal nothing may have changed.
                refuse_blocking(blocking(db, chain, conn, versions[-1]), versions[-1])
            planned = adopt.plan(conn, chain, versions, dialect, db.names)
            history.ensure_table(conn, dialect)
            for step in planned:
                at = step.version
                started = time.monotonic()
                for stmt in step.statements:
                    run_statement(conn, stmt)
                m = chain.get(step.version)
                what = f"created {', '.join(step.created)}" if step.created else "already present"
                replaced = [r for r in stamped if r.version == step.version]
                history.record(
                    conn,
                    version=step.version,
                    status="applied",
                    description=f"{m.description} [adopted: {what}"
                    + (f"; Baselinr's profiler {adopt.note(replaced)}" if replaced else "")
                    + "]",
                    script=m.script,
                    checksum=m.checksum(dialect, db.names),
                    algorithm=CHECKSUM_ALGORITHM,
                    applied_by=f"{adopt.ADOPTED_BY} {runner_id()}",
                    execution_time_ms=int((time.monotonic() - started) * 1000),
                    statements_done=len(step.statements),
                    statements_total=len(step.statements),
                )
            if transactional:
                conn.commit()
        except BaselinrError:
            raise
        except Exception as exc:
            raise MigrationFailed(
                f"Adopting the database failed at v{at}: {failures.detail(exc, db.settings)}",
                version=at,
                hint="Nothing was recorded for the version that failed"
                + ("; its transaction was rolled back." if transactional else "; run 'baselinr migrate repair' again."),
            ) from exc
        finally:
            if transactional and conn.in_transaction():
                conn.rollback()
    return planned


def baseline(db: Database, chain: Chain, version: int, *, force: bool = False, dry_run: bool = False) -> BaselineResult:
    """Record versions 1..``version`` as applied on a database whose schema already matches it."""
    from baselinr.storage.migrations.upkeep_results import BaselineResult

    if not 1 <= version <= chain.latest:
        raise UsageError(f"Baseline version must be between 1 and {chain.latest}, got {version}")
    rows = db.read_history() or []
    _refuse_managed(rows)
    differences = _differences(db, chain, version)
    if differences and not force:
        raise ValidationFailed(
            f"The schema does not match v{version}: {'; '.join(differences)}.",
            hint="Run 'baselinr migrate repair' to create what is missing, or pass --force to record it anyway.",
        )
    stamped = adopt.unverified(rows)
    recorded = list(range(1, version + 1))
    if dry_run:
        return BaselineResult(version, True, recorded, differences, force, stamped)
    with db.locked(), db.connect() as conn, conn.execution_options(baselinr_write=True).begin():
        try:
            history.ensure_table(conn, db.dialect)
        except Exception as exc:
            raise failures.bookkeeping_failed(exc, db.settings) from exc
        rows = history.read_history(conn) or []
        _refuse_managed(rows)
        for r in rows:
            history.delete(conn, r.version)
        for v in recorded:
            m = chain.get(v)
            extra = " (forced)" if differences else ""
            if v == version and stamped:
                extra += f"; Baselinr's profiler {adopt.note(stamped)}"
            history.record(
                conn,
                version=v,
                status="applied",
                description=f"{m.description} [baseline{extra}]",
                script=m.script,
                checksum=m.checksum(db.dialect, db.names),
                algorithm=CHECKSUM_ALGORITHM,
                applied_by=f"{adopt.BASELINED_BY} {runner_id()}",
                replace=False,
            )
    return BaselineResult(version, False, recorded, differences, force, stamped)


def _refuse_managed(rows: list[HistoryRow]) -> None:
    managed = sorted(adopt.verified_versions(rows) | {r.version for r in history.unfinished(rows)})
    if managed:
        raise UsageError(
            f"The database already records migrations {fmt(managed)} run by this tool.",
            hint="Baseline is for databases it has never migrated; use 'baselinr migrate apply' or 'rollback'.",
        )


def _differences(db: Database, chain: Chain, version: int) -> list[str]:
    from baselinr.storage.migrations.drift import compare

    model, exact = chain.model_at(version, db.dialect.name)
    with db.connect() as conn:
        differences = compare(conn, model, exact, db.dialect, db.names)
        if conn.in_transaction():
            conn.rollback()
    return [
        str(d)
        for d in differences
        if d.severity == "error" and not adopt.is_version_table_column(d) and d.table.lower() != VERSION_TABLE_NAME
    ]
