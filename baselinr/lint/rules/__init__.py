"""The lint rules: a function per hazard, and one rule set per dialect.

Called by ``linter`` with a ``Context`` (the migration's parsed statements,
the schema known before the statement, the tables this migration created).
Every rule reads sqlglot's AST (two, SQLite's and Snowflake's check of
the AUTO_INCREMENT spelling, read sqlglot's tokens, since the AST does not
keep it); none matches SQL
text with a regex. (``linter.KNOWN_COMMANDS`` does, as a fallback, for the
few safe PostgreSQL statements sqlglot cannot parse, so they are not
reported as ``unparsed``.) A rule
yields ``Finding``s and never renders output. Rules that apply everywhere
(destructive changes) are shared; dialect hazards live in the dialect's set
(``RULESETS``, looked up by the engine's dialect name).
Modules: ``context`` (what a rule sees), ``common``, ``postgres``,
``mysql``, ``sqlite``, ``snowflake``.
"""

from __future__ import annotations

from dataclasses import dataclass

from baselinr.lint.rules.common import (
    delete_all_rows,
    drop_column,
    drop_table,
    implicit_commit,
    narrowing_type_change,
    not_null_without_default,
    rename,
    truncate,
    update_all_rows,
)
from baselinr.lint.rules.context import BIG_TABLES, Context, Statement, StatementRule, UnitRule
from baselinr.lint.rules.mysql import mysql_copy_algorithm
from baselinr.lint.rules.postgres import (
    pg_auto_increment,
    pg_concurrently_in_migration,
    pg_constraint_not_valid,
    pg_drop_index_not_concurrent,
    pg_index_not_concurrent,
    pg_set_not_null,
    pg_type_change_rewrite,
    pg_unique_constraint,
    pg_volatile_default,
)
from baselinr.lint.rules.snowflake import snowflake_auto_increment, snowflake_no_index
from baselinr.lint.rules.sqlite import sqlite_auto_increment, sqlite_table_rebuild

__all__ = ["BIG_TABLES", "RULESETS", "RULE_IDS", "Context", "RuleSet", "Statement"]


@dataclass(frozen=True)
class RuleSet:
    """The rules of one dialect: per statement, then per migration."""

    statement_rules: tuple[StatementRule, ...]
    unit_rules: tuple[UnitRule, ...] = ()


COMMON: tuple[StatementRule, ...] = (
    drop_table,
    drop_column,
    narrowing_type_change,
    truncate,
    delete_all_rows,
    update_all_rows,
    not_null_without_default,
    rename,
)

RULESETS: dict[str, RuleSet] = {
    "postgres": RuleSet(
        (
            *COMMON,
            pg_index_not_concurrent,
            pg_drop_index_not_concurrent,
            pg_type_change_rewrite,
            pg_volatile_default,
            pg_constraint_not_valid,
            pg_set_not_null,
            pg_unique_constraint,
            pg_auto_increment,
        ),
        (pg_concurrently_in_migration,),
    ),
    "mysql": RuleSet((*COMMON, mysql_copy_algorithm), (implicit_commit("mysql-implicit-commit", "MySQL/MariaDB DDL"),)),
    "sqlite": RuleSet((*COMMON, sqlite_table_rebuild, sqlite_auto_increment)),
    "snowflake": RuleSet(
        (*COMMON, snowflake_no_index, snowflake_auto_increment),
        (implicit_commit("snowflake-implicit-commit", "Snowflake DDL"),),
    ),
}

# Every rule id a finding can carry, for checking acknowledgements.
RULE_IDS = frozenset(
    {
        "unparsed",
        "python-step",
        "model-unfollowed",
        "drop-table",
        "drop-column",
        "narrowing-type-change",
        "truncate",
        "delete-all-rows",
        "update-all-rows",
        "not-null-without-default",
        "rename-column",
        "rename-table",
        "pg-drop-index-not-concurrent",
        "pg-concurrently-in-migration",
        "pg-index-not-concurrent",
        "pg-type-change-rewrite",
        "pg-volatile-default",
        "pg-constraint-not-valid",
        "pg-set-not-null",
        "pg-unique-constraint",
        "mysql-copy-algorithm",
        "mysql-implicit-commit",
        "sqlite-table-rebuild",
        "snowflake-implicit-commit",
        "snowflake-no-index",
        "dialect-syntax",
        "ack-without-reason",
        "ack-unknown-rule",
    }
)
