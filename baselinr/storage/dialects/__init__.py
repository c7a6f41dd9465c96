"""The storage dialects, one class per module, and the one registry of their names.

Everything that differs between PostgreSQL, MySQL/MariaDB, SQLite and
Snowflake is a method or attribute of that dialect's class (``base`` says
what each one means). Config validation, CLI choices, backup codecs and tests
take the dialect names from ``DIALECT_NAMES`` and never list them again;
``dialect_for`` and ``dialect_class`` find a class by its config ``type``.
"""

from __future__ import annotations

from baselinr.storage.dialects.base import CONNECT_TIMEOUT, LOCK_NAME, REBUILD_SUFFIX, Dialect, runner_id
from baselinr.storage.dialects.mysql import MySQLDialect
from baselinr.storage.dialects.postgres import PostgresDialect, search_path_option
from baselinr.storage.dialects.snowflake import SnowflakeDialect
from baselinr.storage.dialects.sqlite import SQLiteDialect

__all__ = [
    "ALIASES",
    "CONNECT_TIMEOUT",
    "DIALECT_NAMES",
    "LOCK_NAME",
    "REBUILD_SUFFIX",
    "Dialect",
    "MySQLDialect",
    "PostgresDialect",
    "SQLiteDialect",
    "SnowflakeDialect",
    "dialect_class",
    "dialect_for",
    "is_missing_object",
    "runner_id",
    "search_path_option",
]

# In the order messages list them ("Use one of: postgres, mysql, sqlite, snowflake").
_DIALECTS: dict[str, type[Dialect]] = {cls.name: cls for cls in (PostgresDialect, MySQLDialect, SQLiteDialect, SnowflakeDialect)}
DIALECT_NAMES: tuple[str, ...] = tuple(_DIALECTS)
# Other spellings of a config ``type`` (``postgresql``, ``mariadb``, ...) to the dialect's name.
ALIASES: dict[str, str] = {alias: cls.name for cls in _DIALECTS.values() for alias in cls.aliases}


def dialect_class(name: str) -> type[Dialect]:
    """The dialect class for a config ``type`` (one of ``DIALECT_NAMES``); ``KeyError`` otherwise."""
    return _DIALECTS[name]


def dialect_for(name: str, schema: str | None = None) -> Dialect:
    """The dialect object for a config ``type``."""
    return _DIALECTS[name].for_schema(schema)


def is_missing_object(exc: BaseException) -> bool:
    """True if some dialect reads driver error ``exc`` as "no such table or column"."""
    return any(cls.is_missing_object(exc) for cls in _DIALECTS.values())


def is_missing_table(exc: BaseException) -> bool:
    """True if some dialect reads driver error ``exc`` as "no such table" (not a missing column)."""
    return any(cls.is_missing_table(exc) for cls in _DIALECTS.values())
