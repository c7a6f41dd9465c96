"""Text of the ``baselinr backup …`` and ``baselinr backup clone …`` commands.

Called by ``baselinr.cli.backup`` and ``baselinr.cli.backup_clone`` with
the result objects of ``baselinr.backup.api`` and
``baselinr.backup.snowflake_clone``; JSON is each result's ``to_dict()``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from baselinr.cli.render import markers

if TYPE_CHECKING:
    from baselinr.backup.results import CreateResult, ListResult, PruneResult, RestoreResult, VerifyResult
    from baselinr.backup.snowflake_clone import CloneBackup


def size(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def created_text(result: CreateResult, keep: int | None) -> list[str]:
    m = markers()
    lines = [
        f"{m['ok']} Backup {result.name} written: {len(result.tables)} tables, {result.rows:,} rows, "
        f"{size(result.bytes)} in {result.seconds:.1f}s",
        f"   {result.path}",
    ]
    width = max((len(t.name) for t in result.tables), default=0)
    lines += [f"   {t.name.ljust(width)}  {t.rows:>12,} rows  {size(t.bytes):>10}" for t in result.tables]
    lines += [f"{m['warn']} {w}" for w in result.warnings]
    if result.pruned:
        lines.append(f"   Removed {len(result.pruned)} older backup(s) (--keep {keep}): {', '.join(result.pruned)}")
    return lines


def list_text(result: ListResult) -> list[str]:
    if not result.backups:
        return [f"No backups in {result.dest}"]
    m = markers()
    rows = [("NAME", "CREATED", "VERSION", "TABLES", "ROWS", "SIZE", "STATUS")]
    for b in result.backups:
        status = "complete" if b.status == "complete" else f"{b.status.upper()}: {b.problem}"
        rows.append(
            (
                b.name,
                (b.created_at or "-")[:19].replace("T", " "),
                f"v{b.schema_version}" if b.schema_version is not None else "-",
                str(b.tables) if b.tables is not None else "-",
                f"{b.rows:,}" if b.rows is not None else "-",
                size(b.bytes) if b.bytes is not None else "-",
                status,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    lines = [f"Backups in {result.dest}:"]
    lines += ["  " + "  ".join(r[i].ljust(widths[i]) for i in range(6)) + "  " + r[6] for r in rows]
    bad = [b for b in result.backups if b.status != "complete"]
    if bad:
        lines.append(f"{m['warn']} {len(bad)} not usable (interrupted or damaged); they are never restored")
    return lines


def verify_text(result: VerifyResult) -> list[str]:
    m = markers()
    lines = [f"   {m['error']} {p.message}" for p in result.manifest_problems]
    if not result.manifest_problems:
        lines.append(f"   {m['ok']} manifest: matches the schema model (integrity {result.manifest_integrity})")
    for t in result.tables:
        lines.append(f"   {m['ok'] if t.ok else m['error']} {t.name}: " + (f"{t.rows:,} rows" if t.ok else f"{t.problem}"))
    if result.kept_columns:
        kept = ", ".join(result.kept_columns)
        lines.append(f"   {m['warn']} kept, though no migration made them (restore adds them back): {kept}")
    if result.excluded:
        lines.append(f"   {m['warn']} left out when the backup was taken (--exclude-*): {', '.join(result.excluded)}")
    if result.ok:
        lines.append(f"{m['ok']} Backup {result.name} is intact: {len(result.tables)} tables, {result.rows:,} rows")
    else:
        lines.append(f"{m['error']} Backup {result.name} is damaged: {len(result.problems)} problem(s) found")
    return lines


def restored_text(result: RestoreResult) -> list[str]:
    m = markers()
    lines = [
        f"{m['ok']} Restored {result.name} into {result.database}: {len(result.tables)} tables, {result.rows:,} rows "
        f"at schema v{result.schema_version or 0} in {result.seconds:.1f}s"
    ]
    if result.replaced:
        lines.append(f"   Replaced {len(result.replaced)} existing table(s)")
    if result.created_from_backup:
        created = ", ".join(result.created_from_backup)
        lines.append(f"   Created from the schema model (tables the profiler makes outside the migrations): {created}")
    lines += [f"   {n}" for n in result.notes if not n.startswith("sequence ")]
    if (result.schema_version or 0) < result.code_version:
        lines.append(f"Next: baselinr migrate apply   (the code is at v{result.code_version})")
    return lines


def pruned_text(result: PruneResult) -> list[str]:
    m = markers()
    if not result.removed:
        return [f"{m['ok']} Nothing to remove: {len(result.kept)} backup(s) kept"]
    return [f"Removed {n}" for n in result.removed] + [f"{m['ok']} Kept {len(result.kept)} backup(s)"]


def clone_created_text(result: CloneBackup) -> list[str]:
    head = f"{markers()['ok']} Clone backup {result.name} created: {len(result.tables)} tables"
    return [head, *(f"   {t}" for t in result.tables)]


def clone_list_text(found: list[CloneBackup]) -> list[str]:
    if not found:
        return ["No clone backups."]
    return [f"{b.name}  ({len(b.tables)} tables: {', '.join(b.tables)})" for b in found]


def clone_restored_text(result: CloneBackup) -> list[str]:
    return [f"{markers()['ok']} Restored clone backup {result.name}: {len(result.tables)} tables replaced"]


def clone_dropped_text(result: CloneBackup) -> list[str]:
    return [f"{markers()['ok']} Dropped clone backup {result.name}"]
