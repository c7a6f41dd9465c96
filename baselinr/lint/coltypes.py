"""Compare a column's old and new SQL type: same, widen, narrow or unknown.

Used by the rules for narrowing type changes (all dialects), PostgreSQL
rewrites and MySQL's COPY algorithm. Pure; works on sqlglot ``DataType``s,
with the groups and widths of ``storage.families`` (the one place that maps
column types to families).
"""

from __future__ import annotations

from typing import Any

from sqlglot import exp

from baselinr.storage.families import CHARACTER, FAMILY_OF, REAL_WIDTH, TEXT_WIDTH, WHOLE_WIDTH

T = exp.DataType.Type
# sqlglot's type → width, from the one type-family module.
_INTS = {t: WHOLE_WIDTH[t.name] for t in T if t.name in WHOLE_WIDTH}
_FLOATS = {t: REAL_WIDTH[t.name] for t in T if t.name in REAL_WIDTH}
_STRINGS = {t for t in T if t.name in CHARACTER}
_TEXTS = {t: TEXT_WIDTH[t.name] for t in T if t.name in TEXT_WIDTH}
_DECIMALS = {t for t in T if FAMILY_OF.get(t.name) == "decimal"}

SAME, WIDEN, NARROW, UNKNOWN = "same", "widen", "narrow", "unknown"


def _params(dt: exp.DataType) -> list[int]:
    out = []
    for p in dt.expressions:
        value = p.this if isinstance(p, exp.DataTypeParam) else p
        if isinstance(value, exp.Literal) and not value.is_string and value.this.isdigit():
            out.append(int(value.this))
    return out


def _rank(table: dict[Any, int], old: exp.DataType, new: exp.DataType) -> str:
    o, n = table[old.this], table[new.this]
    return SAME if o == n else (WIDEN if n > o else NARROW)


def compare(old: exp.DataType | None, new: exp.DataType) -> str:
    """How ``new`` relates to ``old``; a change of family counts as narrowing."""
    if old is None:
        return UNKNOWN
    if old.sql() == new.sql():
        return SAME
    o, n = old.this, new.this
    if o in _INTS and n in _INTS:
        return _rank(_INTS, old, new)
    if o in _FLOATS and n in _FLOATS:
        return _rank(_FLOATS, old, new)
    if o in _TEXTS and n in _TEXTS:
        return _rank(_TEXTS, old, new)
    if o in _STRINGS and n in _TEXTS:
        return WIDEN
    if o in _STRINGS | set(_TEXTS) and n in _STRINGS:
        new_len = _params(new)
        if not new_len:  # VARCHAR without a length: unbounded where allowed
            return WIDEN
        old_len = _params(old) if o in _STRINGS else []
        if not old_len:
            return NARROW
        return SAME if new_len[0] == old_len[0] else (WIDEN if new_len[0] > old_len[0] else NARROW)
    if o in _DECIMALS and n in _DECIMALS:
        op, np_ = [*_params(old), 0, 0][:2], [*_params(new), 0, 0][:2]
        if np_[0] >= op[0] and np_[1] >= op[1] and np_[0] - np_[1] >= op[0] - op[1]:
            return WIDEN
        return NARROW
    return NARROW


def is_string(dt: exp.DataType | None) -> bool:
    return dt is not None and (dt.this in _STRINGS or dt.this in _TEXTS)


def same_scale_decimals(old: exp.DataType | None, new: exp.DataType) -> bool:
    if old is None or old.this not in _DECIMALS or new.this not in _DECIMALS:
        return False
    return [*_params(old), 0, 0][1] == [*_params(new), 0, 0][1]


def varchar_lengths(old: exp.DataType | None, new: exp.DataType) -> tuple[int, int] | None:
    """(old, new) lengths when both are VARCHAR-like with a length, else None."""
    if old is None or old.this not in _STRINGS or new.this not in _STRINGS:
        return None
    o, n = _params(old), _params(new)
    return (o[0], n[0]) if o and n else None
