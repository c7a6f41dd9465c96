"""Every lint rule on every dialect, offline: SQL in, (rule, severity) out."""

from __future__ import annotations

import pytest

from baselinr.lint import ERROR, WARNING, Unit, lint
from baselinr.storage.dialects import DIALECT_NAMES, dialect_for
from baselinr.storage.splitter import split_sql

DIALECTS = DIALECT_NAMES
HISTORY = [
    "CREATE TABLE baselinr_runs (run_id VARCHAR(36), status VARCHAR(20), row_count INTEGER)",
    "CREATE INDEX idx_runs_status ON baselinr_runs (status)",
    "CREATE TABLE baselinr_lineage (id INTEGER, provider VARCHAR(50))",
]


def found(dialect: str, sql: str, notes: str = "") -> list[tuple[str, str]]:
    statements = split_sql(sql, dialect_for(dialect).split_rules)
    report = lint([Unit(12, "v12_test.py", statements, notes)], dialect, HISTORY)
    return [(f.rule, f.severity) for f in report.findings]


# --- destructive changes, every dialect ---------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
def test_destructive_rules(dialect: str) -> None:
    assert found(dialect, "DROP TABLE baselinr_runs") == [("drop-table", ERROR)]
    assert ("drop-column", ERROR) in found(dialect, "ALTER TABLE baselinr_runs DROP COLUMN row_count")
    assert found(dialect, "TRUNCATE TABLE baselinr_runs") == [("truncate", ERROR)]
    assert found(dialect, "DELETE FROM baselinr_runs") == [("delete-all-rows", ERROR)]
    assert found(dialect, "DELETE FROM baselinr_runs WHERE status = 'x'") == []
    assert ("not-null-without-default", ERROR) in found(dialect, "ALTER TABLE baselinr_runs ADD COLUMN c INTEGER NOT NULL")
    assert found(dialect, "ALTER TABLE baselinr_runs ADD COLUMN c INTEGER DEFAULT 0 NOT NULL") == []
    assert found(dialect, "ALTER TABLE baselinr_runs ADD COLUMN c VARCHAR(100) DEFAULT 'x'") == []


@pytest.mark.parametrize("dialect", DIALECTS)
def test_tables_created_in_the_same_migration_hold_no_rows(dialect: str) -> None:
    sql = (
        "CREATE TABLE baselinr_new (a INTEGER);\n"
        "ALTER TABLE baselinr_new ADD COLUMN b INTEGER NOT NULL DEFAULT 1;\n"
        "DROP TABLE baselinr_new"
    )
    assert found(dialect, sql) == []


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_table_rebuild_is_not_a_drop(dialect: str) -> None:
    sql = (
        "CREATE TABLE baselinr_lineage__rebuild (id INTEGER, provider VARCHAR(100));\n"
        "INSERT INTO baselinr_lineage__rebuild (id, provider) SELECT id, provider FROM baselinr_lineage;\n"
        "DROP TABLE baselinr_lineage;\n"
        "ALTER TABLE baselinr_lineage__rebuild RENAME TO baselinr_lineage"
    )
    rules = [r for r, _ in found(dialect, sql)]
    assert "drop-table" not in rules
    # Without the copy, the same drop loses the rows.
    assert ("drop-table", ERROR) in found(dialect, sql.replace("SELECT id, provider FROM baselinr_lineage", "VALUES (1, 'x')"))


@pytest.mark.parametrize("dialect", DIALECTS)
def test_copy_then_rename_column_is_a_warning(dialect: str) -> None:
    sql = (
        "ALTER TABLE baselinr_runs ADD COLUMN row_count_new BIGINT;\n"
        "UPDATE baselinr_runs SET row_count_new = row_count;\n"
        "ALTER TABLE baselinr_runs DROP COLUMN row_count;\n"
        "ALTER TABLE baselinr_runs RENAME COLUMN row_count_new TO row_count"
    )
    result = found(dialect, sql)
    assert ("drop-column", WARNING) in result and ("drop-column", ERROR) not in result
    assert ("update-all-rows", WARNING) in result


@pytest.mark.parametrize("dialect", DIALECTS)
def test_renames_break_running_readers(dialect: str) -> None:
    assert found(dialect, "ALTER TABLE baselinr_runs RENAME COLUMN status TO state") == [("rename-column", WARNING)]
    assert found(dialect, "ALTER TABLE baselinr_lineage RENAME TO baselinr_lineage_old") == [("rename-table", WARNING)]
    # Renaming a table built by this migration is the last step of a rebuild.
    assert found(dialect, "CREATE TABLE baselinr_x (a INTEGER);\nALTER TABLE baselinr_x RENAME TO baselinr_y") == []


