"""Hostile SQL never crashes lint: any text, on every dialect, gives a report
whose findings carry known rule ids and severities (property-tested)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from baselinr.lint import ERROR, WARNING, Unit, lint
from baselinr.lint.rules import RULE_IDS
from baselinr.storage.dialects import DIALECT_NAMES

DIALECTS = DIALECT_NAMES
FRAGMENTS = [
    "ALTER TABLE",
    "baselinr_runs",
    "ADD COLUMN",
    "DROP COLUMN",
    "DROP TABLE",
    "CREATE INDEX",
    "CONCURRENTLY",
    "ON",
    "(",
    ")",
    ",",
    "NOT NULL",
    "DEFAULT",
    "now()",
    "random()",
    "TYPE",
    "VARCHAR(10)",
    "BIGINT",
    "RENAME TO",
    "x",
    "ALTER COLUMN",
    "MODIFY COLUMN",
    "TRUNCATE",
    "UPDATE",
    "SET",
    "=",
    "1",
    "'",
    '"',
    "`",
    "$$",
    "--",
    "/*",
    "*/",
    "ADD CONSTRAINT",
    "CHECK",
    "FOREIGN KEY",
    "REFERENCES",
    "NOT VALID",
    "UNIQUE",
    "PRIMARY KEY",
    "AUTO_INCREMENT",
    "DELETE FROM",
    "WHERE",
    "INSERT INTO",
    "SELECT",
    "FROM",
    "baselinr-lint: ignore",
    "drop-table",
    "\n",
]
statements = st.one_of(
    st.text(max_size=200),
    st.lists(st.sampled_from(FRAGMENTS), max_size=14).map(" ".join),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dialect=st.sampled_from(DIALECTS), sqls=st.lists(statements, min_size=1, max_size=4), notes=st.text(max_size=80))
def test_any_text_gives_a_report(dialect: str, sqls: list[str], notes: str) -> None:
    report = lint(
        [Unit(2, "fuzz.sql", sqls, notes + "\n" + "\n".join(sqls))], dialect, ["CREATE TABLE baselinr_runs (x INTEGER)"]
    )
    for f in report.findings:
        assert f.rule in RULE_IDS
        assert f.severity in (ERROR, WARNING)
        assert 0 <= f.statement_index <= len(sqls)
    assert report.ok == (not any(f.severity == ERROR and not f.acknowledged for f in report.findings))
