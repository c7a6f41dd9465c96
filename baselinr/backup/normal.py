"""A dialect-independent normal form of rows, and an order-free content digest per table.

``migrate move`` (``move``) checks its work with it: the rows of the backup it
took from the source and the rows the target holds afterwards must have the
same count and the same digest. Each value is put in the normal form of its
column's model family, so what differs only in how a dialect spells a value
compares equal, and nothing else does:

    integer, bigint   decimal digits             (SQLite's 1 and PostgreSQL's 1)
    float             Python's repr of the double
    decimal           digits without trailing zeros (12.3400 → 12.34)
    string, text      the text itself
    json              the parsed document, keys sorted, compact (else the text)
    timestamp         YYYY-MM-DD HH:MM:SS.ffffff in UTC (a date at midnight)
    boolean           true / false                (SQLite's and MySQL's 1 and 0)
    NULL              null

A row's digest is the SHA-256 of its normal values as a JSON array; a table's
digest is the sum of its rows' digests modulo 2**256, so row order (which no
dialect promises) does not matter and a duplicated row still counts twice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from baselinr.storage.model import SqlType

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

Normalizer = Callable[[Any], Any]
_MOD = 2**256
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_CANONICAL = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _integer(v: Any) -> Any:
    return str(int(v)) if not isinstance(v, str) else str(int(v.strip()))


def _float(v: Any) -> Any:
    return repr(float(v))


def _decimal(v: Any) -> Any:
    d = Decimal(repr(v)) if isinstance(v, float) else Decimal(str(v).strip())
    return "0" if d == 0 else format(d.normalize(), "f")


def _text(v: Any) -> Any:
    return v if isinstance(v, str) else repr(v) if isinstance(v, float) else str(v)


def _json(v: Any) -> Any:
    if not isinstance(v, str):
        return _CANONICAL.encode(v)
    try:
        return _CANONICAL.encode(json.loads(v))
    except ValueError:
        return "text:" + v


def _timestamp(v: Any) -> Any:
    if isinstance(v, str):
        v = dt.datetime.fromisoformat(v.strip())
    if not isinstance(v, dt.datetime):
        v = dt.datetime(v.year, v.month, v.day)
    if v.tzinfo is not None:
        v = v.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return v.isoformat(sep=" ", timespec="microseconds")


def _boolean(v: Any) -> Any:
    if isinstance(v, str):
        return "true" if v.strip().lower() in ("1", "true") else "false"
    return "true" if v else "false"


_BY_FAMILY: dict[str, Normalizer] = {
    "integer": _integer,
    "bigint": _integer,
    "float": _float,
    "decimal": _decimal,
    "string": _text,
    "text": _text,
    "json": _json,
    "timestamp": _timestamp,
    "boolean": _boolean,
}


def normalizer(t: SqlType) -> Normalizer:
    """The normal form of a column of model type ``t``; a value it cannot read is kept as its repr,
    marked, so it can only equal the same value."""
    inner = _BY_FAMILY.get(t.family, _text)
    textual = inner is _text

    def normal(v: Any) -> Any:
        if v is None:
            return None
        if textual and type(v) is str:
            return v
        try:
            return inner(v)
        except (ValueError, TypeError, ArithmeticError):
            return "unreadable:" + repr(v)

    return normal


class Digest:
    """Row count and order-free content digest of one table under the normal form."""

    def __init__(self, types: Sequence[SqlType]) -> None:
        self._normal = [normalizer(t) for t in types]
        self.rows = 0
        self._sum = 0

    def add(self, row: Sequence[Any]) -> None:
        values = [n(v) for n, v in zip(self._normal, row, strict=True)]
        h = hashlib.sha256(_ENCODER.encode(values).encode("utf-8")).digest()
        self._sum = (self._sum + int.from_bytes(h, "big")) % _MOD
        self.rows += 1

    @property
    def hexdigest(self) -> str:
        return f"{self._sum:064x}"


BATCH = 5000


def live_digest(
    conn: Connection,
    table: str,
    columns: Sequence[str],
    types: Sequence[SqlType],
    on_rows: Callable[[int], None] | None = None,
) -> Digest:
    """The digest of every row ``conn`` reads from ``table`` (streamed in batches, constant memory);
    ``on_rows(rows so far)`` after each batch."""
    q = conn.dialect.identifier_preparer.quote
    digest = Digest(types)
    cols = ", ".join(q(c) for c in columns)
    result = conn.execution_options(stream_results=True, yield_per=BATCH).exec_driver_sql(f"SELECT {cols} FROM {q(table)}")
    try:
        while True:
            batch = result.fetchmany(BATCH)
            if not batch:
                break
            for row in batch:
                digest.add(row)
            if on_rows is not None:
                on_rows(digest.rows)
    finally:
        result.close()
    return digest
