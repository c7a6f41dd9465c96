"""The per-dialect SQL splitter, on hand-picked cases and generated scripts."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from baselinr.storage.dialects import MySQLDialect, PostgresDialect, SnowflakeDialect, SQLiteDialect
from baselinr.storage.splitter import split_sql

PG = PostgresDialect.split_rules
MY = MySQLDialect.split_rules
LITE = SQLiteDialect.split_rules
SF = SnowflakeDialect.split_rules


def test_comments_quotes_and_blank_statements() -> None:
    sql = """
        -- a comment; with a semicolon
        INSERT INTO t VALUES ('a;b', 'it''s; fine');
        /* block; comment */ ;
        SELECT "weird;name" FROM t;
        -- trailing comment only
    """
    assert split_sql(sql, PG) == [
        "-- a comment; with a semicolon\n        INSERT INTO t VALUES ('a;b', 'it''s; fine')",
        'SELECT "weird;name" FROM t',
    ]


def test_postgres_dollar_quotes_and_e_strings() -> None:
    sql = """
    CREATE FUNCTION f() RETURNS trigger AS $body$
    BEGIN
      NEW.x := 'a;b'; RETURN NEW;
    END;
    $body$ LANGUAGE plpgsql;
    SELECT E'it\\'s;here', $$x;y$$;
    /* nested /* comment; */ still comment; */ SELECT 1;
    """
    stmts = split_sql(sql, PG)
    assert len(stmts) == 3
    assert stmts[0].endswith("LANGUAGE plpgsql")
    assert stmts[1] == "SELECT E'it\\'s;here', $$x;y$$"
    assert stmts[2].endswith("SELECT 1")


def test_mysql_backslashes_hash_comments_and_delimiter() -> None:
    sql = """
    INSERT INTO t VALUES ('a\\';b'); # comment; here
    DELIMITER $$
    CREATE TRIGGER trg BEFORE INSERT ON t FOR EACH ROW
    BEGIN
      SET NEW.x = 1;
      IF NEW.y IS NULL THEN SET NEW.y = 2; END IF;
    END$$
    DELIMITER ;
    SELECT `a;b` FROM t;
    """
    stmts = split_sql(sql, MY)
    assert stmts[0] == "INSERT INTO t VALUES ('a\\';b')"
    assert stmts[1].startswith("CREATE TRIGGER") and stmts[1].endswith("END IF;\n    END")
    assert stmts[-1] == "SELECT `a;b` FROM t"
    assert len(stmts) == 3


def test_sqlite_trigger_body_and_case() -> None:
    sql = """
    CREATE TRIGGER trg AFTER INSERT ON t BEGIN
      UPDATE t SET x = CASE WHEN NEW.y > 0 THEN 1 ELSE 0 END WHERE id = NEW.id;
      INSERT INTO log VALUES (NEW.id);
    END;
    SELECT 1;
    """
    stmts = split_sql(sql, LITE)
    assert len(stmts) == 2
    assert stmts[0].endswith("END")


def test_snowflake_anonymous_block() -> None:
    sql = """
    ALTER TABLE baselinr_runs ADD COLUMN metadata VARIANT;
    EXECUTE IMMEDIATE $$
    BEGIN
      CREATE TABLE a (x INT);
      CREATE TABLE b (x INT);
    END;
    $$;
    BEGIN
      SELECT 1;
    END;
    """
    stmts = split_sql(sql, SF)
    assert len(stmts) == 3


def test_begin_transaction_is_not_a_block() -> None:
    assert split_sql("BEGIN; SELECT 1; COMMIT;", PG) == ["BEGIN", "SELECT 1", "COMMIT"]


_text = st.text(alphabet=st.sampled_from(list("ab ;'\"-/*$\\\n")), max_size=12)


@st.composite
def statements(draw: st.DrawFn) -> list[str]:
    parts = []
    for _ in range(draw(st.integers(1, 5))):
        literal = draw(_text).replace("'", "''")
        ident = draw(_text).replace('"', '""')
        parts.append(f"SELECT '{literal}' AS \"{ident}\" FROM t{draw(st.integers(0, 9))}")
    return parts


@given(statements())
def test_generated_scripts_split_back_into_their_statements(parts: list[str]) -> None:
    script = ";\n-- note; here\n".join(parts) + ";"
    for rules in (LITE, SF):
        # Leading comments stay with the statement they precede.
        got = [s.removeprefix("-- note; here\n") for s in split_sql(script, rules)]
        assert got == parts
