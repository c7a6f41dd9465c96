"""The lint rules: a function per hazard, and one rule set per dialect.

Called by ``linter`` with a ``Context`` (the migration's parsed statements,
the schema known before the statement, the tables this migration created).
Every rule reads sqlglot's AST (one, SQLite's AUTO_INCREMENT spelling,
reads sqlglot's tokens, since the AST does not keep it); none matches SQL
text with a regex. (``linter.KNOWN_COMMANDS`` does, as a fallback, for the
few safe PostgreSQL statements sqlglot cannot parse, so they are not
reported as ``unparsed``.) A rule
yields ``Finding``s and never renders output. Rules that apply everywhere
(destructive changes) are shared; dialect hazards live in the dialect's set
(``RULESETS``, looked up by the engine's dialect name).

PostgreSQL facts assumed (11 and later): ADD COLUMN with a constant or
stable default (``now()``) does not rewrite the table; a volatile default
(``random()``, ``gen_random_uuid()``, ``clock_timestamp()``, a serial) does.
MySQL facts (8.0 / MariaDB 10.3+): ADD COLUMN and CREATE INDEX run INSTANT
or INPLACE with concurrent writes; changing a column's type needs COPY.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.tokenizer_core import TokenType

from baselinr.lint import coltypes
from baselinr.lint.catalog import Catalog, column_name, dropped_tables, table_name
from baselinr.lint.findings import ERROR, WARNING, Finding

# Baselinr's tables that grow with every profiling run.
BIG_TABLES = frozenset({"baselinr_results", "baselinr_runs", "baselinr_events"})
_PG_VOLATILE = frozenset(
    {
        "random",
        "clock_timestamp",
        "timeofday",
        "gen_random_uuid",
        "uuid_generate_v1",
        "uuid_generate_v1mc",
        "uuid_generate_v4",
        "nextval",
    }
)
_SERIALS = {exp.DataType.Type.SERIAL, exp.DataType.Type.BIGSERIAL, exp.DataType.Type.SMALLSERIAL}
_FUNC_NAME = re.compile(r"\s*([A-Za-z_][\w.]*)\s*\(")  # a function's name in its own rendered SQL


@dataclass
class Statement:
    index: int  # 1-based
    sql: str
    node: exp.Expression | None  # None: sqlglot could not parse it


@dataclass
class Context:
    """What a rule sees: the migration, its statements and the schema so far."""

    dialect: str
    version: int | None
    source: str
    statements: list[Statement]
    catalog: Catalog = field(default_factory=Catalog)
    created: set[str] = field(default_factory=set)  # tables created by this migration so far
    big_tables: frozenset[str] = BIG_TABLES  # as named in this database (config may rename them)

    def finding(self, rule: str, severity: str, stmt: Statement, advice: str, table: str | None = None) -> Finding:
        return Finding(rule, severity, self.version, self.source, stmt.index, stmt.sql, advice, table)

    def holds_rows(self, table: str | None) -> bool:
        """False only for a table this migration created (it is empty)."""
        return table is not None and table not in self.created

    def after(self, stmt: Statement) -> list[exp.Expression]:
        return [s.node for s in self.statements[stmt.index :] if s.node is not None]

    def others(self, stmt: Statement) -> list[exp.Expression]:
        return [s.node for s in self.statements if s.node is not None and s.index != stmt.index]

    def hazard(self, table: str | None) -> str:
        """Locking hazards are errors on the big tables, warnings elsewhere."""
        return ERROR if table in self.big_tables else WARNING


StatementRule = Callable[[Context, Statement], Iterator[Finding]]
UnitRule = Callable[[Context], Iterator[Finding]]


def _alter_actions(node: exp.Expression | None) -> tuple[str | None, list[exp.Expression]]:
    if isinstance(node, exp.Alter) and (node.args.get("kind") or "").upper() == "TABLE":
        return table_name(node.this), list(node.args.get("actions") or [])
    return None, []


def _constraints(col: exp.ColumnDef) -> list[exp.Expression]:
    return [c.args.get("kind") for c in col.args.get("constraints") or [] if c.args.get("kind") is not None]


def _default(col: exp.ColumnDef) -> exp.Expression | None:
    for kind in _constraints(col):
        if isinstance(kind, exp.DefaultColumnConstraint):
            value = kind.this
            return value if isinstance(value, exp.Expression) else None
    return None


def _fills_itself(col: exp.ColumnDef) -> bool:
    """A default, identity, generated or auto-increment value fills existing rows."""
    fill = (
        exp.DefaultColumnConstraint,
        exp.GeneratedAsIdentityColumnConstraint,
        exp.ComputedColumnConstraint,
        exp.AutoIncrementColumnConstraint,
    )
    if any(isinstance(k, fill) for k in _constraints(col)):
        default = _default(col)
        return not (isinstance(default, exp.Null))
    kind = col.args.get("kind")
    return isinstance(kind, exp.DataType) and kind.this in _SERIALS


def _not_null(col: exp.ColumnDef) -> bool:
    return any(
        (isinstance(k, exp.NotNullColumnConstraint) and not k.args.get("allow_null"))
        or isinstance(k, exp.PrimaryKeyColumnConstraint)
        for k in _constraints(col)
    )


def _func_names(node: exp.Expression) -> set[str]:
    names = set()
    for fn in node.find_all(exp.Func):
        m = _FUNC_NAME.match(fn.sql("postgres"))
        if m:
            names.add(m.group(1).lower().rsplit(".", 1)[-1])
    return names


def _type_change(action: exp.Expression) -> tuple[str | None, exp.DataType | None]:
    """(column, new type) for ALTER COLUMN ... TYPE and MySQL MODIFY/CHANGE."""
    if isinstance(action, exp.AlterColumn) and isinstance(action.args.get("dtype"), exp.DataType):
        return column_name(action.this), action.args["dtype"]
    if isinstance(action, exp.ModifyColumn) and isinstance(action.this, exp.ColumnDef):
        kind = action.this.args.get("kind")
        old = action.args.get("rename_from")
        return column_name(old if old is not None else action.this.this), kind if isinstance(kind, exp.DataType) else None
    return None, None


# --- destructive changes (every dialect) --------------------------------------------


def _rebuilt(ctx: Context, stmt: Statement, table: str) -> bool:
    """DROP TABLE t followed by a rename of a copy of t to t: a table rebuild, not a loss."""
    copied_from = {
        table_name(n.this): {t.name.lower() for t in n.expression.find_all(exp.Table)}
        for n in ctx.others(stmt)
        if isinstance(n, exp.Insert) and isinstance(n.expression, exp.Query)
    }
    for n in ctx.after(stmt):
        source, actions = _alter_actions(n)
        for a in actions:
            if isinstance(a, exp.AlterRename) and table_name(a.this) == table and table in copied_from.get(source, set()):
                return True
    return False


def drop_table(ctx: Context, stmt: Statement) -> Iterator[Finding]:
    if isinstance(stmt.node, exp.Drop) and (stmt.node.args.get("kind") or "").upper() == "TABLE":
        for table in dropped_tables(stmt.node):
            if not ctx.holds_rows(table) or _rebuilt(ctx, stmt, table):
                continue
            yield ctx.finding(
                "drop-table",
                ERROR,
                stmt,
                f"Dropping {table} deletes its rows: back it up, or keep it until no code reads it.",
                table,
            )


def _column_rebuilt(ctx: Context, stmt: Statement, table: str, column: str) -> bool:
    """DROP COLUMN c after copying c into a column that is then renamed to c."""
    copied = any(
        isinstance(n, exp.Update)
        and table_name(n.this) == table
        and any(c.name.lower() == column for e in n.expressions for c in e.expression.find_all(exp.Column))
        for n in ctx.others(stmt)
    )
    renamed = any(
        isinstance(a, exp.RenameColumn) and column_name(a.args.get("to")) == column
        for n in ctx.after(stmt)
        for a in _alter_actions(n)[1]
        if _alter_actions(n)[0] == table
    )
    return copied and renamed


def drop_column(ctx: Context, stmt: Statement) -> Iterator[Finding]:
    table, actions = _alter_actions(stmt.node)
    if not ctx.holds_rows(table) or table is None:
        return
    for a in actions:
        if isinstance(a, exp.Drop) and (a.args.get("kind") or "").upper() == "COLUMN":
            for col in a.args.get("tables") or []:
                name = col.name.lower()
                if _column_rebuilt(ctx, stmt, table, name):
                    yield ctx.finding(
                        "drop-column",
                        WARNING,
                        stmt,
                        f"{table}.{name} is copied and replaced in this migration: code that runs during the "
                        "deploy must not depend on it changing.",
                        table,
                    )
                else:
                    yield ctx.finding(
                        "drop-column",
                        ERROR,
                        stmt,
                        f"Dropping {table}.{name} deletes its values: stop reading it first, back it up, then drop.",
                        table,
                    )


def narrowing_type_change(ctx: Context, stmt: Statement) -> Iterator[Finding]:
    table, actions = _alter_actions(stmt.node)
    if not ctx.holds_rows(table):
        return
    for a in actions:
        column, new = _type_change(a)
        if column is None or new is None:
            continue
        how = coltypes.compare(ctx.catalog.column_type(table, column), new)
        if how == coltypes.NARROW:
            yield ctx.finding(
                "narrowing-type-change",
                ERROR,
                stmt,
                f"{table}.{column} becomes {new.sql(ctx.dialect)}: existing values may not fit; add a new column and backfill.",
                table,
            )
        elif how == coltypes.UNKNOWN:
            yield ctx.finding(
                "narrowing-type-change",
                WARNING,
                stmt,
                f"The old type of {table}.{column} is not known here: check existing values fit {new.sql(ctx.dialect)}.",
                table,
            )


def truncate(ctx: Context, stmt: Statement) -> Iterator[Finding]:
    if isinstance(stmt.node, exp.TruncateTable):
        for t in stmt.node.expressions:
            yield ctx.finding(
                "truncate", ERROR, stmt, f"TRUNCATE deletes every row of {table_name(t)}: back it up first.", table_name(t)
            )


def delete_all_rows(ctx: Context, stmt: Statement) -> Iterator[Finding]:
    if isinstance(stmt.node, exp.Delete) and stmt.node.args.get("where") is None:
        table = table_name(stmt.node.this)
        if ctx.holds_rows(table):
            yield ctx.finding(
                "delete-all-rows", ERROR, stmt, f"DELETE without WHERE empties {table}: back it up, or add a WHERE.", table
            )


def update_all_rows(ctx: Context, stmt: Statement) -> Iterator[Finding]:
    if isinstance(stmt.node, exp.Update) and stmt.node.args.get("where") is None:
        table = table_name(stmt.node.this)
        if ctx.holds_rows(table):
            yield ctx.finding(
                "update-all-rows",
                WARNING,
                stmt,
                f"UPDATE without WHERE rewrites every row of {table} in one statement: backfill in batches if it is large.",
                table,
            )


def not_null_without_default(ctx: Context, stmt: Statement) -> Iterator[Finding]:
    table, actions = _alter_actions(stmt.node)
    if not ctx.holds_rows(table):
        return
    for a in actions:
        if isinstance(a, exp.ColumnDef) and _not_null(a) and not _fills_itself(a):
            yield ctx.finding(
                "not-null-without-default",
                ERROR,
                stmt,
                f"NOT NULL column {a.name} without a DEFAULT fails (or gets an implicit value) on a {table} with rows: "
                "add a DEFAULT, or add it nullable, backfill, then set NOT NULL.",
                table,
            )


# --- PostgreSQL -------------------------------------------------------------


def pg_index_not_concurrent(ctx: Context, stmt: Statement) -> Iterator[Finding]:
    node = stmt.node
    if isinstance(node, exp.Create) and (node.args.get("kind") or "").upper() == "INDEX" and isinstance(node.this, exp.Index):
        table = table_name(node.this.args.get("table"))
        if ctx.holds_rows(table) and not node.args.get("concurrently"):
            yield ctx.finding(
                "pg-index-not-concurrent",
                ctx.hazard(table),
                stmt,
                f"CREATE INDEX blocks writes to {table} while it builds: use CREATE INDEX CONCURRENTLY "
                "(the migration then runs outside a transaction).",
                table,
            )


def pg_type_change_rewrite(ctx: Context, stmt: Statement) -> Iterator[Finding]:
    table, actions = _alter_actions(stmt.node)
    if not ctx.holds_rows(table):
        return
    for a in actions:
        column, new = _type_change(a)
        if column is None or new is None:
            continue
        old = ctx.catalog.column_type(table, column)
        how = coltypes.compare(old, new)
        if how == coltypes.SAME or (
            how == coltypes.WIDEN and (coltypes.is_string(old) or coltypes.same_scale_decimals(old, new))
        ):
            continue  # a wider VARCHAR, VARCHAR to TEXT, more NUMERIC precision: catalog-only change
        yield ctx.finding(
            "pg-type-change-rewrite",
            ctx.hazard(table),
            stmt,
            f"Changing {table}.{column} to {new.sql('postgres')} rewrites the table under an ACCESS EXCLUSIVE lock: "
            "add a new column, backfill it, then switch.",
            table,
        )


def pg_volatile_default(ctx: Context, stmt: Statement) -> Iterator[Finding]:
    table, actions = _alter_actions(stmt.node)
    if not ctx.holds_rows(table):
        return
    for a in actions:
        if not isinstance(a, exp.ColumnDef):
            continue
        default = _default(a)
        kind = a.args.get("kind")
        volatile = sorted(_func_names(default) & _PG_VOLATILE) if default is not None else []
        if volatile or (isinstance(kind, exp.DataType) and kind.this in _SERIALS):
            what = f"{volatile[0]}()" if volatile else kind.sql("postgres") if isinstance(kind, exp.DataType) else "serial"
            yield ctx.finding(
                "pg-volatile-default",
                ctx.hazard(table),
                stmt,
                f"A volatile default ({what}) makes ADD COLUMN rewrite {table} under an ACCESS EXCLUSIVE lock: "
                "add the column without it, set the default, backfill in batches.",
                table,
            )


def pg_constraint_not_valid(ctx: Context, stmt: Statement) -> Iterator[Finding]:
    table, actions = _alter_actions(stmt.node)
    if not ctx.holds_rows(table) or stmt.node is None or stmt.node.args.get("not_valid"):
        return
    for a in actions:
        if isinstance(a, exp.AddConstraint) and a.find(exp.ForeignKey, exp.CheckColumnConstraint) is not None:
            yield ctx.finding(
                "pg-constraint-not-valid",
                ctx.hazard(table),
                stmt,
                f"Adding this constraint scans {table} while it blocks writes: add it NOT VALID, then VALIDATE CONSTRAINT "
                "in a later migration.",
                table,
            )


def pg_unique_constraint(ctx: Context, stmt: Statement) -> Iterator[Finding]:
    table, actions = _alter_actions(stmt.node)
    if not ctx.holds_rows(table):
        return
    for a in actions:
        if isinstance(a, exp.AddConstraint) and a.find(exp.UniqueColumnConstraint, exp.PrimaryKey) is not None:
            yield ctx.finding(
                "pg-unique-constraint",
                ctx.hazard(table),
                stmt,
                f"Adding a UNIQUE or PRIMARY KEY constraint builds its index while {table} is locked: CREATE UNIQUE INDEX "
                "CONCURRENTLY first, then ADD CONSTRAINT ... USING INDEX.",
                table,
            )


def pg_set_not_null(ctx: Context, stmt: Statement) -> Iterator[Finding]:
    table, actions = _alter_actions(stmt.node)
    if not ctx.holds_rows(table):
        return
    for a in actions:
        if isinstance(a, exp.AlterColumn) and a.args.get("allow_null") is False:
            yield ctx.finding(
                "pg-set-not-null",
                ctx.hazard(table),
                stmt,
                f"SET NOT NULL scans {table} under an ACCESS EXCLUSIVE lock: validate a CHECK (... IS NOT NULL) NOT VALID "
                "constraint first, then SET NOT NULL uses it.",
                table,
            )


# --- MySQL / MariaDB --------------------------------------------------------


def _algorithm(node: exp.Expression) -> str | None:
    for opt in node.args.get("options") or []:
        if isinstance(opt, exp.AlgorithmProperty):
            return opt.name.upper()
    return None


def mysql_copy_algorithm(ctx: Context, stmt: Statement) -> Iterator[Finding]:
    table, actions = _alter_actions(stmt.node)
    if not ctx.holds_rows(table) or stmt.node is None:
        return
    algorithm = _algorithm(stmt.node)
    if algorithm in ("INSTANT", "INPLACE"):
        return  # the server refuses the statement rather than copy
    reasons = []
    if algorithm == "COPY":
        reasons.append("ALGORITHM=COPY")
    for a in actions:
        column, new = _type_change(a)
        if column is not None and new is not None:
            old = ctx.catalog.column_type(table, column)
            how = coltypes.compare(old, new)
            if how == coltypes.UNKNOWN:
                reasons.append(f"changing {column} (old type unknown here)")
            elif how == coltypes.NARROW or (how == coltypes.WIDEN and not coltypes.is_string(old)):
                reasons.append(f"changing the type of {column}")
        elif isinstance(a, exp.DropPrimaryKey):
            reasons.append("dropping the primary key")
    if reasons:
        yield ctx.finding(
            "mysql-copy-algorithm",
            ctx.hazard(table),
            stmt,
            f"{'; '.join(reasons)} copies {table} with writes blocked (not INSTANT/INPLACE): add a new column and backfill, "
            "or state ALGORITHM=INPLACE to make the server refuse a copy.",
            table,
        )


# --- implicit commits (MySQL, Snowflake) -------------------------------------------


def _is_dml(node: exp.Expression | None) -> bool:
    return isinstance(node, (exp.Insert, exp.Update, exp.Delete, exp.Merge))


def _is_ddl(node: exp.Expression | None) -> bool:
    return isinstance(node, (exp.Create, exp.Drop, exp.Alter, exp.TruncateTable))


def _implicit_commit(rule: str, what: str) -> UnitRule:
    def check(ctx: Context) -> Iterator[Finding]:
        seen_dml = seen_ddl = False
        for stmt in ctx.statements:
            if (_is_ddl(stmt.node) and seen_dml) or (_is_dml(stmt.node) and seen_ddl):
                yield ctx.finding(
                    rule,
                    WARNING,
                    stmt,
                    f"{what} commits implicitly, so this migration mixing DDL and data changes cannot be atomic: "
                    "split it, or make each statement safe to resume (migrate apply --resume).",
                )
                return
            seen_dml = seen_dml or _is_dml(stmt.node)
            seen_ddl = seen_ddl or _is_ddl(stmt.node)

    return check


# --- syntax another dialect's (the statement would fail) ----------------------------


def pg_auto_increment(ctx: Context, stmt: Statement) -> Iterator[Finding]:
    if stmt.node is not None and stmt.node.find(exp.AutoIncrementColumnConstraint) is not None:
        yield ctx.finding(
            "dialect-syntax",
            ERROR,
            stmt,
            "PostgreSQL has no AUTO_INCREMENT: use GENERATED BY DEFAULT AS IDENTITY (or SERIAL), or give up_sql a "
            "per-dialect mapping.",
        )


def sqlite_auto_increment(ctx: Context, stmt: Statement) -> Iterator[Finding]:
    # sqlglot's AST keeps one node for AUTO_INCREMENT and AUTOINCREMENT; the tokens keep the spelling
    # (and, unlike a regex, skip comments and string literals).
    tokens = Dialect.get_or_raise("sqlite").tokenize(stmt.sql)
    if any(t.token_type == TokenType.AUTO_INCREMENT and t.text.upper() == "AUTO_INCREMENT" for t in tokens):
        yield ctx.finding(
            "dialect-syntax",
            ERROR,
            stmt,
            "SQLite rejects AUTO_INCREMENT: INTEGER PRIMARY KEY already assigns ids (AUTOINCREMENT only forbids reuse).",
        )


def snowflake_no_index(ctx: Context, stmt: Statement) -> Iterator[Finding]:
    node = stmt.node
    if isinstance(node, exp.Create) and (node.args.get("kind") or "").upper() == "INDEX":
        yield ctx.finding(
            "snowflake-no-index",
            ERROR,
            stmt,
            "Snowflake's standard tables have no secondary indexes, so this fails: leave it out of the "
            "snowflake entry of a per-dialect up_sql.",
            table_name(node.this.args.get("table")) if isinstance(node.this, exp.Index) else None,
        )


# --- SQLite -------------------------------------------------------------------


def sqlite_table_rebuild(ctx: Context, stmt: Statement) -> Iterator[Finding]:
    table, actions = _alter_actions(stmt.node)
    for a in actions:
        why = None
        if isinstance(a, (exp.AlterColumn, exp.ModifyColumn)):
            why = "SQLite cannot alter a column's type, default or nullability"
        elif isinstance(a, (exp.AddConstraint, exp.DropPrimaryKey)) or (
            isinstance(a, exp.Drop) and (a.args.get("kind") or "").upper() not in ("COLUMN", "")
        ):
            why = "SQLite cannot add or drop a constraint"
        elif isinstance(a, exp.ColumnDef):
            kinds = _constraints(a)
            default = _default(a)
            if any(isinstance(k, (exp.PrimaryKeyColumnConstraint, exp.UniqueColumnConstraint)) for k in kinds):
                why = "SQLite cannot add a PRIMARY KEY or UNIQUE column"
            elif default is not None and not isinstance(default, (exp.Literal, exp.Null, exp.Boolean, exp.Neg)):
                why = "SQLite cannot add a column with a non-constant default"
            elif _not_null(a) and (default is None or isinstance(default, exp.Null)):
                why = "SQLite cannot add a NOT NULL column without a non-NULL default"
        elif isinstance(a, exp.Drop) and (a.args.get("kind") or "").upper() == "COLUMN" and table is not None:
            indexed = {c.name.lower() for c in a.args.get("tables") or []} & ctx.catalog.indexed.get(table, set())
            if indexed:
                why = f"SQLite cannot drop {', '.join(sorted(indexed))} while an index uses it"
        if why:
            yield ctx.finding(
                "sqlite-table-rebuild",
                ERROR,
                stmt,
                f"{why}: rebuild {table} (create the new table, copy the rows, drop the old one, rename).",
                table,
            )


# --- rule sets ------------------------------------------------------------------


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
)

RULESETS: dict[str, RuleSet] = {
    "postgres": RuleSet(
        (
            *COMMON,
            pg_index_not_concurrent,
            pg_type_change_rewrite,
            pg_volatile_default,
            pg_constraint_not_valid,
            pg_set_not_null,
            pg_unique_constraint,
            pg_auto_increment,
        )
    ),
    "mysql": RuleSet((*COMMON, mysql_copy_algorithm), (_implicit_commit("mysql-implicit-commit", "MySQL/MariaDB DDL"),)),
    "sqlite": RuleSet((*COMMON, sqlite_table_rebuild, sqlite_auto_increment)),
    "snowflake": RuleSet((*COMMON, snowflake_no_index), (_implicit_commit("snowflake-implicit-commit", "Snowflake DDL"),)),
}

# Every rule id a finding can carry, for checking acknowledgements.
RULE_IDS = frozenset(
    {
        "unparsed",
        "drop-table",
        "drop-column",
        "narrowing-type-change",
        "truncate",
        "delete-all-rows",
        "update-all-rows",
        "not-null-without-default",
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
