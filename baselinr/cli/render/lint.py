"""Text and Markdown rendering of a ``LintReport`` (``baselinr migrate lint``).

Called by ``baselinr.cli.lint``, and for the findings of a dry run by
``render.migrate`` (text) and ``render.markdown`` (its findings table);
JSON is the report's ``to_dict``. The Markdown is a table meant to be
posted as a pull-request comment.
"""

from __future__ import annotations

from baselinr.cli.render import markers
from baselinr.lint import ERROR, Finding, LintReport


def _where(f: Finding) -> str:
    name = f"v{f.version}" if f.version is not None else f.source
    return f"{name} statement {f.statement_index}" if f.statement_index else name


def summary(r: LintReport) -> str:
    acked = sum(1 for f in r.findings if f.acknowledged)
    return (
        f"{len(r.units)} migration(s) on {r.dialect}: {r.count(ERROR)} error(s), "
        f"{r.count('warning')} warning(s), {acked} acknowledged"
    )


def first_line(sql: str, width: int = 100) -> str:
    kept = [ln for ln in sql.splitlines() if not ln.strip().startswith("--")] or sql.splitlines()
    line = " ".join(" ".join(kept).split())
    return line if len(line) <= width else line[: width - 3] + "..."


def lint_text(r: LintReport) -> list[str]:
    m = markers()
    if not r.units:
        return [f"{m['ok']} Nothing to lint: no pending migration"]
    lines = []
    for f in r.findings:
        mark = m["error"] if f.severity == ERROR else m["warn"]
        label = f"{f.severity}, acknowledged: {f.reason}" if f.acknowledged else f.severity
        lines.append(f"{mark} {_where(f)} [{f.rule}] ({label})")
        lines.append(f"    {first_line(f.statement)}")
        lines.append(f"    {f.advice}")
    lines.append(("" if not lines else "\n") + f"{m['ok'] if r.ok else m['error']} {summary(r)}")
    return lines


def cell(text: str) -> str:
    """``text`` as one Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def code(text: str) -> str:
    """``text`` as an inline code span inside a table cell."""
    # A double-backtick code span holds MySQL's `quoted` identifiers.
    return f"`` {cell(text)} ``" if "`" in text else f"`{cell(text)}`"


def findings_table(findings: list[Finding]) -> list[str]:
    """The findings as a Markdown table (one row each)."""
    lines = ["| | Migration | Statement | Rule | Severity | Advice |", "|---|---|---|---|---|---|"]
    for f in findings:
        icon = ":white_check_mark:" if f.acknowledged else (":x:" if f.severity == ERROR else ":warning:")
        severity = f"{f.severity} (acknowledged: {cell(f.reason or '')})" if f.acknowledged else f.severity
        where = f"v{f.version}" if f.version is not None else cell(f.source)
        stmt = f"{f.statement_index}: {code(first_line(f.statement, 80))}" if f.statement_index else "-"
        lines.append(f"| {icon} | {where} | {stmt} | `{f.rule}` | {severity} | {cell(f.advice)} |")
    return lines


def lint_markdown(r: LintReport) -> list[str]:
    lines = [f"### baselinr migrate lint ({r.dialect})", ""]
    if not r.units:
        return [*lines, "No pending migration."]
    lines += [
        "Migrations: " + ", ".join(f"v{u.version}" if u.version is not None else f"`{cell(u.source)}`" for u in r.units),
        "",
    ]
    if not r.findings:
        lines.append(f"No findings in {len(r.units)} migration(s).")
    else:
        lines += findings_table(r.findings)
    lines += ["", f"**{'Passed' if r.ok else 'Failed'}**: {summary(r)}"]
    if not r.ok:
        lines += ["", "Fix the errors, or accept one in its migration with `-- baselinr-lint: ignore <rule-id> <reason>`."]
    return lines
