"""How each dialect reads a consistent snapshot and dumps/loads one table; one class per dialect.

``writer``, ``reader`` and ``restore`` ask ``codec_for(dialect_name)`` and
never branch on a dialect's name. A codec names its file encoding (recorded
per table in the manifest), opens the read snapshot for a backup, prepares a
session for loading, loads one table, and finishes (e.g. resets
PostgreSQL's sequences). Each codec names its dialect class, which decides
what differs beyond the data (a restore is atomic where DDL is transactional),
and the registry is keyed by those dialects' names. Snowflake's codec lives in
``snowflake_codec`` (imported by the registry when first asked, since it
subclasses ``Codec``); its zero-copy ``CLONE`` backups (``snowflake_clone``)
stay in the warehouse.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from baselinr.backup import pg_copy, rows, tables
from baselinr.backup.convert import Limits
from baselinr.backup.manifest import ColumnEntry
from baselinr.errors import UsageError
from baselinr.storage import reflection
from baselinr.storage.dialects import Dialect, MySQLDialect, PostgresDialect, SQLiteDialect

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from baselinr.backup.streams import HashingGzipReader, HashingGzipWriter


class Codec:
    """Streamed typed JSON lines; what SQLite and MySQL use."""

    dialect: ClassVar[type[Dialect]] = Dialect
    encoding: ClassVar[str] = rows.ENCODING
    extension: ClassVar[str] = "jsonl.gz"
    # What the dialect's columns of each model family hold, for values converted from another dialect.
    limits: ClassVar[Limits] = Limits()
    # Whether every step below also works on the bare driver's connection (``Database.connect(bare=True)``).
    bare: ClassVar[bool] = False

    @property
    def atomic_restore(self) -> bool:
        """Whether one transaction covers DDL and data (else DDL commits as it runs)."""
        return self.dialect.transactional_ddl

    def snapshot(self, conn: Connection) -> Connection:
        """Options for a connection whose reads all see one consistent state."""
        return conn

    def table_names(self, conn: Connection) -> list[str]:
        """Every table of the connection's schema."""
        return tables.table_names(conn)

    def describe(self, conn: Connection, names: Iterable[str]) -> dict[str, tuple[list[ColumnEntry], list[str]]]:
        """Columns (as the dialect spells their types) and primary key of each table that exists."""
        return tables.describe(conn, names)

    def column_names(self, conn: Connection, table: str) -> list[str]:
        return tables.live_columns(conn, table)

    def prepare_load(self, conn: Connection) -> None:
        """Session settings before rows are loaded."""

    def drop_table(self, conn: Connection, table: str) -> None:
        conn.exec_driver_sql(f"DROP TABLE {conn.dialect.identifier_preparer.quote(table)}")

    def dump(self, conn: Connection, table: str, columns: Sequence[str], sink: HashingGzipWriter) -> None:
        rows.dump_rows(conn, table, columns, sink)

    def load(self, conn: Connection, table: str, columns: Sequence[str], source: HashingGzipReader) -> None:
        rows.load_rows(conn, table, columns, source)

    def finish_load(self, conn: Connection, table: str, columns: Sequence[str]) -> list[str]:
        """After a table is loaded; returns notes (e.g. sequences moved)."""
        return []

    def load_values(self, conn: Connection, table: str, columns: Sequence[str], values: Iterable[Sequence[Any]]) -> None:
        """Load rows of driver values (converted from another dialect's backup by ``crossload``)."""
        rows.insert_rows(conn, table, columns, values)


class SQLiteCodec(Codec):
    dialect = SQLiteDialect
    # Dynamic types: a timestamp is the text SQLAlchemy writes (an offset kept as written).
    limits = Limits(integer_bits=64, zoned_timestamps=True, timestamps_as_text=True, null_in_primary_key=True)

    def snapshot(self, conn: Connection) -> Connection:
        # A deferred BEGIN; the first read takes the shared lock for the whole backup.
        return conn


