"""Baselinr's schema migrations: the manager, the ``Migration`` type, versions."""
