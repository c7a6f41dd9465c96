"""The guide's own examples (``docs/MIGRATION_GUIDE.md``, "Common Migration
Patterns"), linted on each dialect: the findings a careful reviewer gives.

Each example is read from the guide itself: the ``python`` code blocks of the
section are parsed as Python and their ``up_sql`` taken, then linted as the
next version on top of this code's latest schema (the history ``migrate
lint --config`` would give), so the linter knows the tables and their rows.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

from baselinr.lint import ERROR, WARNING, Unit, lint
from baselinr.storage.dialects import DIALECT_NAMES, dialect_for
from baselinr.storage.migrations.chain import load_chain
from baselinr.storage.splitter import split_sql

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "MIGRATION_GUIDE.md"
MIXED = {"mysql": "mysql-implicit-commit", "snowflake": "snowflake-implicit-commit"}


@cache
def examples() -> dict[str, str]:
    """Title of each subsection -> the ``up_sql`` of its ``python`` code block."""
    text = GUIDE.read_text(encoding="utf-8")
    section = text.split("\n## Common Migration Patterns\n", 1)[1].split("\n## ", 1)[0]
    found = {}
    for part in re.split(r"^### ", section, flags=re.M)[1:]:
        title = part.splitlines()[0].strip()
        blocks = re.findall(r"^```python\n(.*?)^```", part, re.S | re.M)
        assert len(blocks) == 1, title
        assigned = {
            target.id: node.value.value
            for node in ast.parse(blocks[0]).body
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        assert isinstance(assigned.get("up_sql"), str), title
        found[title] = assigned["up_sql"]
    return found


def expected(title: str, dialect: str) -> list[tuple[str, str]]:
    """What a careful reviewer says about each example, per dialect, and why."""
    if title == "Adding a Column":
        # A nullable column with a constant default: metadata only on PostgreSQL 11+, INSTANT on
        # MySQL 8 / MariaDB 10.3+, a plain ADD COLUMN on SQLite and Snowflake. Nothing to say.
        return []
    if title == "Adding an Index":
        return {
            # baselinr_runs grows with every run: a plain CREATE INDEX blocks the profiler's writes
            # for the whole build; CONCURRENTLY does not.
            "postgres": [("pg-index-not-concurrent", ERROR)],
            # Snowflake's standard tables have no indexes: the statement fails.
            "snowflake": [("snowflake-no-index", ERROR)],
            # MySQL builds a secondary index in place with concurrent writes; SQLite just builds it.
        }.get(dialect, [])
    if title == "Adding a New Table":
        # A new table holds no rows, so its index is no locking hazard anywhere; only the
        # AUTO_INCREMENT spelling, MySQL's, is wrong elsewhere.
        return {
            "postgres": [("dialect-syntax", ERROR)],  # PostgreSQL has no AUTO_INCREMENT
            "sqlite": [("dialect-syntax", ERROR)],  # SQLite rejects it (its keyword is AUTOINCREMENT)
            # Snowflake documents AUTOINCREMENT | IDENTITY only (a warning: not shown failing here),
            # and the CREATE INDEX fails there.
            "snowflake": [("dialect-syntax", WARNING), ("snowflake-no-index", ERROR)],
        }.get(dialect, [])
    assert title == "Modifying Column Type (Breaking)"
    # Copy into a new column, drop the old one, rename: no data is lost, so the drop is a warning,
    # but the backfill rewrites every row of baselinr_runs. Where DDL commits implicitly (MySQL,
    # Snowflake) the steps are not atomic: rows the profiler writes between the UPDATE and the
    # DROP lose their row_count, and readers see the column missing until the RENAME.
    found = [("update-all-rows", WARNING), ("drop-column", WARNING)]
    return [*found, (MIXED[dialect], WARNING)] if dialect in MIXED else found


@cache
def history(dialect: str) -> tuple[str, ...]:
    """The statements of this code's migrations, as ``migrate lint`` sees the applied versions."""
    d = dialect_for(dialect)
    return tuple(s for m in load_chain().migrations.values() for s in m.up_statements(d))


def test_the_guide_has_the_four_patterns() -> None:
    assert list(examples()) == ["Adding a Column", "Adding an Index", "Adding a New Table", "Modifying Column Type (Breaking)"]
    assert "UPDATE baselinr_runs" in examples()["Modifying Column Type (Breaking)"]


@pytest.mark.parametrize("dialect", DIALECT_NAMES)
@pytest.mark.parametrize("title", list(examples()))
def test_guide_example_findings(title: str, dialect: str) -> None:
    statements = split_sql(examples()[title], dialect_for(dialect).split_rules)
    version = load_chain().latest + 1
    report = lint([Unit(version, title, statements)], dialect, history(dialect))
    assert sorted((f.rule, f.severity) for f in report.findings) == sorted(expected(title, dialect))
    # Every finding points at the statement it is about.
    assert all(1 <= f.statement_index <= len(statements) for f in report.findings)
