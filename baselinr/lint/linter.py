"""Run the rules over migrations: parse each statement, apply rules, acknowledge.

Called by ``baselinr.cli.lint`` with ``Unit``s from ``sources``. Pure: no
database, no output. Statements are parsed with sqlglot in the engine's
dialect; one it cannot parse (or only as an opaque command) becomes an
``unparsed`` warning, never a crash. The schema known before the first unit
is the schema model (``Chain.model_at``); each statement is then followed on
it by the model's own DDL reader, and one it cannot follow is a
``model-unfollowed`` warning, named when the migration is linted or planned
rather than found at backup time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlglot import exp

from baselinr.lint.ack import parse_acks
from baselinr.lint.catalog import Catalog, table_name
from baselinr.lint.findings import ERROR, WARNING, Finding, LintedUnit, LintReport
from baselinr.lint.rules import BIG_TABLES, RULE_IDS, RULESETS, Context, Statement
from baselinr.storage.follow import follow
from baselinr.storage.model import Schema
from baselinr.storage.sqlparse import SQLGLOT_DIALECTS, parse

__all__ = ["KNOWN_COMMANDS", "SQLGLOT_DIALECTS", "Unit", "known_command", "lint", "parse"]

# Statements sqlglot leaves opaque (an ``exp.Command``) that are known to carry none of the
# hazards the rules look for: the safe halves of the PostgreSQL patterns the advice recommends.
# A regex is the fallback only here, where there is no AST to read.
_IDENT = r'(?:"[^"]+"|[A-Za-z_][\w$]*)(?:\.(?:"[^"]+"|[A-Za-z_][\w$]*))?'
KNOWN_COMMANDS: dict[str, tuple[re.Pattern[str], ...]] = {
    "postgres": (
        # Renaming a sequence or an index only changes the catalog.
        re.compile(rf"^\s*ALTER\s+(?:SEQUENCE|INDEX)\s+(?:IF\s+EXISTS\s+)?{_IDENT}\s+RENAME\s+TO\s+{_IDENT}\s*$", re.I),
        re.compile(rf"^\s*ALTER\s+TABLE\s+(?:ONLY\s+)?{_IDENT}\s+VALIDATE\s+CONSTRAINT\s+{_IDENT}\s*$", re.I),
        re.compile(
            rf"^\s*ALTER\s+TABLE\s+(?:ONLY\s+)?{_IDENT}\s+ADD\s+CONSTRAINT\s+{_IDENT}\s+(?:UNIQUE|PRIMARY\s+KEY)\s+"
            rf"USING\s+INDEX\s+{_IDENT}\s*$",
            re.I,
        ),
    ),
}


def _strip_comments(sql: str) -> str:
    return "\n".join(line for line in sql.splitlines() if not line.strip().startswith("--")).strip()


def known_command(sql: str, dialect: str) -> bool:
    """True for an opaque statement that is one of ``KNOWN_COMMANDS``."""
    text = _strip_comments(sql)
    return any(p.match(text) for p in KNOWN_COMMANDS.get(dialect, ()))


@dataclass(frozen=True)
class Unit:
    """One migration (or SQL file) to lint."""

    version: int | None
    source: str
    statements: list[str]
    notes: str = ""  # text searched for acknowledgements: its SQL and module source
    python: str | None = None  # the qualified name of its Python step, which lint cannot read
    operations: bool = False  # it declares model operations: the model follows those, not its SQL


def lint(
    units: Iterable[Unit], dialect: str, model: Schema | Sequence[str] | None = None, big_tables: Iterable[str] = BIG_TABLES
) -> LintReport:
    """Findings for ``units``, in order, on ``dialect``.

    ``model``: the schema model before the first unit (``Chain.model_at``), or SQL statements that
    build it (followed on an empty model); empty if not given.
    ``big_tables``: the tables whose locking hazards are errors, as this database names them.
    """
    if dialect not in RULESETS:
        raise ValueError(f"No lint rules for dialect {dialect!r}")
    if model is None or isinstance(model, Schema):
        start = (model or Schema()).copy()
    else:
        start = Schema()
        follow(start, model, dialect)
    catalog = Catalog(start, dialect)
    report = LintReport(dialect)
    for unit in units:
        report.units.append(LintedUnit(unit.version, unit.source, len(unit.statements)))
        report.findings.extend(_lint_unit(unit, dialect, catalog, frozenset(t.lower() for t in big_tables)))
    return report


def _lint_unit(unit: Unit, dialect: str, catalog: Catalog, big_tables: frozenset[str]) -> list[Finding]:
    rules = RULESETS[dialect]
    statements = [Statement(i, sql, parse(sql, dialect)) for i, sql in enumerate(unit.statements, 1)]
    ctx = Context(dialect, unit.version, unit.source, statements, catalog, big_tables=big_tables)
    found: list[Finding] = []
    for stmt in statements:
        if stmt.node is None:
            if known_command(stmt.sql, dialect):
                continue
            found.append(
                ctx.finding("unparsed", WARNING, stmt, "The SQL parser could not read this statement: review it by hand.")
            )
            continue
        for rule in rules.statement_rules:
            found.extend(rule(ctx, stmt))
        for missed in catalog.apply(stmt.node, stmt.sql):
            if not unit.operations:
                found.append(
                    ctx.finding(
                        "model-unfollowed",
                        WARNING,
                        stmt,
                        f"The schema model cannot follow this statement: {missed.reason}. {missed.advice}",
                    )
                )
        _note_created(ctx, stmt.node)
    for unit_rule in rules.unit_rules:
        found.extend(unit_rule(ctx))
    if unit.python:
        found.append(
            Finding(
                "python-step",
                WARNING,
                unit.version,
                unit.source,
                0,
                f"{unit.python}(connection)",
                "The migration's Python step is not linted, and the schema model takes it to change rows only: "
                "review it by hand, and declare any schema change it makes with operations=[...].",
            )
        )
    found.sort(key=lambda f: f.statement_index)
    return _acknowledge(unit, found)


def _note_created(ctx: Context, node: exp.Expression) -> None:
    if isinstance(node, exp.Create) and (node.args.get("kind") or "").upper() == "TABLE":
        name = table_name(node.this)
        if name:
            ctx.created.add(name)
    elif isinstance(node, exp.Alter):
        old = table_name(node.this)
        for a in node.args.get("actions") or []:
            new = table_name(a.this) if isinstance(a, exp.AlterRename) else None
            if new and old in ctx.created:
                ctx.created.add(new)


def _acknowledge(unit: Unit, found: list[Finding]) -> list[Finding]:
    reasons: dict[str, str] = {}
    extra: list[Finding] = []
    for ack in parse_acks(unit.notes):
        if not ack.reason:
            extra.append(
                Finding(
                    "ack-without-reason",
                    ERROR,
                    unit.version,
                    unit.source,
                    0,
                    ack.line,
                    f"Say why {ack.rule} is acceptable after the rule id; an acknowledgement needs a reason.",
                )
            )
        elif ack.rule not in RULE_IDS:
            extra.append(
                Finding(
                    "ack-unknown-rule",
                    WARNING,
                    unit.version,
                    unit.source,
                    0,
                    ack.line,
                    f"No lint rule is called {ack.rule}: check the rule id.",
                )
            )
        else:
            reasons.setdefault(ack.rule, ack.reason)
    marked = [f.acknowledge(reasons[f.rule]) if f.rule in reasons else f for f in found]
    return extra + marked
