"""Text and Markdown rendering of a ``SelfTestResult`` (``baselinr migrate test``).

Called only by ``baselinr.cli.selftest``; JSON is the result's ``to_dict``.
The Markdown is a table meant to be posted as a pull-request comment.
"""

from __future__ import annotations

from types import MappingProxyType

from baselinr.cli.render import markers
from baselinr.storage.migrations.selftest import FAILED_KINDS, Mismatch, SelfTestResult, VersionOutcome

PHASES = MappingProxyType({"up": "up", "down": "down", "reup": "up again"})


def _what(m: Mismatch) -> str:
    return f"{m.table}.{m.object}" if m.table and m.object else m.table or m.object


def describe(m: Mismatch) -> str:
    """One mismatch on one line, without its version."""
    if m.kind in FAILED_KINDS.values():
        return f"{PHASES[m.phase]} failed: {m.found}"
    return f"{PHASES[m.phase]}: {m.kind} {_what(m)}: expected {m.expected}, found {m.found} (against the {m.against})"


def version_lines(v: VersionOutcome) -> list[str]:
    mk = markers()
    ran = ", ".join(PHASES[p] for p in v.phases)
    head = f"{mk['ok'] if v.ok else mk['error']} v{v.version} {v.description}: {ran}"
    lines = [head + (f" ({v.note})" if v.note else "")]
    lines += [f"    {describe(m)}" for m in v.mismatches]
    return lines


def untested(r: SelfTestResult) -> str:
    """The versions a failed step left untested (``stopped_at`` < ``target``)."""
    first = (r.stopped_at or 0) + 1
    return f"v{first} was not tested" if first == r.target else f"v{first}..v{r.target} were not tested"


def header(database: str) -> str:
    return f"Testing each migration up, down and up again on {database}"


def summary(r: SelfTestResult) -> list[str]:
    mk = markers()
    lines = []
    if r.stopped_at is not None and r.stopped_at < r.target:
        lines.append(f"{mk['warn']} Stopped at v{r.stopped_at}: {untested(r)}")
    failed = [v for v in r.versions if not v.ok]
    if r.ok:
        lines.append(f"{mk['ok']} v1..v{r.target} passed on {r.dialect}: up, down and up again match the schema each time")
    else:
        lines.append(
            f"{mk['error']} {len(failed)} of {len(r.versions)} version(s) failed on {r.dialect}: {len(r.mismatches)} mismatch(es)"
        )
    return lines


def selftest_text(r: SelfTestResult) -> list[str]:
    lines = [header(r.database)]
    for v in r.versions:
        lines += version_lines(v)
    return [*lines, "", *summary(r)]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def selftest_markdown(r: SelfTestResult) -> list[str]:
    lines = [f"### baselinr migrate test ({r.dialect})", ""]
    lines += ["| | Version | Phases | Result |", "|---|---|---|---|"]
    for v in r.versions:
        icon = ":white_check_mark:" if v.ok else ":x:"
        ran = ", ".join(PHASES[p] for p in v.phases)
        result = "match" if v.ok else f"{len(v.mismatches)} mismatch(es)"
        if v.note:
            result += f" ({_cell(v.note)})"
        lines.append(f"| {icon} | v{v.version} {_cell(v.description)} | {ran} | {result} |")
    if r.mismatches:
        lines += ["", "| Version | Phase | Kind | Table | Object | Expected | Found | Compared with |", "|---" * 8 + "|"]
        for m in r.mismatches:
            cells = (m.kind, m.table, m.object, m.expected, m.found, m.against)
            lines.append(f"| v{m.version} | {PHASES[m.phase]} | " + " | ".join(_cell(c) or "-" for c in cells) + " |")
    if r.stopped_at is not None and r.stopped_at < r.target:
        lines += ["", f"Stopped at v{r.stopped_at}: {untested(r)}."]
    verdict = "Passed" if r.ok else "Failed"
    return [*lines, "", f"**{verdict}**: {len(r.versions)} version(s), {len(r.mismatches)} mismatch(es)"]
