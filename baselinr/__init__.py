"""Baselinr's schema toolkit: migrations and backups for Baselinr's storage tables.

The engine is importable without any Kubernetes package. Public entry points:
``baselinr.config.load_config`` and
``baselinr.storage.migrations.manager.MigrationManager``.
"""

__version__ = "0.1.0"