def _type_change(dialect: str, column: str, new_type: str) -> str:
    if dialect == "mysql":
        return f"ALTER TABLE baselinr_runs MODIFY COLUMN {column} {new_type}"
    if dialect == "snowflake":
        return f"ALTER TABLE baselinr_runs ALTER COLUMN {column} SET DATA TYPE {new_type}"
    return f"ALTER TABLE baselinr_runs ALTER COLUMN {column} TYPE {new_type}"


@pytest.mark.parametrize("dialect", DIALECTS)
def test_narrowing_type_change(dialect: str) -> None:
    assert ("narrowing-type-change", ERROR) in found(dialect, _type_change(dialect, "status", "VARCHAR(10)"))
    assert ("narrowing-type-change", ERROR) in found(dialect, _type_change(dialect, "status", "INTEGER"))
    assert "narrowing-type-change" not in [r for r, _ in found(dialect, _type_change(dialect, "status", "VARCHAR(200)"))]
    # A column the history does not know: a warning to check by hand.
    assert ("narrowing-type-change", WARNING) in found(dialect, _type_change(dialect, "unknown_col", "VARCHAR(10)"))


@pytest.mark.parametrize("dialect", DIALECTS)
def test_unparsed_is_a_warning(dialect: str) -> None:
    assert found(dialect, "FROBNICATE THE baselinr_runs TABLE") == [("unparsed", WARNING)]


# --- PostgreSQL -------------------------------------------------------------------


def test_pg_index_not_concurrent() -> None:
    assert found("postgres", "CREATE INDEX i ON baselinr_runs (row_count)") == [("pg-index-not-concurrent", ERROR)]
    assert found("postgres", "CREATE INDEX i ON baselinr_lineage (provider)") == [("pg-index-not-concurrent", WARNING)]
    assert found("postgres", "CREATE INDEX CONCURRENTLY i ON baselinr_runs (row_count)") == []
    for other in ("mysql", "sqlite"):
        assert found(other, "CREATE INDEX i ON baselinr_runs (row_count)") == []


def test_pg_concurrently_in_migration() -> None:
    alone = "CREATE INDEX CONCURRENTLY i ON baselinr_runs (row_count)"
    assert found("postgres", alone) == []
    mixed = "ALTER TABLE baselinr_runs ADD COLUMN n INTEGER;\n" + alone
    assert found("postgres", mixed) == [("pg-concurrently-in-migration", WARNING)]


def test_pg_type_change_rewrite() -> None:
    assert found("postgres", _type_change("postgres", "row_count", "BIGINT")) == [("pg-type-change-rewrite", ERROR)]
    assert found("postgres", _type_change("postgres", "status", "VARCHAR(200)")) == []
    assert found("postgres", _type_change("postgres", "status", "TEXT")) == []


def test_pg_volatile_default() -> None:
    # UUID is none of the model's types: the model names the statement it cannot follow too.
    assert found("postgres", "ALTER TABLE baselinr_runs ADD COLUMN c UUID DEFAULT gen_random_uuid()") == [
        ("pg-volatile-default", ERROR),
        ("model-unfollowed", WARNING),
    ]
    assert found("postgres", "ALTER TABLE baselinr_runs ADD COLUMN c FLOAT DEFAULT random()") == [("pg-volatile-default", ERROR)]
    assert found("postgres", "ALTER TABLE baselinr_runs ADD COLUMN c BIGSERIAL") == [("pg-volatile-default", ERROR)]
    # now() is stable: since PostgreSQL 11 it is evaluated once, no rewrite.
    assert found("postgres", "ALTER TABLE baselinr_runs ADD COLUMN c TIMESTAMP DEFAULT now()") == []


def test_pg_constraint_not_valid() -> None:
    fk = "ALTER TABLE baselinr_lineage ADD CONSTRAINT fk FOREIGN KEY (id) REFERENCES baselinr_other (id)"
    assert found("postgres", fk) == [("pg-constraint-not-valid", WARNING)]
    assert found("postgres", fk + " NOT VALID") == []
    ck = "ALTER TABLE baselinr_runs ADD CONSTRAINT ck CHECK (row_count >= 0)"
    assert found("postgres", ck) == [("pg-constraint-not-valid", ERROR)]


