"""The schema version this code expects, and the history of every version.

Read by ``baselinr migrate status`` (cheaply: no migration is imported) and
checked against ``ALL_MIGRATIONS`` by ``validate`` and the tests.
``baselinr migrate new`` edits this file when it adds a version.
"""

CURRENT_SCHEMA_VERSION = 1

# Version history
VERSION_HISTORY = {
    1: {
        "description": "Initial schema with runs, results, events, and table_state tables",
        "applied": "2024-01-01",
        "breaking_changes": False,
    },
}
