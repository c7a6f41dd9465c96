"""Values converted between dialects by the model's column types (``backup.convert``), and the normal form
(``backup.normal``) that ``migrate move`` compares source and target under: pure, no database."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from baselinr.backup.codecs import MySQLCodec, PostgresCodec, SQLiteCodec
from baselinr.backup.convert import Limits, Unkeepable, converter
from baselinr.backup.normal import Digest, normalizer
from baselinr.backup.pg_copy import _RowsAsCopy
from baselinr.storage.model import SqlType

PG, MYSQL, SQLITE = PostgresCodec.limits, MySQLCodec.limits, SQLiteCodec.limits
INTEGER, BIGINT, FLOAT = SqlType("integer"), SqlType("bigint"), SqlType("float")
TEXT, JSON, TS, BOOL = SqlType("text"), SqlType("json"), SqlType("timestamp"), SqlType("boolean")


def convert(t: SqlType, limits: Limits, v: Any) -> Any:
    return converter(t, limits)(v)


@pytest.mark.parametrize(
    ("t", "limits", "value", "why"),
    [
        (SqlType("string", length=5), PG, "abcdef", "6 characters, longer than the column's 5"),
        (INTEGER, PG, 2**31, "outside the 32-bit range"),
        (INTEGER, PG, 1.5, "not a whole number"),
        (INTEGER, PG, "twelve", "not a whole number"),
        (BIGINT, SQLITE, 2**63, "outside the 64-bit range"),
        (FLOAT, MYSQL, float("nan"), "NaN and infinity"),
        (FLOAT, PG, 2**60 + 1, "too large for a double"),
        (FLOAT, PG, "abc", "not a number"),
        (TEXT, PG, "a\x00b", "NUL character"),
        (TEXT, MYSQL, "é" * 40_000, "80000 bytes, more than the column's 65535"),
        (TS, PG, "2024-01-02 03:04:05+05:30", "time zone offset"),
        (TS, PG, "yesterday", "not a date or time"),
        (TS, PG, "2024-01-02 03:04:05.1234567", "finer than microseconds"),
        (TS, MYSQL, "0999-01-01 00:00:00", "outside the years 1000..9999"),
        (BOOL, PG, 2, "not a boolean"),
        (JSON, Limits(json_parsed=True), "{not json", "not JSON"),
        (SqlType("decimal", precision=5, scale=2), PG, Decimal("1.234"), "more than 2 digits after the point"),
        (SqlType("decimal", precision=5, scale=2), PG, 1234, "more than 3 digits before the point"),
    ],
)
def test_a_value_the_target_cannot_keep_exactly_is_refused_with_the_reason(
    t: SqlType, limits: Limits, value: Any, why: str
) -> None:
    with pytest.raises(Unkeepable, match=why.replace("(", r"\(").replace(".", r"\.")):
        convert(t, limits, value)


@pytest.mark.parametrize(
    ("t", "limits", "value", "kept"),
    [
        (INTEGER, PG, 7, 7),
        (INTEGER, PG, True, 1),
        (INTEGER, PG, 3.0, 3),
        (BIGINT, PG, 2**62, 2**62),
        (FLOAT, PG, 1, 1.0),
        (FLOAT, PG, float("inf"), float("inf")),
        (SqlType("string", length=3), PG, 123, "123"),
        (TEXT, MYSQL, "日本" * 10_000, "日本" * 10_000),
        (JSON, PG, '{"a": 1}', '{"a": 1}'),
        (TS, PG, "2024-01-02 03:04:05.123456", dt.datetime(2024, 1, 2, 3, 4, 5, 123456)),
        (TS, PG, "2024-01-02T03:04:05+00:00", dt.datetime(2024, 1, 2, 3, 4, 5)),
        (TS, PG, dt.date(2024, 1, 2), dt.datetime(2024, 1, 2)),
        (TS, SQLITE, dt.datetime(2024, 1, 2, 3, 4, 5), "2024-01-02 03:04:05.000000"),
        (BOOL, PG, 1, True),
        (BOOL, PG, 0, False),
        (SqlType("decimal", precision=5, scale=2), PG, 1.5, Decimal("1.50")),
        (TEXT, PG, None, None),
    ],
)
def test_a_value_the_target_can_keep_is_converted(t: SqlType, limits: Limits, value: Any, kept: Any) -> None:
    assert convert(t, limits, value) == kept


@pytest.mark.parametrize(
    ("t", "one", "other"),
    [
        (BOOL, 1, True),
        (INTEGER, 5, 5.0),
        (TS, "2024-01-02 03:04:05", dt.datetime(2024, 1, 2, 3, 4, 5)),
        (TS, "2024-01-02 08:34:05+05:30", dt.datetime(2024, 1, 2, 3, 4, 5)),
        (TS, dt.date(2024, 1, 2), dt.datetime(2024, 1, 2)),
        (JSON, '{"b": [1, 2.5], "a": null}', '{"a":null,"b":[1,2.5]}'),
        (JSON, '{"a": 1}', {"a": 1}),
        (SqlType("decimal", precision=6, scale=4), Decimal("12.3400"), 12.34),
        (FLOAT, 0.1, 0.1),
    ],
)
def test_what_differs_only_in_a_dialects_spelling_has_one_normal_form(t: SqlType, one: Any, other: Any) -> None:
    normal = normalizer(t)
    assert normal(one) == normal(other)


@pytest.mark.parametrize(
    ("t", "one", "other"),
    [
        (BOOL, 1, 0),
        (TS, "2024-01-02 03:04:05.000001", "2024-01-02 03:04:05"),
        (JSON, '{"a": 1}', '{"a": 2}'),
        (TEXT, "a ", "a"),
        (TEXT, "", None),
        (FLOAT, 0.1, 0.1000001),
    ],
)
def test_different_values_have_different_normal_forms(t: SqlType, one: Any, other: Any) -> None:
    normal = normalizer(t)
    assert normal(one) != normal(other)


def test_a_tables_digest_ignores_row_order_and_counts_duplicates() -> None:
    rows = [(1, "a"), (2, "b"), (2, "b")]
    digests = []
    for order in (rows, list(reversed(rows)), rows[:2]):
        d = Digest([INTEGER, TEXT])
        for r in order:
            d.add(r)
        digests.append((d.rows, d.hexdigest))
    assert digests[0] == digests[1]
    assert digests[0] != digests[2]


def test_rows_render_as_postgres_copy_text_with_every_escape() -> None:
    rows = [
        (1, "tab\there", None, True, 1.5, dt.datetime(2024, 1, 2, 3, 4, 5, 6)),
        (2, "back\\slash\nline\r", "\\N", False, float("nan"), dt.date(2024, 1, 2)),
    ]
    stream = _RowsAsCopy(rows)
    assert not stream.empty()
    text = b"".join(iter(lambda: stream.read(7), b"")).decode()
    assert text == (
        "1\ttab\\there\t\\N\tt\t1.5\t2024-01-02 03:04:05.000006\n"
        "2\tback\\\\slash\\nline\\r\t\\\\N\tf\tNaN\t2024-01-02\n"
    )
    assert _RowsAsCopy([]).empty()