def test_pg_unique_constraint() -> None:
    assert found("postgres", "ALTER TABLE baselinr_runs ADD CONSTRAINT uq UNIQUE (run_id)") == [("pg-unique-constraint", ERROR)]
    assert found("postgres", "ALTER TABLE baselinr_lineage ADD PRIMARY KEY (id)") == [("pg-unique-constraint", WARNING)]
    # The safe halves of the advice are opaque to sqlglot but known: no unparsed warning.
    assert found("postgres", "ALTER TABLE baselinr_runs ADD CONSTRAINT uq UNIQUE USING INDEX idx_runs_u") == []
    assert found("postgres", "ALTER TABLE baselinr_runs VALIDATE CONSTRAINT fk_run") == []


def test_known_postgres_commands_are_not_unparsed() -> None:
    assert found("postgres", "ALTER SEQUENCE baselinr_x_id_seq RENAME TO baselinr_y_id_seq") == []
    assert found("postgres", "ALTER SEQUENCE baselinr_x_id_seq RESTART WITH 1") == [("unparsed", WARNING)]


def test_pg_drop_index_not_concurrent() -> None:
    assert found("postgres", "DROP INDEX idx_runs_status") == [("pg-drop-index-not-concurrent", ERROR)]  # on baselinr_runs
    assert found("postgres", "DROP INDEX idx_unknown") == [("pg-drop-index-not-concurrent", WARNING)]
    assert found("postgres", "DROP INDEX CONCURRENTLY idx_runs_status") == []
    assert found("postgres", "CREATE TABLE baselinr_x (a INTEGER);\nCREATE INDEX i_x ON baselinr_x (a);\nDROP INDEX i_x") == []


def test_pg_set_not_null() -> None:
    assert found("postgres", "ALTER TABLE baselinr_runs ALTER COLUMN status SET NOT NULL") == [("pg-set-not-null", ERROR)]


# --- MySQL / MariaDB ----------------------------------------------------------------


def test_mysql_copy_algorithm() -> None:
    assert ("mysql-copy-algorithm", ERROR) in found("mysql", "ALTER TABLE baselinr_runs MODIFY COLUMN row_count BIGINT")
    # Reordering a column keeps its type: INPLACE.
    assert found("mysql", "ALTER TABLE baselinr_runs MODIFY COLUMN status VARCHAR(20) AFTER run_id") == []
    assert found("mysql", "ALTER TABLE baselinr_runs MODIFY COLUMN row_count BIGINT, ALGORITHM=INPLACE") == []
    assert found("mysql", "ALTER TABLE baselinr_runs DROP PRIMARY KEY") == [("mysql-copy-algorithm", ERROR)]
    # VARCHAR(20) → VARCHAR(40) keeps a 1-byte length prefix in utf8mb4 (INPLACE); → VARCHAR(100) may not;
    # → TEXT is a new type.
    assert found("mysql", "ALTER TABLE baselinr_runs MODIFY COLUMN status VARCHAR(40)") == []
    assert found("mysql", "ALTER TABLE baselinr_runs MODIFY COLUMN status VARCHAR(100)") == [("mysql-copy-algorithm", WARNING)]
    assert found("mysql", "ALTER TABLE baselinr_runs MODIFY COLUMN status TEXT") == [("mysql-copy-algorithm", ERROR)]
    assert found("mysql", "ALTER TABLE baselinr_lineage DROP PRIMARY KEY") == [("mysql-copy-algorithm", WARNING)]


@pytest.mark.parametrize(("dialect", "rule"), [("mysql", "mysql-implicit-commit"), ("snowflake", "snowflake-implicit-commit")])
def test_implicit_commit(dialect: str, rule: str) -> None:
    mixed = "ALTER TABLE baselinr_runs ADD COLUMN c INTEGER;\nUPDATE baselinr_runs SET c = 1 WHERE c IS NULL"
    assert found(dialect, mixed) == [(rule, WARNING)]
    assert found(dialect, "CREATE TABLE baselinr_a (a INTEGER);\nALTER TABLE baselinr_a ADD COLUMN b INTEGER") == []


@pytest.mark.parametrize("dialect", ["postgres", "sqlite"])
def test_transactional_dialects_have_no_implicit_commit(dialect: str) -> None:
    assert found(dialect, "ALTER TABLE baselinr_runs ADD COLUMN c INTEGER;\nUPDATE baselinr_runs SET c = 1 WHERE c IS NULL") == []


