"""The schema version this code expects, and the history of every version.

Read by ``baselinr migrate status`` (cheaply: no migration is imported) and
checked against ``ALL_MIGRATIONS`` by ``validate`` and the tests.
``baselinr migrate new`` edits this file when it adds a version. The
history is Baselinr's own storage history; ``applied`` is when each version
entered it.
"""

CURRENT_SCHEMA_VERSION = 11

# Version history
VERSION_HISTORY = {
    1: {
        "description": "Initial schema with runs, results, events, and table_state tables",
        "applied": "2024-01-01",
        "breaking_changes": False,
    },
    2: {
        "description": "Add schema registry table for schema change detection",
        "applied": "2024-11-16",
        "breaking_changes": False,
    },
    3: {
        "description": "Add expectations table for learned metric ranges and control limits",
        "applied": "2024-11-20",
        "breaking_changes": False,
    },
    4: {
        "description": "Add lineage table for table-level lineage from multiple providers",
        "applied": "2024-11-25",
        "breaking_changes": False,
    },
    5: {
        "description": "Add column-level lineage table with transformation expressions",
        "applied": "2024-12-01",
        "breaking_changes": False,
    },
    6: {
        "description": "Add RCA tables (pipeline_runs, code_deployments, rca_results)",
        "applied": "2024-12-05",
        "breaking_changes": False,
    },
    7: {
        "description": "Add database_name to RCA results",
        "applied": "2024-12-10",
        "breaking_changes": False,
    },
    8: {
        "description": "Add validation results table",
        "applied": "2024-12-15",
        "breaking_changes": False,
    },
    9: {
        "description": "Add quality scores table for storing data quality scores",
        "applied": "2024-12-20",
        "breaking_changes": False,
    },
    10: {
        "description": "Add column quality scores table",
        "applied": "2024-12-22",
        "breaking_changes": False,
    },
    11: {
        "description": "Profiler compatibility: RCA column order, NULL table-state keys on SQLite",
        "applied": "2026-12-01",
        "breaking_changes": False,
    },
}