class MySQLCodec(Codec):
    dialect = MySQLDialect
    # TEXT holds 65,535 bytes, the json family's MEDIUMTEXT 16 MiB; DATETIME(6) the years 1000..9999.
    limits = Limits(nonfinite_floats=False, text_bytes=65_535, json_bytes=16_777_215, years=(1000, 9999))

    def snapshot(self, conn: Connection) -> Connection:
        # InnoDB: REPEATABLE READ gives every read in the transaction the snapshot of the first one.
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
        conn.exec_driver_sql("SET time_zone = '+00:00'")
        conn.exec_driver_sql("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        return conn

    def prepare_load(self, conn: Connection) -> None:
        conn.exec_driver_sql("SET time_zone = '+00:00'")
        # Keep explicit id 0 as 0 rather than the next AUTO_INCREMENT value.
        conn.exec_driver_sql("SET SESSION sql_mode = CONCAT_WS(',', @@SESSION.sql_mode, 'NO_AUTO_VALUE_ON_ZERO')")
        conn.exec_driver_sql("SET foreign_key_checks = 0")


class PostgresCodec(Codec):
    dialect = PostgresDialect
    encoding = pg_copy.ENCODING
    extension = "copy.gz"
    bare = True
    limits = Limits(nul_in_text=False)

    def snapshot(self, conn: Connection) -> Connection:
        conn = conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        pg_copy.prepare_session(conn)
        return conn

    def table_names(self, conn: Connection) -> list[str]:
        return reflection.pg_table_names(conn)

    def describe(self, conn: Connection, names: Iterable[str]) -> dict[str, tuple[list[ColumnEntry], list[str]]]:
        return tables.entries(reflection.pg_describe(conn, names))

    def column_names(self, conn: Connection, table: str) -> list[str]:
        return reflection.pg_column_names(conn, table)

    def prepare_load(self, conn: Connection) -> None:
        pg_copy.prepare_session(conn)

    def drop_table(self, conn: Connection, table: str) -> None:
        # CASCADE: views or foreign keys of other tables must not block a replace.
        conn.exec_driver_sql(f"DROP TABLE {pg_copy.quote(table)} CASCADE")

    def dump(self, conn: Connection, table: str, columns: Sequence[str], sink: HashingGzipWriter) -> None:
        pg_copy.dump_copy(conn, table, columns, sink)

    def load(self, conn: Connection, table: str, columns: Sequence[str], source: HashingGzipReader) -> None:
        pg_copy.load_copy(conn, table, columns, source)

    def finish_load(self, conn: Connection, table: str, columns: Sequence[str]) -> list[str]:
        return [f"sequence {s} reset" for s in pg_copy.reset_sequences(conn, table, columns)]

    def load_values(self, conn: Connection, table: str, columns: Sequence[str], values: Iterable[Sequence[Any]]) -> None:
        pg_copy.load_values(conn, table, columns, values)


class PortablePostgresCodec(PostgresCodec):
    """PostgreSQL read into the portable encoding (typed JSON lines): the backup ``migrate move`` takes,
    which every dialect can load. Same snapshot and session as ``COPY``; rows stream as in ``rows``."""

    encoding = rows.ENCODING
    extension = "jsonl.gz"
    bare = False

    def dump(self, conn: Connection, table: str, columns: Sequence[str], sink: HashingGzipWriter) -> None:
        rows.dump_rows(conn, table, columns, sink)


@functools.cache
def all_codecs() -> dict[str, type[Codec]]:
    """Every codec, by the name of its dialect."""
    from baselinr.backup.snowflake_codec import SnowflakeCodec

    return {cls.dialect.name: cls for cls in (SQLiteCodec, MySQLCodec, PostgresCodec, SnowflakeCodec)}


def encoding_of(dialect: str) -> str | None:
    """The file encoding of ``dialect``'s codec, or None for a dialect without one."""
    cls = all_codecs().get(dialect)
    return cls.encoding if cls is not None else None


def portable_codec_for(dialect: str) -> Codec:
    """The codec that backs ``dialect`` up in the portable encoding, which every dialect can load."""
    codec = codec_for(dialect)
    return PortablePostgresCodec() if isinstance(codec, PostgresCodec) else codec


def codec_for(dialect: str) -> Codec:
    cls = all_codecs().get(dialect)
    if cls is None:
        raise UsageError(f"Backup and restore are not available for {dialect} yet")
    return cls()
