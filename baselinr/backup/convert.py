"""Values of one dialect as another dialect's columns hold them, by the schema model's column types.

Used by ``restore`` when a backup is loaded into another dialect than the one
it was taken from (and so by ``migrate move``). Each column gets a converter
built from its model type (``SqlType``: the family, a string's length, a
decimal's precision and scale) and the target's ``Limits`` (what its codec's
columns can hold). A converter returns the value to write, or raises
``Unkeepable`` when the target cannot keep it exactly: a string longer than
its column, a fraction in an integer, a number outside the column's range, a
time zone offset a zone-less column would drop, a NUL character PostgreSQL
refuses, text that is not JSON where the target parses it. Restore runs every
converter over every row before it writes anything, so a refusal names the
table, the column and the value with the target untouched.

Pure: no database. The dialect-independent normal form that ``migrate move``
compares source and target under lives in ``normal``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any

from baselinr.storage.model import SqlType

Converter = Callable[[Any], Any]


class Unkeepable(ValueError):
    """A value the target column cannot hold exactly; ``str()`` says why, in a few words."""


@dataclass(frozen=True)
class Limits:
    """What a target dialect's columns of the model's families can hold (one per codec)."""

    integer_bits: int = 32  # the model's integer family; bigint is always 64 bits
    nul_in_text: bool = True  # PostgreSQL refuses U+0000 in text
    nonfinite_floats: bool = True  # MySQL has no NaN or infinity
    text_bytes: int | None = None  # UTF-8 bytes of the model's text family (MySQL TEXT: 65,535)
    json_bytes: int | None = None  # UTF-8 bytes of the model's json family (MySQL MEDIUMTEXT)
    json_parsed: bool = False  # the json family is parsed on the way in (Snowflake VARIANT)
    zoned_timestamps: bool = False  # timestamps keep an offset (Snowflake TIMESTAMP_TZ, SQLite's text)
    timestamps_as_text: bool = False  # written as SQLAlchemy writes them to SQLite: YYYY-MM-DD HH:MM:SS.ffffff
    years: tuple[int, int] = (1, 9999)  # MySQL DATETIME: 1000..9999
    null_in_primary_key: bool = False  # SQLite: a primary-key column that is not INTEGER takes NULL


_FRACTION = re.compile(r"[T ]\d{2}:\d{2}:\d{2}\.(\d+)")


def _shorten(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def shown(value: Any) -> str:
    """The value as a refusal names it: its repr, cut to 60 characters."""
    return _shorten(value)


def _integer(bits: int) -> Converter:
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1

    def convert(v: Any) -> Any:
        if isinstance(v, bool):
            v = int(v)
        elif isinstance(v, float):
            if not v.is_integer():
                raise Unkeepable("not a whole number")
            v = int(v)
        elif isinstance(v, Decimal):
            if not v.is_finite() or v != v.to_integral_value():
                raise Unkeepable("not a whole number")
            v = int(v)
        elif isinstance(v, str):
            try:
                v = int(v.strip())
            except ValueError:
                raise Unkeepable("not a whole number") from None
        elif not isinstance(v, int):
            raise Unkeepable(f"a {type(v).__name__}, not a whole number")
        if not low <= v <= high:
            raise Unkeepable(f"outside the {bits}-bit range of the target column")
        return v

    return convert


def _float(limits: Limits) -> Converter:
    def convert(v: Any) -> Any:
        if isinstance(v, bool) or not isinstance(v, (int, float, Decimal, str)):
            raise Unkeepable(f"a {type(v).__name__}, not a number")
        try:
            f = float(v)
        except ValueError:
            raise Unkeepable("not a number") from None
        if isinstance(v, int) and int(f) != v:
            raise Unkeepable("a whole number too large for a double without rounding")
        if isinstance(v, (Decimal, str)) and math.isfinite(f) and Decimal(f) != Decimal(str(v).strip()):
            raise Unkeepable("not exactly a double")
        if not math.isfinite(f) and not limits.nonfinite_floats:
            raise Unkeepable("NaN and infinity have no value in the target")
        return f

    return convert


def _decimal(t: SqlType) -> Converter:
    scale = t.scale or 0
    whole = (t.precision - scale) if t.precision is not None else None
    step = Decimal(1).scaleb(-scale)

    def convert(v: Any) -> Any:
        if isinstance(v, bool) or not isinstance(v, (int, float, Decimal, str)):
            raise Unkeepable(f"a {type(v).__name__}, not a number")
        try:
            d = Decimal(repr(v)) if isinstance(v, float) else Decimal(str(v).strip())
        except InvalidOperation:
            raise Unkeepable("not a number") from None
        if not d.is_finite():
            raise Unkeepable("NaN and infinity have no decimal value")
        if t.precision is None:
            return d
        with localcontext() as ctx:
            ctx.prec = 200
            kept = d.quantize(step) if d.adjusted() < 150 else None
        if kept is None or kept != d:
            raise Unkeepable(f"more than {scale} digits after the point" if kept is not None else "too large")
        if whole is not None and d != 0 and d.adjusted() + 1 > whole:
            raise Unkeepable(f"more than {whole} digits before the point")
        return kept

    return convert


def _text(length: int | None, max_bytes: int | None, limits: Limits) -> Converter:
    nul_ok = limits.nul_in_text
    # Most values are short strings that fit: one type check and two length checks (the hot path of a move).
    quick = 10**9 if length is None else length
    if max_bytes is not None:
        quick = min(quick, max_bytes // 4)

    def convert(v: Any) -> Any:
        if type(v) is str and len(v) <= quick and (nul_ok or "\x00" not in v):
            return v
        if isinstance(v, bool) or not isinstance(v, (str, int, float, Decimal)):
            raise Unkeepable(f"a {type(v).__name__}, not text")
        s = v if isinstance(v, str) else (repr(v) if isinstance(v, float) else str(v))
        if length is not None and len(s) > length:
            raise Unkeepable(f"{len(s)} characters, longer than the column's {length}")
        if max_bytes is not None and len(s) * 4 > max_bytes and len(s.encode("utf-8")) > max_bytes:
            raise Unkeepable(f"{len(s.encode('utf-8'))} bytes, more than the column's {max_bytes}")
        if not limits.nul_in_text and "\x00" in s:
            raise Unkeepable("holds a NUL character, which the target's text cannot")
        return s

    return convert


def _json(limits: Limits) -> Converter:
    text = _text(None, limits.json_bytes, limits)

    def convert(v: Any) -> Any:
        s = text(v)
        if limits.json_parsed:
            try:
                json.loads(s)
            except ValueError:
                raise Unkeepable("not JSON, which the target's column parses") from None
        return s

    return convert


def _timestamp(limits: Limits) -> Converter:
    low, high = limits.years

    def convert(v: Any) -> Any:
        if isinstance(v, str):
            fraction = _FRACTION.search(v)
            if fraction is not None and len(fraction.group(1)) > 6:
                raise Unkeepable("finer than microseconds")
            try:
                v = dt.datetime.fromisoformat(v.strip())
            except ValueError:
                raise Unkeepable("not a date or time") from None
        elif isinstance(v, dt.date) and not isinstance(v, dt.datetime):
            v = dt.datetime(v.year, v.month, v.day)
        elif not isinstance(v, dt.datetime):
            raise Unkeepable(f"a {type(v).__name__}, not a date or time")
        if v.tzinfo is not None and not limits.zoned_timestamps:
            offset = v.utcoffset()
            if offset:
                raise Unkeepable("has a time zone offset, which the target's timestamp cannot keep")
            v = v.replace(tzinfo=None)
        if not low <= v.year <= high:
            raise Unkeepable(f"outside the years {low}..{high} of the target's timestamp")
        if limits.timestamps_as_text:
            return v.isoformat(sep=" ", timespec="microseconds")
        return v

    return convert


def _boolean(v: Any) -> Any:
    if isinstance(v, bool):
        return v
    if isinstance(v, int) and v in (0, 1):
        return bool(v)
    if isinstance(v, str) and v.strip().lower() in ("0", "1", "true", "false"):
        return v.strip().lower() in ("1", "true")
    raise Unkeepable("not a boolean (true, false, 1 or 0)")


def converter(t: SqlType, limits: Limits, *, nullable: bool = True) -> Converter:
    """The converter of a column of model type ``t`` on a target with ``limits``; NULL stays NULL
    where the column takes it (``nullable``)."""
    inner: Converter
    family = t.family
    if family == "integer":
        inner = _integer(limits.integer_bits)
    elif family == "bigint":
        inner = _integer(64)
    elif family == "float":
        inner = _float(limits)
    elif family == "decimal":
        inner = _decimal(t)
    elif family == "string":
        inner = _text(t.length, None, limits)
    elif family == "text":
        inner = _text(None, limits.text_bytes, limits)
    elif family == "json":
        inner = _json(limits)
    elif family == "timestamp":
        inner = _timestamp(limits)
    elif family == "boolean":
        inner = _boolean
    else:
        raise Unkeepable(f"type family {family} has no conversion")

    if nullable:
        return lambda v: None if v is None else inner(v)

    def convert(v: Any) -> Any:
        if v is None:
            raise Unkeepable("NULL, which the target's column does not take (NOT NULL or part of the primary key)")
        return inner(v)

    return convert
