"""The typed JSON-lines encoding of rows, for dialects without a native dump format.

Used by ``rows`` (SQLite, MySQL/MariaDB). One row is one JSON array on one
line (JSON escapes newlines inside strings, so a line is a row). Strings,
integers, booleans and NULL are plain JSON; every other driver type is a
one-key object whose tag says how to rebuild it exactly:

    {"$dec": "12.3400"}              Decimal, digits and scale kept
    {"$dt": "2024-01-02T03:04:05.000006+05:30"}   datetime, with its zone if it had one
    {"$date": "2024-01-02"}  {"$time": "03:04:05.000006"}
    {"$td": [days, seconds, microseconds]}        timedelta (MySQL TIME)
    {"$b64": "..."}                  bytes
    {"$f": "nan"}                    a float JSON cannot spell (nan, inf, -inf)

Finite floats are written with ``repr``, which round-trips exactly.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
from decimal import Decimal
from typing import Any

from baselinr.backup.errors import BackupError

_PLAIN = (str, int, bool, type(None))


def encode_value(v: Any) -> Any:
    t = type(v)
    if t in _PLAIN:
        return v
    if t is float:
        return v if math.isfinite(v) else {"$f": repr(v)}
    if isinstance(v, Decimal):
        return {"$dec": str(v)}
    if isinstance(v, dt.datetime):
        return {"$dt": v.isoformat()}
    if isinstance(v, dt.date):
        return {"$date": v.isoformat()}
    if isinstance(v, dt.time):
        return {"$time": v.isoformat()}
    if isinstance(v, dt.timedelta):
        return {"$td": [v.days, v.seconds, v.microseconds]}
    if isinstance(v, (bytes, bytearray, memoryview)):
        return {"$b64": base64.b64encode(bytes(v)).decode("ascii")}
    if isinstance(v, (str, int, float)):  # subclasses (e.g. a driver's str type)
        return encode_value((str if isinstance(v, str) else int if isinstance(v, int) else float)(v))
    raise BackupError(f"Cannot back up a value of type {t.__name__}: no encoding for it")


def _decode_tagged(obj: dict[str, Any]) -> Any:
    if len(obj) != 1:
        raise ValueError(f"unexpected object in a row: {obj!r}")
    tag, value = next(iter(obj.items()))
    if tag == "$dec":
        return Decimal(value)
    if tag == "$dt":
        return dt.datetime.fromisoformat(value)
    if tag == "$date":
        return dt.date.fromisoformat(value)
    if tag == "$time":
        return dt.time.fromisoformat(value)
    if tag == "$td":
        return dt.timedelta(days=value[0], seconds=value[1], microseconds=value[2])
    if tag == "$b64":
        return base64.b64decode(value)
    if tag == "$f":
        return float(value)
    raise ValueError(f"unknown value tag {tag!r}")


_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
_DECODER = json.JSONDecoder(object_hook=_decode_tagged)


def encode_row(row: Any) -> str:
    return _ENCODER.encode([encode_value(v) for v in row])


def decode_row(line: bytes) -> list[Any]:
    value = _DECODER.decode(line.decode("utf-8"))
    if not isinstance(value, list):
        raise ValueError("a row line is not a JSON array")
    return value
