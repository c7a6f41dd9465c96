"""The engine's own bookkeeping table, ``baselinr_schema_version``.

The manager creates it before v1 and widens it on databases that Baselinr's
profiler created (those lack the engine's columns). One row per version:
``status`` is ``applied``, ``running`` (a non-transactional migration in
progress, or interrupted) or ``failed``; ``statements_done`` says how far a
non-transactional migration got.
"""

from __future__ import annotations

from baselinr.storage.model import NOW, Column, Integer, String, Table, Text, Timestamp

VERSION_TABLE_NAME = "baselinr_schema_version"

APPLIED = "applied"
RUNNING = "running"
FAILED = "failed"

VERSION_TABLE = Table(
    VERSION_TABLE_NAME,
    (
        Column("version", Integer(), nullable=False),
        Column("applied_at", Timestamp(), nullable=False, default=NOW),
        Column("description", String(500)),
        Column("migration_script", String(255)),
        Column("checksum", String(64)),
        Column("checksum_algorithm", String(20)),
        Column("execution_time_ms", Integer()),
        Column("applied_by", String(255)),
        Column("status", String(20)),
        Column("statements_done", Integer()),
        Column("statements_total", Integer()),
        Column("error_message", Text()),
    ),
    primary_key=("version",),
)

# Columns Baselinr's profiler already creates; the rest are added if missing.
PROFILER_COLUMNS = ("version", "applied_at", "description", "migration_script", "checksum")
ENGINE_COLUMNS = tuple(c for c in VERSION_TABLE.columns if c.name not in PROFILER_COLUMNS)
