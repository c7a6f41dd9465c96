"""The pure planner: status and plans computed from history rows and the chain.

No connection and no I/O: everything here takes the recorded history (the
rows of ``baselinr_schema_version``), the migration chain and the dialect
(which only renders statements) and returns a state, a ``Plan`` or a refusal
(a ``BaselinrError``). The facade and the runner call it before taking the
lock and again, on the history re-read under the lock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from baselinr.errors import MigrationFailed, UsageError
from baselinr.storage.dialects import Dialect
from baselinr.storage.migrations import adopt, history
from baselinr.storage.migrations.chain import Chain, ChainError
from baselinr.storage.migrations.migration import Migration
from baselinr.storage.migrations.results import HistoryRow, Plan, PlannedStep
from baselinr.storage.model import Names
from baselinr.storage.version_table import RUNNING


@dataclass(frozen=True)
class State:
    """Where the database stands against the code, as ``status`` reports it."""

    current: int | None
    state: str  # not_initialized, failed, ahead, behind, up_to_date
    pending: list[int]
    problems: list[HistoryRow]


def state_of(rows: list[HistoryRow], code: int) -> State:
    """The state of a database whose history is ``rows``, for code at version ``code``."""
    applied = history.applied_versions(rows)
    current = max(applied, default=None)
    problems = history.unfinished(rows)
    if current is None and not problems:
        state = "not_initialized"
    elif problems:
        state = "failed"
    elif current is not None and current > code:
        state = "ahead"
    elif current is not None and current < code:
        state = "behind"
    else:
        state = "up_to_date"
    pending = [v for v in range(1, code + 1) if v not in applied]
    return State(current, state, pending, problems)


def step_of(m: Migration, direction: str, dialect: Dialect, names: Names) -> PlannedStep:
    """``m`` going ``direction`` on ``dialect``: its statements and whether it runs in a transaction."""
    d = dialect
    transactional = d.transactional_ddl if m.transactional is None else (m.transactional and d.transactional_ddl)
    if direction == "up":
        stmts = m.up_statements(d, names)
        fn = m.up_python
    else:
        stmts = m.down_statements(d, names)
        fn = m.down_python
    if m.transactional is None and any(d.needs_autocommit(s) for s in stmts):
        # e.g. CREATE INDEX CONCURRENTLY cannot run inside a transaction.
        transactional = False
    python = getattr(fn, "__qualname__", None) if fn else None
    return PlannedStep(m.version, m.description, direction, stmts, python, transactional)


def plan(
    chain: Chain, rows: list[HistoryRow], target: int | None, dialect: Dialect, names: Names, *, resume: bool = False
) -> Plan:
    """What ``apply`` (or ``rollback``) to ``target`` (default: the code's version) would run."""
    target = chain.code_version if target is None else target
    if target < 0:
        raise UsageError(f"Target version must be 0 or more, got {target}")
    applied = history.applied_versions(rows)
    current = max(applied, default=None)
    base = current or 0
    refuse_ahead(chain, rows)
    if target > chain.latest:
        # Named one by one only when few: a typo like 10**20 must not build a set of them.
        if target - chain.latest <= 10:
            missing = "{" + ", ".join(str(v) for v in range(chain.latest + 1, target + 1)) + "}"
        else:
            missing = f"{{{chain.latest + 1}..{target}}}"
        raise ChainError(
            f"Missing migrations for versions: {missing}",
            hint=f"Target v{target} is above the latest version this code has (v{chain.latest}); "
            "upgrade Baselinr or lower --target.",
        )
    unfinished = {r.version: r for r in history.unfinished(rows)}
    # A rollback that was interrupted still has its version to take down.
    top = max([base, *(v for v, r in unfinished.items() if r.direction == "down")])
    if target < top:
        downs = []
        for m in (chain.get(v) for v in range(top, target, -1) if v in chain.migrations):
            step = step_of(m, "down", dialect, names)
            row = unfinished.get(m.version)
            if row is not None and row.direction == "down" and resume and not step.transactional:
                step = PlannedStep(**{**step.to_dict(), "resume_from": row.statements_done or 0})
            downs.append(step)
        return Plan(current, target, "down", downs, dialect.name)
    gaps = [v for v in range(1, base + 1) if v not in applied and v in chain.migrations]
    steps = []
    for m in chain.between(0, target):
        if m.version in applied:
            continue
        step = step_of(m, "up", dialect, names)
        # Model operations may render nothing on a dialect (v11 on Snowflake): the version is still recorded.
        if not step.statements and step.python is None and not m.operations:
            raise UsageError(
                f"Migration v{m.version} ({m.script or m.description}) has nothing to apply.",
                hint="Write its up_sql (or up_python) first.",
            )
        row = unfinished.get(m.version)
        if row is not None and resume and not step.transactional:
            step = PlannedStep(**{**step.to_dict(), "resume_from": row.statements_done or 0})
        steps.append(step)
    if gaps:
        stamped = adopt.unverified(rows)
        raise UsageError(
            f"Versions {fmt(gaps)} are below the database version v{base} but not recorded as applied.",
            hint=(
                f"Baselinr's profiler stamped v{max(r.version for r in stamped)} without running them: run "
                "'baselinr migrate repair' to create what is missing and record them."
                if stamped
                else "Run 'baselinr migrate validate' to see what is missing."
            ),
        )
    return Plan(current, target, "up" if steps else "none", steps, dialect.name)


def up_plan(
    chain: Chain, rows: list[HistoryRow], target: int, dialect: Dialect, names: Names, *, resume: bool = False
) -> Plan:
    """The plan of an ``apply``: refused when it would go down or past an unfinished migration."""
    p = plan(chain, rows, target, dialect, names, resume=resume)
    if p.direction == "down":
        raise UsageError(
            f"Target v{target} is below the database version v{p.current_version}.",
            hint=f"Use 'baselinr migrate rollback --target {target}' to downgrade.",
        )
    refuse_unfinished(rows, p, resume)
    return p


def down_plan(
    chain: Chain, rows: list[HistoryRow], target: int, dialect: Dialect, names: Names, *, resume: bool = False, locked: bool
) -> Plan:
    """The plan of a ``rollback``: refused when it would go up (before the lock; under it, a
    runner that went up meanwhile leaves nothing to do), over a version without a down
    migration, or past an unfinished migration."""
    p = plan(chain, rows, target, dialect, names, resume=resume)
    if p.direction == "up":
        if locked:
            return Plan(p.current_version, target, "none", [], p.dialect)
        raise UsageError(
            f"Target v{target} is above the database version v{p.current_version or 0}.",
            hint=f"Use 'baselinr migrate apply --target {target}' to upgrade.",
        )
    check_downs(chain, p)
    refuse_unfinished([r for r in rows if r.direction == "down"], p, resume)
    return p


def refuse_ahead(chain: Chain, rows: list[HistoryRow]) -> None:
    """Refuse any plan on a database that recorded versions this code does not have: it can
    neither apply past them nor roll them back (it lacks their down migrations), so only the
    code that has them can go on from there."""
    beyond = sorted({r.version: r for r in rows if r.version > chain.latest}.values(), key=lambda r: r.version)
    if not beyond:
        return
    top = max(r.version for r in beyond)
    named = ", ".join(f"v{r.version}" + (f" ({r.description})" if r.description else "") for r in beyond)
    raise UsageError(
        f"The database is at v{top}, ahead of this code (latest v{chain.latest}): it has no migration for "
        f"{named}, so it can neither apply nor roll back {fmt_list([r.version for r in beyond])}.",
        hint=f"Use the Baselinr package or image (or --migrations package) that has v{top}: keep running that one, "
        f"or run 'baselinr migrate rollback --target {chain.latest}' there to bring the database back to this code.",
    )


def fmt_list(versions: list[int]) -> str:
    """``v2`` or ``v2 and v3`` or ``v2, v3 and v4``: versions in a sentence."""
    names = [f"v{v}" for v in versions]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def refuse_preexisting(plan: Plan, existing: Mapping[int, list[str]]) -> None:
    """Refuse a plan that would create tables that exist already (``existing``: tables by
    version, from ``adopt.preexisting``) for a version not recorded as applied."""
    planned = {s.version for s in plan.steps}
    clash = {v: tables for v, tables in existing.items() if v in planned}
    if clash:
        v, tables = min(clash.items())
        raise UsageError(
            f"{', '.join(tables)} of v{v} already {'exist' if len(tables) > 1 else 'exists'} but v{v} is not recorded "
            "as applied (made outside the migrations, e.g. by Baselinr's profiler).",
            hint="Run 'baselinr migrate repair --dry-run' to see how it would be adopted, then "
            "'baselinr migrate repair' and 'baselinr migrate apply'.",
        )


def already_at(chain: Chain, rows: list[HistoryRow], target: int, dialect_name: str) -> Plan | None:
    """The empty plan when every version up to ``target`` is applied, none above it, and
    nothing is unfinished or merely stamped; ``None`` otherwise (the locked path decides)."""
    if history.unfinished(rows) or adopt.unverified(rows):
        return None
    applied = history.applied_versions(rows)
    if not applied or target > chain.latest or max(applied) != target:
        return None
    if any(m.version not in applied for m in chain.between(0, target)):
        return None
    return Plan(target, target, "none", [], dialect_name)


def check_downs(chain: Chain, plan: Plan) -> None:
    missing = [s.version for s in plan.steps if not chain.get(s.version).has_down]
    if missing:
        raise UsageError(
            f"Cannot roll back: {', '.join(f'v{v}' for v in missing)} "
            f"{'has' if len(missing) == 1 else 'have'} no down migration (down_sql or down_python).",
            hint=f"Restore a backup taken before v{min(missing)} instead, or add a down migration.",
        )


def refuse_unfinished(rows: list[HistoryRow], plan: Plan, resume: bool) -> None:
    """Refuse to run past an interrupted or failed migration, unless the plan runs it again
    in a transaction or ``resume`` continues it."""
    planned = {s.version: s for s in plan.steps}
    for row in history.unfinished(rows):
        step = planned.get(row.version)
        if step is not None and step.direction == row.direction and (step.transactional or resume):
            continue
        how = "was interrupted" if row.status == RUNNING else "failed"
        if row.direction == "down":
            how += " while being rolled back"
        progress = ""
        if row.statements_total is not None:
            progress = f" after {row.statements_done or 0} of {row.statements_total} statements"
        reason = f": {row.error_message}" if row.error_message else ""
        raise MigrationFailed(
            f"Migration v{row.version} {how}{progress}{reason}.",
            version=row.version,
            hint="The database may be partly migrated. Either finish or undo that change by hand and run "
            f"'baselinr migrate repair', or run '{row.resume_command}' to continue from statement "
            f"{(row.statements_done or 0) + 1}.",
        )


def fmt(versions: list[int]) -> str:
    """``{1, 2, 3}``: versions as the messages show them."""
    return "{" + ", ".join(str(v) for v in versions) + "}"
