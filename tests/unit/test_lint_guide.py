"""The guide's own examples (``docs/MIGRATION_GUIDE.md``, "Common Migration
Patterns"), linted on each dialect: the findings a careful reviewer gives."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from baselinr.lint import ERROR, WARNING, Unit, lint
from baselinr.storage.dialects import DIALECT_NAMES, dialect_for
from baselinr.storage.splitter import split_sql

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "MIGRATION_GUIDE.md"
MIXED = {"mysql": "mysql-implicit-commit", "snowflake": "snowflake-implicit-commit"}


def examples() -> dict[str, str]:
    text = GUIDE.read_text(encoding="utf-8")
    section = text.split("## Common Migration Patterns", 1)[1].split("\n---", 1)[0]
    found = {}
    for block in section.split("\n### ")[1:]:
        title = block.splitlines()[0].strip()
        match = re.search(r'up_sql="""(.*?)"""', block, re.S)
        assert match, title
        found[title] = match.group(1)
    return found


def expected(title: str, dialect: str) -> list[tuple[str, str]]:
    if title == "Adding a Column":
        return []  # a constant default: no rewrite, INSTANT on MySQL
    if title == "Adding an Index":
        return {
            "postgres": [("pg-index-not-concurrent", ERROR)],  # baselinr_runs is one of the big tables
            "snowflake": [("snowflake-no-index", ERROR)],
        }.get(dialect, [])
    if title == "Adding a New Table":
        return {
            "postgres": [("dialect-syntax", ERROR)],  # AUTO_INCREMENT is MySQL's
            "sqlite": [("dialect-syntax", ERROR)],
            "snowflake": [("snowflake-no-index", ERROR)],
        }.get(dialect, [])
    assert title == "Modifying Column Type (Breaking)"
    # Copy into a new column, drop the old one, rename: data is kept, but the backfill touches every row.
    found = [("update-all-rows", WARNING), ("drop-column", WARNING)]
    return [*found, (MIXED[dialect], WARNING)] if dialect in MIXED else found


def test_the_guide_has_the_four_patterns() -> None:
    assert list(examples()) == ["Adding a Column", "Adding an Index", "Adding a New Table", "Modifying Column Type (Breaking)"]


@pytest.mark.parametrize("dialect", DIALECT_NAMES)
@pytest.mark.parametrize("title", list(examples()))
def test_guide_example_findings(title: str, dialect: str) -> None:
    statements = split_sql(examples()[title], dialect_for(dialect).split_rules)
    report = lint([Unit(2, title, statements)], dialect)
    assert sorted((f.rule, f.severity) for f in report.findings) == sorted(expected(title, dialect))
