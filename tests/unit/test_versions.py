"""Baselinr's storage history v1..v11 as data: the chain is whole, every
version is reversible, keys fit InnoDB under utf8mb4, and each dialect gets
DDL in its own spelling (none of the profiler's known cross-dialect defects)."""

from __future__ import annotations

import pytest

from baselinr.storage import schema_version
from baselinr.storage.dialects import DIALECT_NAMES, dialect_for
from baselinr.storage.migrations.chain import load_chain
from baselinr.storage.migrations.versions import ALL_MIGRATIONS
from baselinr.storage.model import SqlType, Table

INNODB_MAX_KEY_BYTES = 3072
UTF8MB4 = 4
EXPECTED_TABLES = {
    2: {"baselinr_schema_registry"},
    3: {"baselinr_expectations"},
    4: {"baselinr_lineage"},
    5: {"baselinr_column_lineage"},
    6: {"baselinr_pipeline_runs", "baselinr_code_deployments", "baselinr_rca_results"},
    8: {"baselinr_validation_results"},
    9: {"baselinr_quality_scores"},
    10: {"baselinr_column_quality_scores"},
}


def test_chain_is_whole_and_code_version_is_the_highest() -> None:
    chain = load_chain()
    assert sorted(chain.migrations) == list(range(1, len(ALL_MIGRATIONS) + 1))
    assert schema_version.CURRENT_SCHEMA_VERSION == max(chain.migrations) == 11
    assert set(schema_version.VERSION_HISTORY) == set(chain.migrations)


def test_each_version_adds_the_tables_of_baselinrs_history() -> None:
    chain = load_chain()
    for version in range(2, 11):
        before = set(chain.model_at(version - 1, "postgres")[0].tables)
        after = set(chain.model_at(version, "postgres")[0].tables)
        assert after - before == EXPECTED_TABLES.get(version, set()), version
    rca = chain.model_at(7, "postgres")[0].tables["baselinr_rca_results"]
    assert rca.column("database_name") is not None
    assert chain.model_at(6, "postgres")[0].tables["baselinr_rca_results"].column("database_name") is None


def test_every_migration_is_model_operations_with_a_down() -> None:
    for m in ALL_MIGRATIONS:
        assert m.operations and m.up_sql is None and m.up_python is None, m.version
        assert m.has_down and m.declares_model, m.version


def _key_bytes(table: Table, columns: tuple[str, ...]) -> int:
    total = 0
    for name in columns:
        col = table.column(name.split()[0])
        assert col is not None, f"{table.name}.{name}"
        t: SqlType = col.type
        assert t.family not in ("text", "json"), f"{table.name}.{name}: MySQL cannot key a TEXT column"
        total += UTF8MB4 * (t.length or 0) if t.family == "string" else 8
    return total


def test_every_key_and_index_fits_innodb_under_utf8mb4() -> None:
    model, _ = load_chain().model_at(10, "mysql")
    checked = 0
    for t in model.tables.values():
        keys = [t.primary_key, *t.unique, *(i.columns for i in t.indexes)]
        for cols in keys:
            if cols:
                assert _key_bytes(t, tuple(cols)) <= INNODB_MAX_KEY_BYTES, (t.name, cols)
                checked += 1
    assert checked > 40


def _all_up(dialect_name: str) -> str:
    """The DDL of the v1..v10 history, which creates each table once (v11 rebuilds two)."""
    d = dialect_for(dialect_name)
    return ";\n".join(s for m in ALL_MIGRATIONS if m.version <= 10 for s in m.up_statements(d))


