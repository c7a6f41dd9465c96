"""Restore a backup: rebuild the schema at the backup's version from our own model, then load the rows.

Called by ``api.restore_backup``. A backup is data, never code: no name,
type or statement of the manifest reaches SQL unchecked. Steps:

1. Refuse what would go wrong, before connecting to the target: a backup
   of another dialect that is not in the portable encoding (PostgreSQL's
   ``COPY`` text), a backup newer than the code, a manifest that fails the checks
   of ``trust`` (``ManifestRejected``), a table file whose stored bytes
   differ from the manifest (size, SHA-256), so a damaged or edited backup
   changes nothing. Where steps 2 and 3 are not one transaction (MySQL,
   Snowflake) every file is also decompressed and checked in full here;
   where they are, that happens once, in step 3. A backup of another
   dialect (or encoding) is read in full here, every value converted by its
   column's model type (``crossload``): a value the target cannot keep
   exactly is refused before anything is written.
2. Under the migration lock: refuse a target that already has Baselinr
   tables (unless ``replace``); drop the tables the catalog knows (``replace``
   only; tables that are not Baselinr's are left alone), create the version
   table, run the up migrations 1..N of the backup's version (without
   recording them: the backup's own version rows are restored instead, so
   the history is reproduced exactly), and create the tables the profiler
   makes outside those migrations from their model definitions.
3. Load every table through its codec (converted values through
   ``Codec.load_values`` for a backup of another dialect), checking rows and both checksums of
   each file as it is read (nothing is committed unless all of them match),
   and that the restored version rows agree with the manifest's schema
   version; reset PostgreSQL's sequences.

On PostgreSQL and SQLite steps 2 and 3 are one transaction: a failure leaves
the target exactly as it was. MySQL and Snowflake commit DDL as it runs, so
there the rows are loaded in one transaction after the schema is rebuilt,
and a failure says plainly what state the target is in.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from baselinr import tracing
from baselinr.backup import crossload
from baselinr.backup.catalog import Catalog, catalog
from baselinr.backup.codecs import Codec, codec_for
from baselinr.backup.errors import BackupDamaged, BackupError, ManifestRejected, RestoreFailed, RestoreRefused
from baselinr.backup.files import BackupFiles, as_files
from baselinr.backup.manifest import Manifest
from baselinr.backup.normal import Digest
from baselinr.backup.progress import ProgressCallback
from baselinr.backup.reader import check_table, mismatch, open_table, verify
from baselinr.backup.results import RestoreResult, TableSummary, VerifyResult
from baselinr.backup.tables import select_baselinr
from baselinr.backup.trust import kept_columns, logical_of
from baselinr.errors import BaselinrError
from baselinr.storage.connection import first_line, redact, run_statement
from baselinr.storage.families import closed_spelling
from baselinr.storage.migrations import history
from baselinr.storage.model import CreateTable
from baselinr.storage.version_table import APPLIED, VERSION_TABLE_NAME

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from baselinr.storage.database import Database
    from baselinr.storage.migrations.chain import Chain


class _Plan:
    """What one restore does, filled in as it goes (for the result and for error messages)."""

    def __init__(self, db: Database, chain: Chain, manifest: Manifest, path: BackupFiles, codec: Codec) -> None:
        self.db = db
        self.chain = chain
        self.manifest = manifest
        self.path = path
        self.codec = codec
        self.version = manifest.schema_version or 0
        # The model in the target's dialect: the same as the backup's unless it crosses dialects.
        self.catalog: Catalog = catalog(chain, self.version, db.dialect.name)
        # Target names come from the target's config and our model, never from the manifest.
        self.logical = {t.name: logical_of(t) for t in manifest.tables}
        self.targets = {t.name: db.names(self.logical[t.name]) for t in manifest.tables}
        self.replaced: list[str] = []
        self.created: list[str] = []
        self.loaded: list[TableSummary] = []
        self.notes: list[str] = []
        self.cross: dict[str, crossload.Table] = {}
        self.digests: dict[str, Digest] = {}
        # The bare driver where the codec works on it and no migration to rebuild the schema is Python.
        self.bare = codec.bare and db.bare_available and all(m.up_python is None for m in chain.between(0, self.version))


def restore(
    db: Database,
    chain: Chain,
    source: BackupFiles | Path,
    *,
    replace: bool,
    runs_table: str,
    results_table: str,
    progress: ProgressCallback | None = None,
    convert: bool = False,
    before_write: Callable[[], None] | None = None,
) -> RestoreResult:
    started = time.monotonic()
    path = as_files(source)
    manifest = path.read_manifest()
    dialect = db.dialect
    codec = codec_for(dialect.name)
    where = db.settings.describe()
    cross = convert or manifest.dialect != dialect.name or any(t.encoding != codec.encoding for t in manifest.tables)
    if cross and not crossload.portable(manifest):
        raise RestoreRefused(
            f"Backup {manifest.name} was taken from {manifest.dialect} in its own format (COPY); it cannot be restored "
            f"into {dialect.name} ({where})",
            hint=f"Restore it into a {manifest.dialect} database, or move the database itself with 'baselinr migrate move "
            "--config SOURCE.yml --to TARGET.yml', which every dialect can load.",
        )
    code = chain.code_version
    if (manifest.schema_version or 0) > code:
        raise RestoreRefused(
            f"Backup {manifest.name} is at schema v{manifest.schema_version}, newer than this code (v{code})",
            hint=f"Restore it with a Baselinr version that knows v{manifest.schema_version}, or choose an older backup.",
        )
    # In one transaction (atomic_restore) the contents are checked as they load: see reader's docstring.
    _refuse_damaged(verify(path, chain, progress, manifest, contents=not (codec.atomic_restore or cross)), manifest)
    plan = _Plan(db, chain, manifest, path, codec)
    if cross:
        # Every value converted, without writing: a value the target cannot keep is refused here.
        rewrites = crossload.checksums(manifest, chain, dialect, db.names)
        planned = crossload.plan(manifest, plan.catalog, plan.targets, plan.logical, codec.limits, rewrites)
        plan.cross = {t.entry.name: t for t in planned}
        plan.digests = crossload.preflight(path, list(plan.cross.values()), dialect.name, progress)
        plan.bare = False
    # The migration lock, held on a connection of its own, keeps 'migrate apply' out meanwhile.
    with db.locked(bare=plan.bare):
        with db.connect(bare=plan.bare) as conn:
            existing = select_baselinr(codec.table_names(conn), extra=(runs_table, results_table))
            if existing and not replace:
                if codec.atomic_restore:
                    # Refused anyway: a damaged backup is still reported as damaged first.
                    _refuse_damaged(verify(path, chain, None, manifest), manifest)
                shown = ", ".join(existing[:6]) + (", …" if len(existing) > 6 else "")
                raise RestoreRefused(
                    f"{where} already has Baselinr tables ({shown})",
                    hint="Restore into an empty database, or pass --replace to drop and replace them.",
                )
            existing = _owned(plan, existing)
            if conn.in_transaction():
                conn.rollback()
            if before_write is not None:
                before_write()  # everything is checked; nothing is written yet (``migrate move`` marks its target)
            if codec.atomic_restore:
                _atomic(conn, plan, existing, progress)
            else:
                _staged(conn, plan, existing, progress)
    notes = plan.notes
    if not codec.atomic_restore:
        notes.insert(
            0,
            f"{dialect.name} commits schema changes at once: the schema was rebuilt first, then the rows "
            "were loaded in one transaction",
        )
    return RestoreResult(
        name=manifest.name,
        database=where,
        dialect=dialect.name,
        schema_version=manifest.schema_version,
        code_version=code,
        tables=plan.loaded,
        rows=sum(t.rows for t in plan.loaded),
        seconds=round(time.monotonic() - started, 3),
        atomic=codec.atomic_restore,
        replaced=plan.replaced,
        created_from_backup=plan.created,
        notes=notes,
        converted_from=manifest.dialect if cross else None,
        normal_digests={name: d.hexdigest for name, d in plan.digests.items()},
    )


def _refuse_damaged(checked: VerifyResult, manifest: Manifest) -> None:
    if checked.manifest_problems:
        problems = checked.manifest_problems
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ManifestRejected(
            f"Backup {manifest.name} fails its checks: {problems[0].message}{more}",
            hint="Nothing was changed; 'baselinr backup verify' lists every problem.",
        )
    if not checked.ok:
        more = f" (and {len(checked.problems) - 1} more)" if len(checked.problems) > 1 else ""
        raise BackupDamaged(f"Backup {manifest.name} is damaged: {checked.problems[0]}{more}", hint="Nothing was changed.")


def _owned(plan: _Plan, live: list[str]) -> list[str]:
    """The live tables ``--replace`` may drop: those of our catalog; the rest are noted and left alone."""
    ours = {plan.db.names(logical).lower() for logical in plan.catalog.known}
    if not plan.catalog.exact:
        # A SQL migration may have made any baselinr_* table: they are all Baselinr's here.
        ours |= {t.lower() for t in live}
    others = [t for t in live if t.lower() not in ours]
    if others:
        plan.notes.append(f"left alone (not Baselinr tables): {', '.join(others)}")
    return [t for t in live if t.lower() in ours]


def _atomic(conn: Connection, plan: _Plan, existing: list[str], progress: ProgressCallback | None) -> None:
    try:
        with conn.execution_options(baselinr_write=True).begin():
            _build_schema(conn, plan, existing)
            _load(conn, plan, progress)
    except BackupDamaged as exc:
        raise BackupDamaged(
            f"Backup {plan.manifest.name} is damaged: {exc.message}",
            hint="Nothing was changed: the restore ran in one transaction, which was rolled back.",
        ) from exc
    except Exception as exc:
        raise _failed(
            plan,
            exc,
            f"It ran in one transaction, which was rolled back: {plan.db.settings.describe()} is exactly as it was before.",
        ) from exc


def _staged(conn: Connection, plan: _Plan, existing: list[str], progress: ProgressCallback | None) -> None:
    where = plan.db.settings.describe()
    ddl = conn.execution_options(isolation_level="AUTOCOMMIT")
    try:
        _build_schema(ddl, plan, existing)
    except Exception as exc:
        raise _failed(
            plan,
            exc,
            f"{plan.db.dialect.name} commits schema changes as they run: the Baselinr tables of {where} may be partly "
            "dropped or created and hold no restored rows. Run the restore again with --replace.",
        ) from exc
    with plan.db.connect() as data:
        try:
            with data.begin():
                _load(data, plan, progress)
        except Exception as exc:
            raise _failed(
                plan,
                exc,
                f"The rows were loaded in one transaction, which was rolled back: {where} has the tables of schema "
                f"v{plan.version} and no rows. Run the restore again with --replace.",
            ) from exc


def _build_schema(conn: Connection, plan: _Plan, existing: list[str]) -> None:
    db, dialect = plan.db, plan.db.dialect
    for table in reversed(existing):
        plan.codec.drop_table(conn, table)
        plan.replaced.append(table)
    history.ensure_table(conn, dialect)
    for m in plan.chain.between(0, plan.version):
        for stmt in m.up_statements(dialect, db.names):
            runnable = dialect.for_fresh_schema(stmt)
            if runnable is not None:
                run_statement(conn, runnable)
        if m.up_python is not None:
            m.up_python(conn)
    live = {n.lower() for n in plan.codec.table_names(conn)}
    for entry in plan.manifest.tables:
        target = plan.targets[entry.name]
        model = plan.catalog.get(plan.logical[entry.name])
        if target.lower() in live:
            continue
        if model is None:
            raise BackupError(
                f"table {target} of the backup is not in the schema model, and the migrations up to "
                f"v{plan.version} did not create it"
            )
        # A table the profiler makes outside these migrations: built from our model, never from the manifest.
        for stmt in CreateTable(model).up(dialect, db.names):
            run_statement(conn, stmt)
        plan.created.append(target)
    _add_kept_columns(conn, plan)


def _add_kept_columns(conn: Connection, plan: _Plan) -> None:
    """Add back the columns no migration made that the backup kept (``kept_columns``): the name was
    checked as a plain identifier, the type is rebuilt from the closed list of spellings
    (``families.closed_spelling``: base name, digits, time zone), never copied."""
    kept = kept_columns(plan.manifest)
    for entry in plan.manifest.tables:
        target = plan.targets[entry.name]
        wanted = [c for c in entry.columns if (entry.name.lower(), c.name.lower()) in kept]
        if not wanted:
            continue
        live = {c.lower() for c in plan.codec.column_names(conn, target)}
        q = plan.db.dialect.quote
        for c in wanted:
            spelled = closed_spelling(c.type)
            if c.name.lower() in live or spelled is None:
                continue
            run_statement(conn, f"ALTER TABLE {q(target)} ADD COLUMN {q(c.name)} {spelled}")
            plan.notes.append(f"added {target}.{c.name} back ({spelled}): no migration makes it")


def _load(conn: Connection, plan: _Plan, progress: ProgressCallback | None) -> None:
    plan.codec.prepare_load(conn)
    for entry in plan.manifest.tables:
        target = plan.targets[entry.name]
        live = set(plan.codec.column_names(conn, target))
        missing = [c for c in entry.column_names if c not in live]
        if missing:
            raise BackupError(
                f"table {target} at schema v{plan.version} has no column(s) {', '.join(missing)} that the backup holds"
            )
        # The backup holds every row: rows the migrations just wrote (a seed, the version rows) go first.
        conn.exec_driver_sql(f"DELETE FROM {plan.db.dialect.quote(target)}")
        with tracing.span("restore table", table=target, dialect=plan.db.dialect.name) as span:
            try:
                if entry.name in plan.cross:
                    # Converted value by value; the file's checks run as it ends (crossload).
                    rows = crossload.load(conn, plan.codec, plan.path, plan.cross[entry.name], progress)
                    plan.loaded.append(TableSummary(target, rows, entry.bytes))
                    plan.notes += plan.codec.finish_load(conn, target, entry.column_names)
                    tracing.annotate(span, rows=rows, bytes=entry.bytes)
                    continue
                with open_table(plan.path, entry, progress, phase="restore") as reader:
                    plan.codec.load(conn, target, entry.column_names, reader)
                    reader.drain()
                    summary = reader.summary()
            except BaselinrError:
                raise
            except Exception as exc:
                # Damage in the file shows up as whatever broke first (a bad row, a COPY
                # syntax error, a gzip error): check the file itself before blaming the database.
                check = check_table(plan.path, entry)
                if not check.ok:
                    raise BackupDamaged(f"{entry.name}: {check.problem}") from exc
                detail = redact(first_line(getattr(exc, "orig", None) or exc), plan.db.settings)
                raise RestoreFailed(f"loading {target}: {detail}") from exc
            tracing.annotate(span, rows=summary.rows, bytes=summary.file_bytes)
        problem = mismatch(entry, summary)
        if problem:
            raise BackupDamaged(f"{entry.name}: {problem}")
        plan.loaded.append(TableSummary(target, summary.rows, summary.file_bytes))
        plan.notes += plan.codec.finish_load(conn, target, entry.column_names)
    if plan.manifest.schema_version is not None:
        _check_history(conn, plan)


def _check_history(conn: Connection, plan: _Plan) -> None:
    """The restored version rows must say what the manifest says, or the schema and its history disagree."""
    rows = conn.exec_driver_sql(f"SELECT version, status FROM {VERSION_TABLE_NAME}").fetchall()
    applied = [int(r[0]) for r in rows if r[1] is None or r[1] == APPLIED]
    found = max(applied, default=None)
    if found != plan.manifest.schema_version:
        raise BackupError(f"the backup's version rows say v{found}, its manifest v{plan.manifest.schema_version}")


def _failed(plan: _Plan, exc: BaseException, state: str) -> BaselinrError:
    if isinstance(exc, BaselinrError):
        detail = exc.message
    else:
        detail = redact(first_line(getattr(exc, "orig", None) or exc), plan.db.settings)
    return RestoreFailed(f"Restore of {plan.manifest.name} failed: {detail}", hint=state)
