"""Loading a backup into another dialect: every value converted by its column's model type, checked first.

Called by ``restore`` for a table file that the target's codec cannot load
as it is: a backup of another dialect (or a PostgreSQL backup in the
portable encoding, which ``migrate move`` takes). Only the portable encoding
(typed JSON lines, ``values``) can cross dialects; PostgreSQL's ``COPY`` text
cannot, and ``restore`` refuses it with the command that can.

``preflight`` reads every row of every such table before the target is
touched, runs each value through its column's converter (``convert``) and
stops at the first value the target cannot keep, naming table, column and
value; it also returns each table's digest under the normal form
(``normal``), which ``move`` compares with the target's afterwards. The
version table's checksums are the one change made to values: each becomes
the checksum its migration has on the target's dialect (``checksums``), in
the digest too, so ``validate`` passes on the target as it did on the source.
``load`` then streams the rows again, converted, into the target's codec
(``Codec.load_values``: ``COPY`` on PostgreSQL, batched inserts elsewhere).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from baselinr.backup.convert import Converter, Limits, Unkeepable, converter, shown
from baselinr.backup.errors import BackupDamaged, RestoreRefused
from baselinr.backup.normal import Digest
from baselinr.backup.reader import check_table, mismatch, open_table
from baselinr.backup.rows import ENCODING as PORTABLE
from baselinr.backup.streams import TruncatedStream
from baselinr.backup.trust import logical_of
from baselinr.backup.values import decode_row
from baselinr.storage.dialects import dialect_for
from baselinr.storage.families import spelled_type
from baselinr.storage.model import SqlType
from baselinr.storage.version_table import VERSION_TABLE_NAME

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from baselinr.backup.catalog import Catalog
    from baselinr.backup.codecs import Codec
    from baselinr.backup.manifest import Manifest, TableEntry
    from baselinr.backup.progress import ProgressCallback
    from baselinr.backup.reader import Source
    from baselinr.storage.dialects import Dialect
    from baselinr.storage.migrations.chain import Chain
    from baselinr.storage.model import Names


@dataclass(frozen=True)
class Table:
    """One table file to convert: where it goes, its columns' model types and converters."""

    entry: TableEntry
    target: str
    types: tuple[SqlType, ...]
    converters: tuple[Converter, ...]
    rewrite: Rewrite | None = None

    def convert(self, row: Sequence[Any]) -> list[Any]:
        if len(row) != len(self.converters):
            raise ValueError(f"a row of {self.entry.name} has {len(row)} values for {len(self.converters)} columns")
        return [c(v) for c, v in zip(self.converters, row, strict=True)]


Rewrite = Callable[[list[Any]], list[Any]]


def checksums(manifest: Manifest, chain: Chain, dialect: Dialect, names: Names) -> Callable[[TableEntry], Rewrite | None]:
    """For the version table: each applied migration's checksum as the target's dialect computes it.

    A migration's checksum hashes its SQL as rendered for one dialect, so the backup's version rows
    would fail ``validate`` on another. A recorded checksum that matches the migration on the
    backup's dialect becomes the one it has on the target's; any other is kept as it is, so a
    migration edited after it was applied is still found there."""
    source = dialect_for(manifest.dialect)
    physical = {logical_of(e): e.name for e in manifest.tables}

    def source_names(logical: str) -> str:
        return physical.get(logical.lower(), logical)

    cache: dict[tuple[int, str], str | None] = {}

    def mapped(version: int, recorded: str) -> str | None:
        if (version, recorded) not in cache:
            m = chain.migrations.get(version)
            same = m is not None and recorded == m.checksum(source, source_names)
            cache[(version, recorded)] = m.checksum(dialect, names) if m is not None and same else None
        return cache[(version, recorded)]

    def for_table(entry: TableEntry) -> Rewrite | None:
        if entry.name.lower() != VERSION_TABLE_NAME:
            return None
        cols = [c.lower() for c in entry.column_names]
        if "version" not in cols or "checksum" not in cols:
            return None
        at_version, at_checksum = cols.index("version"), cols.index("checksum")

        def rewrite(row: list[Any]) -> list[Any]:
            version, recorded = row[at_version], row[at_checksum]
            if isinstance(version, int) and isinstance(recorded, str):
                new = mapped(version, recorded)
                if new is not None:
                    row = [*row[:at_checksum], new, *row[at_checksum + 1 :]]
            return row

        return rewrite

    return for_table


def portable(manifest: Manifest) -> bool:
    """Whether every table file of the backup is in the encoding that can cross dialects."""
    return all(t.encoding == PORTABLE for t in manifest.tables)


