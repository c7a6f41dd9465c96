"""Baselinr's storage layer: connections, dialects, the schema model, migrations."""