# --- SQLite -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "ALTER TABLE baselinr_runs ADD COLUMN c TIMESTAMP DEFAULT CURRENT_TIMESTAMP",
        "ALTER TABLE baselinr_runs ADD CONSTRAINT ck CHECK (row_count > 0)",
        "ALTER TABLE baselinr_runs ADD COLUMN c INTEGER UNIQUE",
        "ALTER TABLE baselinr_runs ALTER COLUMN status TYPE VARCHAR(200)",
        "ALTER TABLE baselinr_runs DROP COLUMN status",  # indexed by idx_runs_status
    ],
)
def test_sqlite_table_rebuild(sql: str) -> None:
    assert ("sqlite-table-rebuild", ERROR) in found("sqlite", sql)
    assert "sqlite-table-rebuild" not in [r for r, _ in found("postgres", sql)]


def test_sqlite_in_place_changes() -> None:
    assert found("sqlite", "ALTER TABLE baselinr_runs ADD COLUMN c VARCHAR(10) DEFAULT 'x'") == []
    assert found("sqlite", "ALTER TABLE baselinr_runs RENAME COLUMN status TO state") == [("rename-column", WARNING)]
    assert found("sqlite", "CREATE TABLE baselinr_x (a INTEGER);\nALTER TABLE baselinr_x ADD COLUMN b INTEGER NOT NULL") == [
        ("sqlite-table-rebuild", ERROR)
    ]


# --- acknowledgements -----------------------------------------------------------------


def test_acknowledged_findings_are_listed_and_do_not_fail() -> None:
    sql = "-- baselinr-lint: ignore drop-table the table was replaced by baselinr_runs_v2 in v10\nDROP TABLE baselinr_runs"
    report = lint([Unit(12, "v12.sql", split_sql(sql), sql)], "postgres", HISTORY)
    assert [(f.rule, f.acknowledged, f.reason) for f in report.findings] == [
        ("drop-table", True, "the table was replaced by baselinr_runs_v2 in v10")
    ]
    assert report.ok
    other = lint([Unit(13, "v13.sql", ["DROP TABLE baselinr_lineage"], "")], "postgres", HISTORY)
    assert not other.ok  # an acknowledgement covers its own migration only


def test_acknowledgement_needs_a_reason_and_a_known_rule() -> None:
    notes = '"""# baselinr-lint: ignore drop-table\nbaselinr-lint: ignore no-such-rule because\n"""'
    report = lint([Unit(12, "v12.py", ["DROP TABLE baselinr_runs"], notes)], "postgres", HISTORY)
    assert sorted((f.rule, f.severity, f.acknowledged) for f in report.findings) == [
        ("ack-unknown-rule", WARNING, False),
        ("ack-without-reason", ERROR, False),
        ("drop-table", ERROR, False),
    ]
    assert not report.ok


# --- syntax of another dialect, Snowflake indexes -------------------------------------


def test_auto_increment_fails_on_postgres_and_sqlite() -> None:
    create = "CREATE TABLE baselinr_new (id INTEGER PRIMARY KEY AUTO_INCREMENT, name VARCHAR(10))"
    assert found("postgres", create) == [("dialect-syntax", ERROR)]
    assert found("sqlite", create) == [("dialect-syntax", ERROR)]
    assert found("mysql", create) == []
    # SQLite's own spelling, and the word inside a string or a comment, are fine.
    assert found("sqlite", create.replace("AUTO_INCREMENT", "AUTOINCREMENT")) == []
    assert found("sqlite", "CREATE TABLE baselinr_new (id INTEGER PRIMARY KEY, s TEXT DEFAULT 'AUTO_INCREMENT')") == []


def test_auto_increment_is_not_snowflakes_spelling() -> None:
    create = "CREATE TABLE baselinr_new (id INTEGER PRIMARY KEY AUTO_INCREMENT, name VARCHAR(10))"
    assert found("snowflake", create) == [("dialect-syntax", WARNING)]
    # Snowflake's documented spellings, and the word in a comment, are fine.
    assert found("snowflake", create.replace("AUTO_INCREMENT", "AUTOINCREMENT")) == []
    assert found("snowflake", create.replace("AUTO_INCREMENT", "IDENTITY")) == []
    assert found("snowflake", "-- not AUTO_INCREMENT\nCREATE TABLE baselinr_new (id INTEGER)") == []


def test_snowflake_has_no_secondary_indexes() -> None:
    assert found("snowflake", "CREATE INDEX i ON baselinr_runs (status)") == [("snowflake-no-index", ERROR)]