def _column_type(entry: TableEntry, name: str, spelled: str, cat: Catalog, logical: str, limits: Limits) -> tuple[SqlType, bool]:
    """The column's model type, and whether the target's column takes NULL."""
    model = cat.get(logical)
    column = model.column(name) if model is not None else None
    if column is None and model is not None:
        column = next((c for c in model.columns if c.name.lower() == name.lower()), None)
    if model is not None and column is not None:
        keyed = column.name in model.primary_key and not limits.null_in_primary_key
        return column.type, column.nullable and not keyed
    # A column no migration made (kept_columns) or a table a SQL migration made: its spelled type, if a model one.
    parsed = spelled_type(spelled)
    if parsed is None:
        raise RestoreRefused(
            f"{entry.name}.{name} has type {spelled!r}, which has no model family to convert it by",
            hint="Nothing was written. Restore the backup into its own dialect.",
        )
    return parsed, True


def plan(
    manifest: Manifest,
    cat: Catalog,
    targets: dict[str, str],
    logical: dict[str, str],
    limits: Limits,
    rewrites: Callable[[TableEntry], Rewrite | None] | None = None,
) -> list[Table]:
    """The converters of every table of the backup, from the model at its version (the target's dialect);
    ``rewrites``: a change of whole rows before conversion (``checksums``)."""
    out = []
    for entry in manifest.tables:
        typed = [_column_type(entry, c.name, c.type, cat, logical[entry.name], limits) for c in entry.columns]
        types = tuple(t for t, _ in typed)
        try:
            converters = tuple(converter(t, limits, nullable=nullable) for t, nullable in typed)
        except Unkeepable as exc:
            hint = "Nothing was written. Restore the backup into its own dialect."
            raise RestoreRefused(f"{entry.name}: {exc}", hint=hint) from exc
        rewrite = rewrites(entry) if rewrites is not None else None
        out.append(Table(entry, targets[entry.name], types, converters, rewrite))
    return out


def _rows(path: Source, table: Table, progress: ProgressCallback | None, phase: str) -> Iterator[tuple[int, list[Any]]]:
    """(line number, decoded row) of a table file; the file's checks run when it is read to the end."""
    rewrite = table.rewrite
    n = 0
    try:
        with open_table(path, table.entry, progress, phase=phase) as reader:
            for n, line in enumerate(reader.lines(), 1):
                row = decode_row(line)
                yield n, (rewrite(row) if rewrite is not None else row)
            reader.drain()
            problem = mismatch(table.entry, reader.summary())
    except (ValueError, OSError, EOFError, zlib.error, TruncatedStream) as exc:
        # Damage shows up as whatever broke first: the file's own checks name it if they can.
        check = check_table(path, table.entry)
        problem = check.problem if not check.ok else f"row {n + 1} is not a row of the portable format ({exc})"
    if problem:
        raise BackupDamaged(f"Backup table {table.entry.name} is damaged: {problem}", hint="Nothing was written.")


def preflight(path: Source, tables: Sequence[Table], dialect: str, progress: ProgressCallback | None = None) -> dict[str, Digest]:
    """Convert every value of every table without writing; refuse if ``dialect`` cannot keep one of them,
    naming the first and counting the rest (every column with one is named).

    Returns each table's digest of the backup's own values under the normal form."""
    digests: dict[str, Digest] = {}
    first: tuple[str, int, Any, Unkeepable] | None = None
    more = 0
    where: dict[str, None] = {}
    for table in tables:
        digest = Digest(table.types)
        names = table.entry.column_names
        for n, row in _rows(path, table, progress, "check"):
            if len(row) != len(names):
                raise BackupDamaged(f"Backup table {table.entry.name} row {n} has {len(row)} values for {len(names)} columns")
            for name, conv, value in zip(names, table.converters, row, strict=True):
                try:
                    conv(value)
                except Unkeepable as exc:
                    where[f"{table.entry.name}.{name}"] = None
                    if first is None:
                        first = (f"{table.entry.name}.{name}", n, value, exc)
                    else:
                        more += 1
            digest.add(row)
        digests[table.entry.name] = digest
    if first is not None:
        column, n, value, why = first
        others = f" (and {more} more value(s), in {', '.join(where)})" if more else ""
        raise RestoreRefused(
            f"{column} (row {n}) holds {shown(value)}, which {dialect} cannot keep exactly: {why}{others}",
            hint="Nothing was written. Change or delete those values in the source database, then run again "
            f"(row {n} is the row number in 'SELECT * FROM {column.split('.')[0]}' order).",
        )
    return digests


def load(conn: Connection, codec: Codec, path: Source, table: Table, progress: ProgressCallback | None) -> int:
    """Stream the table's rows, converted, into ``codec``; returns how many. The file's checks run at its end."""
    count = 0

    def converted() -> Iterator[list[Any]]:
        nonlocal count
        for _, row in _rows(path, table, progress, "restore"):
            count += 1
            yield table.convert(row)

    codec.load_values(conn, table.target, table.entry.column_names, converted())
    return count
