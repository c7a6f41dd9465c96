"""``migrate test``: run every migration up, down and up again on a scratch database.

The library behind ``baselinr migrate test`` (``baselinr.cli.selftest``
renders its result). On an empty database (``scratch.sqlite_scratch`` makes
a fresh SQLite file; any other must hold no table at all), for each version
N in order:

1. **up** to N, then compare the live schema with the model at N
   (``drift.compare``);
2. **down** to N-1, then compare with the model at N-1 and with the live
   schema as it was before N's up (a ``reflection`` snapshot), and check that no row of
   version N or above is left in the version table;
3. **reup** to N, then compare with the model at N and with the live schema
   the first up made.

Every way a version falls short is a ``Mismatch`` (data: version, phase,
kind, table, object, expected, found, what it was compared with). A failed
up, down or reup is one too, and ends the run there: what follows would be
tested on a schema no migration chain produces. A version without a down
migration is tested up only and noted, not failed. Connection loss and lock
timeouts are raised (``DatabaseUnavailable``), not reported as mismatches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from baselinr.config import ConnectionSettings
from baselinr.errors import BaselinrError, DatabaseUnavailable, UsageError
from baselinr.storage import reflection
from baselinr.storage.connection import first_line, open_connection, redact
from baselinr.storage.migrations import scratch
from baselinr.storage.migrations.chain import DEFAULT_PACKAGE
from baselinr.storage.migrations.drift import ERROR, Difference, compare, diff_snapshots
from baselinr.storage.migrations.journal import JOURNAL_TABLE_NAME
from baselinr.storage.version_table import VERSION_TABLE_NAME

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from baselinr.storage.migrations.manager import MigrationManager

# Tables the engine keeps for itself: they come and go with the runner, not with a migration.
BOOKKEEPING = frozenset({VERSION_TABLE_NAME, JOURNAL_TABLE_NAME, "_baselinr_migration_lock"})

UP, DOWN, REUP = "up", "down", "reup"
# Kinds of mismatch besides drift's schema kinds.
UP_FAILED = "up_failed"
DOWN_FAILED = "down_failed"
REUP_FAILED = "reup_failed"  # the up does not run a second time after its down
VERSION_ROW_LEFT = "version_row_left"  # the down left rows of its version (or above) in the version table
FAILED_KINDS = {UP: UP_FAILED, DOWN: DOWN_FAILED, REUP: REUP_FAILED}


@dataclass(frozen=True)
class Mismatch:
    """One way version ``version`` fell short in ``phase`` (up, down or reup).

    For a schema difference, ``kind`` is drift's (``missing_column``,
    ``extra_index`` …), ``table`` / ``object`` what it concerns and
    ``expected`` / ``found`` the two shapes; ``against`` says what the live
    schema was compared with (``model v3``, ``schema before v3``,
    ``schema after the first up of v3``). For a failed step, ``kind`` is
    ``up_failed`` / ``down_failed`` / ``reup_failed`` and ``found`` the error.
    """

    version: int
    phase: str
    kind: str
    table: str = ""
    object: str = ""
    expected: str = ""
    found: str = ""
    against: str = ""


@dataclass(frozen=True)
class VersionOutcome:
    """What happened to one version: the phases that ran and its mismatches."""

    version: int
    description: str
    phases: list[str] = field(default_factory=list)
    mismatches: list[Mismatch] = field(default_factory=list)
    note: str | None = None  # e.g. no down migration: tested up only

    @property
    def ok(self) -> bool:
        return not self.mismatches


@dataclass(frozen=True)
class SelfTestResult:
    """The whole run: where, which versions, and every mismatch."""

    database: str
    dialect: str
    target: int
    versions: list[VersionOutcome]
    stopped_at: int | None = None  # the version whose failed step ended the run

    @property
    def mismatches(self) -> list[Mismatch]:
        return [m for v in self.versions for m in v.mismatches]

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "database": self.database,
            "dialect": self.dialect,
            "target": self.target,
            "stopped_at": self.stopped_at,
            "versions": [{**asdict(v), "ok": v.ok} for v in self.versions],
            "mismatches": [asdict(m) for m in self.mismatches],
        }


def run_selftest(
    connection: ConnectionSettings,
    *,
    target: int | None = None,
    table_names: Mapping[str, str] | None = None,
    migrations_package: str = DEFAULT_PACKAGE,
    on_version: Callable[[VersionOutcome], None] | None = None,
) -> SelfTestResult:
    """Test versions 1..``target`` (default: the latest) on the scratch database ``connection``.

    Raises ``UsageError`` (nothing run) when the database holds any table, and
    for a target outside the chain; ``on_version`` hears of each version once done.
    The database is left as the last step left it: at ``target`` after a clean run."""
    from baselinr.storage.migrations.manager import MigrationManager

    mgr = MigrationManager(connection, table_names=table_names, migrations_package=migrations_package, lock_timeout=10.0)
    try:
        chain = mgr.chain
        latest = chain.latest
        if latest == 0:
            raise UsageError(f"No migrations in {migrations_package}: nothing to test.")
        target = latest if target is None else target
        if not 1 <= target <= latest:
            raise UsageError(f"--target {target} is outside this code's versions 1..{latest}.")
        scratch.refuse_unless_empty(mgr.engine, connection)
        outcomes: list[VersionOutcome] = []
        stopped: int | None = None
        before: reflection.Snapshot = {}  # an empty database
        for version in range(1, target + 1):
            outcome, after = _test_version(mgr, connection, version, before)
            outcomes.append(outcome)
            if on_version is not None:
                on_version(outcome)
            if after is None:
                stopped = version
                break
            before = after
        return SelfTestResult(connection.describe(), mgr.dialect.name, target, outcomes, stopped)
    finally:
        mgr.close()


def _test_version(
    mgr: MigrationManager, connection: ConnectionSettings, version: int, before: reflection.Snapshot
) -> tuple[VersionOutcome, reflection.Snapshot | None]:
    """Up, down and reup of one version; the snapshot at ``version``, or None when a step failed."""
    m = mgr.chain.get(version)
    phases: list[str] = []
    found: list[Mismatch] = []

    def outcome(note: str | None = None) -> VersionOutcome:
        return VersionOutcome(version, m.description, phases, found, note)

    failure = _step(mgr, connection, version, UP)
    phases.append(UP)
    if failure is not None:
        found.append(failure)
        return outcome(), None
    after_up, differences = _check(mgr, version, UP, version)
    found += differences
    if not m.has_down:
        return outcome("no down migration (down_sql or down_python): tested up only"), after_up

    failure = _step(mgr, connection, version, DOWN)
    phases.append(DOWN)
    if failure is not None:
        found.append(failure)
        return outcome(), None
    found += _check(mgr, version, DOWN, version - 1, (f"schema before v{version}", before))[1]
    found += _version_rows_left(mgr, version)

    failure = _step(mgr, connection, version, REUP)
    phases.append(REUP)
    if failure is not None:
        found.append(failure)
        return outcome(), None
    after_reup, differences = _check(mgr, version, REUP, version, (f"schema after the first up of v{version}", after_up))
    found += differences
    return outcome(), after_reup


def _step(mgr: MigrationManager, connection: ConnectionSettings, version: int, phase: str) -> Mismatch | None:
    """Run one phase; its failure as a mismatch. Losing the database is raised, not reported."""
    try:
        if phase == DOWN:
            mgr.rollback(version - 1)
        else:
            mgr.apply(version)
    except DatabaseUnavailable:
        raise
    except BaselinrError as exc:
        return Mismatch(version, phase, FAILED_KINDS[phase], found=redact(first_line(exc.message), connection))
    return None


@contextmanager
def _reading(mgr: MigrationManager) -> Iterator[Connection]:
    """A connection for reading the schema, its implicit transaction ended before it is closed."""
    with open_connection(mgr.engine, mgr.settings) as conn:
        yield conn
        if conn.in_transaction():
            conn.rollback()


def _check(
    mgr: MigrationManager, version: int, phase: str, at: int, earlier: tuple[str, reflection.Snapshot] | None = None
) -> tuple[reflection.Snapshot, list[Mismatch]]:
    """The live schema (one connection) and its mismatches: against ``earlier`` (what it
    is named, the snapshot it must equal), then against the model at ``at``.

    drift's errors count, and its warnings (extra objects) where the model is
    exact. The snapshot's differences come first (they carry the reflected
    types); a model difference about the same object is not reported twice."""
    model, exact = mgr.chain.model_at(at, mgr.dialect.name)
    with _reading(mgr) as conn:
        live = reflection.take(conn, indexes=mgr.dialect.supports_indexes, skip=BOOKKEEPING)
        differences = compare(conn, model, exact, mgr.dialect, mgr.names)
    out = [] if earlier is None else [_mismatch(version, phase, earlier[0], d) for d in diff_snapshots(earlier[1], live)]
    seen = {(m.kind, m.table.lower(), m.object.lower()) for m in out}
    for d in differences:
        if (exact or d.severity == ERROR) and (d.kind, d.table.lower(), d.object.lower()) not in seen:
            out.append(_mismatch(version, phase, f"model v{at}", d))
    return live, out


def _version_rows_left(mgr: MigrationManager, version: int) -> list[Mismatch]:
    from sqlalchemy import text

    with _reading(mgr) as conn:
        rows = conn.execute(
            text(f"SELECT version FROM {VERSION_TABLE_NAME} WHERE version >= :v ORDER BY version"), {"v": version}
        ).fetchall()
    if not rows:
        return []
    left = ", ".join(str(r[0]) for r in rows)
    return [
        Mismatch(
            version,
            DOWN,
            VERSION_ROW_LEFT,
            VERSION_TABLE_NAME,
            "version",
            f"no row >= {version}",
            f"rows for {left}",
            f"schema before v{version}",
        )
    ]


def _mismatch(version: int, phase: str, against: str, d: Difference) -> Mismatch:
    # drift leaves the side that is not there empty: say "present" / "absent", so every mismatch reads both ways.
    expected, found = d.expected, d.found
    if d.kind.startswith("missing_"):
        expected, found = expected or "present", found or "absent"
    elif d.kind.startswith("extra_"):
        expected, found = expected or "absent", found or "present"
    return Mismatch(version, phase, d.kind, d.table, d.object, expected, found, against)