@pytest.mark.parametrize(
    ("dialect", "expected"),
    [
        # PostgreSQL and SQLite rebuild the RCA table; only SQLite rebuilds table state (NULL keys).
        ("postgres", ["CREATE TABLE baselinr_rca_results__rebuild", "RENAME CONSTRAINT", "setval("]),
        ("sqlite", ["CREATE TABLE baselinr_rca_results__rebuild", "CREATE TABLE baselinr_table_state__rebuild"]),
        ("mysql", ["ALTER TABLE baselinr_rca_results MODIFY COLUMN database_name VARCHAR(255) AFTER anomaly_id"]),
        ("snowflake", []),
    ],
)
def test_v11_reorders_rca_results_and_relaxes_sqlite_table_state(dialect: str, expected: list[str]) -> None:
    d = dialect_for(dialect)
    m = load_chain().get(11)
    up, down = ";\n".join(m.up_statements(d)), ";\n".join(m.down_statements(d))
    for piece in expected:
        assert piece in up, piece
    assert ("baselinr_table_state" in up) == (dialect == "sqlite")
    if dialect == "mysql":
        assert down == "ALTER TABLE baselinr_rca_results MODIFY COLUMN database_name VARCHAR(255) AFTER metadata"
    if dialect == "sqlite":
        # Going back to v10's NOT NULL keys, the profiler's NULLs take the v10 default.
        assert "COALESCE(database_name, '')" in down and "COALESCE(schema_name, '')" in down
    model, _ = load_chain().model_at(11, dialect)
    rca = model.tables["baselinr_rca_results"]
    assert rca.positional and [c.name for c in rca.columns[:4]] == ["id", "anomaly_id", "database_name", "table_name"]


@pytest.mark.parametrize("dialect", DIALECT_NAMES)
def test_ddl_is_spelled_for_each_dialect(dialect: str) -> None:
    sql = _all_up(dialect)
    assert "IF NOT EXISTS" not in sql  # the chain knows what exists; MySQL has no CREATE INDEX IF NOT EXISTS
    assert sql.count("CREATE TABLE") == 14
    spelling = {
        "postgres": ("SERIAL PRIMARY KEY", ("AUTO_INCREMENT", "AUTOINCREMENT", "VARIANT", "INDEX idx_runs_dataset_profiled (")),
        "mysql": ("INTEGER PRIMARY KEY AUTO_INCREMENT", ("SERIAL", "VARIANT")),
        "sqlite": ("INTEGER PRIMARY KEY AUTOINCREMENT", ("SERIAL", "AUTO_INCREMENT", "VARIANT")),
        "snowflake": ("INTEGER AUTOINCREMENT PRIMARY KEY", ("SERIAL", "AUTO_INCREMENT", "CREATE INDEX", "CREATE UNIQUE INDEX")),
    }
    present, absent = spelling[dialect]
    assert present in sql
    for word in absent:
        assert word not in sql, word
    if dialect == "snowflake":
        assert "metadata VARIANT" in sql
    else:
        model, _ = load_chain().model_at(10, dialect)
        assert sql.count("CREATE INDEX") == sum(len(t.indexes) for t in model.tables.values()) == 42


@pytest.mark.parametrize("dialect", DIALECT_NAMES)
def test_down_undoes_up_in_reverse(dialect: str) -> None:
    d = dialect_for(dialect)
    v7 = ALL_MIGRATIONS[6]
    assert v7.up_statements(d) == [
        "ALTER TABLE baselinr_rca_results ADD COLUMN database_name VARCHAR(255)",
    ]
    assert v7.down_statements(d) == ["ALTER TABLE baselinr_rca_results DROP COLUMN database_name"]
    v6 = ALL_MIGRATIONS[5]
    assert [s.split()[2] for s in v6.down_statements(d)] == [
        "baselinr_rca_results",
        "baselinr_code_deployments",
        "baselinr_pipeline_runs",
    ]


def test_renamed_runs_and_results_reach_the_ddl() -> None:
    names = {"baselinr_runs": "my_runs", "baselinr_results": "my_results"}.get
    d = dialect_for("postgres")
    sql = ";".join(ALL_MIGRATIONS[0].up_statements(d, lambda n: names(n) or n))
    assert "CREATE TABLE my_runs" in sql and "ON my_results (run_id)" in sql and "baselinr_runs" not in sql
