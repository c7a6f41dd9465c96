"""Text of ``baselinr migrate move``, from ``baselinr.backup.results.MoveResult``; JSON is its ``to_dict()``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from baselinr.cli.render import markers

if TYPE_CHECKING:
    from baselinr.backup.results import MoveResult


def moved_text(result: MoveResult) -> list[str]:
    m = markers()
    took = sum(result.seconds.values())
    lines = [
        f"{m['ok']} Moved {result.source} ({result.source_dialect}) into {result.target} ({result.target_dialect}): "
        f"{len(result.tables)} tables, {result.rows:,} rows at schema v{result.schema_version or 0} in {took:.1f}s",
        "   Verified: row counts and content digests equal on every table; migrate validate passes on the target",
    ]
    lines += [f"   {t.name}: {t.rows:,} rows" for t in result.tables if t.rows]
    empty = [t.name for t in result.tables if not t.rows]
    if empty:
        lines.append(f"   {len(empty)} empty table(s): {', '.join(empty)}")
    if result.replaced:
        lines.append(f"   Replaced {len(result.replaced)} existing table(s)")
    lines += [f"   {n}" for n in result.notes]
    steps = ", ".join(f"{k} {v:.1f}s" for k, v in result.seconds.items())
    lines.append(f"   ({steps})")
    lines.append("Next: point Baselinr's config.yml (storage.connection) at the target, then run 'baselinr migrate status' on it")
    return lines
