"""``storage.families``: the one map from a type's spelling to the model's family, and the closed
list of spellings a restore may write for a column the backup kept."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from baselinr.storage.families import FAMILY_OF, accepts, closed_spelling, sql_type, type_family
from baselinr.storage.model import SqlType

# Every word closed_spelling may write: the closed list's base names, digits and the rests it allows.
_WORDS = {w for name in FAMILY_OF for w in name.split()} | {"TINYINT", "WITH", "WITHOUT", "TIME", "ZONE", "PRECISION", "UNSIGNED"}


@pytest.mark.parametrize(
    ("spelled", "written"),
    [
        ("timestamp with time zone", "TIMESTAMP WITH TIME ZONE"),
        ("TIMESTAMP(3) WITHOUT TIME ZONE", "TIMESTAMP(3) WITHOUT TIME ZONE"),
        ("numeric( 10 ,4 )", "NUMERIC(10, 4)"),
        ("DATETIME(6)", "DATETIME(6)"),
        ("VARIANT", "VARIANT"),
        ("UUID", None),
        ("BYTEA", None),
        ("VARCHAR(36)); DROP TABLE victim; --", None),
        ("INTEGER NOT NULL DEFAULT 1", None),
        ("INTEGER\nDROP", None),
    ],
)
def test_closed_spelling(spelled: str, written: str | None) -> None:
    assert closed_spelling(spelled) == written


@given(st.text(max_size=60))
def test_closed_spelling_writes_only_words_of_the_closed_list(spelled: str) -> None:
    written = closed_spelling(spelled)
    if written is not None:
        assert re.fullmatch(r"[A-Z][A-Z0-9_ ]*(\(\d+(, \d+)?\))?[A-Z ]*", written), written
        assert set(re.findall(r"[A-Z][A-Z0-9_]*", written)) <= _WORDS, written


def test_families_of_spellings_and_model_types() -> None:
    assert type_family("NUMBER(38, 0)") == ("bigint", None)  # how Snowflake spells INTEGER
    assert type_family("TINYINT(1)") == ("boolean", None)
    assert type_family("VARCHAR") == ("text", None)
    assert sql_type("DECIMAL", 10, 4) == SqlType("decimal", precision=10, scale=4)
    assert sql_type("DECIMAL", 10) == SqlType("decimal", precision=10, scale=0)
    assert sql_type("VARCHAR", 20) == SqlType("string", length=20)
    assert sql_type("UUID") is None
    assert accepts(SqlType("string", length=50), "string", 100)
    assert not accepts(SqlType("string", length=50), "string", 20)  # would truncate on the way back
    assert accepts(SqlType("decimal", precision=10, scale=0), "bigint")
    assert not accepts(SqlType("timestamp"), "text")
