"""Split a multi-statement SQL script into statements, per dialect.

Used by the migration manager for ``up_sql`` / ``down_sql`` and by dry runs.
A real lexer, not ``str.split(";")``: it keeps semicolons that sit inside
quoted strings and identifiers, ``--`` / ``#`` / nested ``/* */`` comments,
PostgreSQL ``E''`` strings and tagged dollar quotes, Snowflake ``$$`` bodies,
``BEGIN … END`` blocks of triggers, procedures and anonymous blocks, and the
MySQL client's ``DELIMITER`` command. Statements that hold only comments or
whitespace are dropped; the text of the others is kept as written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")
_DELIMITER = re.compile(r"[ \t]*DELIMITER[ \t]+(\S+)[ \t]*(?:\r?\n|$)", re.IGNORECASE)
_BLOCK_START = re.compile(
    r"\s*(CREATE\s+(OR\s+REPLACE\s+)?(DEFINER\s*=\s*\S+\s+)?(TEMP\w*\s+)?"
    r"(TRIGGER|PROCEDURE|FUNCTION|EVENT)\b|BEGIN\b(?!\s*(;|TRANSACTION\b|WORK\b|IMMEDIATE\b|EXCLUSIVE\b|DEFERRED\b|$))|DECLARE\b|EXECUTE\s+IMMEDIATE\b)",
    re.IGNORECASE,
)
_LOOP_ENDS = {"IF", "LOOP", "WHILE", "REPEAT", "FOR"}


@dataclass(frozen=True)
class SplitRules:
    """What a dialect's lexer must know about its SQL."""

    backslash_escapes: bool = False  # MySQL: 'it\'s'
    escape_string_prefix: bool = False  # PostgreSQL: E'it\'s'
    dollar_quotes: bool = False  # PostgreSQL $tag$…$tag$, Snowflake $$…$$
    hash_comments: bool = False  # MySQL: # comment
    nested_comments: bool = False  # PostgreSQL: /* /* */ */
    backticks: bool = False  # MySQL, SQLite: `ident`
    brackets: bool = False  # SQLite: [ident]
    delimiter_command: bool = False  # MySQL client's DELIMITER
    blocks: bool = True  # BEGIN … END bodies in CREATE TRIGGER/PROCEDURE


GENERIC = SplitRules()


def split_sql(sql: str, rules: SplitRules = GENERIC) -> list[str]:
    """Return the statements of ``sql``, without their terminators."""
    out: list[str] = []
    delimiter = ";"
    i = 0
    n = len(sql)
    start = 0
    depth = 0
    block_mode: bool | None = None  # decided at the first significant token
    prev_word = ""
    at_line_start = True

    def flush(end: int) -> None:
        nonlocal start, depth, block_mode, prev_word
        text = sql[start:end].strip()
        if text and _has_code(text, rules):
            out.append(text)
        depth = 0
        block_mode = None
        prev_word = ""

    while i < n:
        ch = sql[i]
        if rules.delimiter_command and at_line_start:
            m = _DELIMITER.match(sql, i)
            if m and not _has_code(sql[start:i], rules):
                delimiter = m.group(1)
                i = m.end()
                start = i
                continue
        at_line_start = False
        if ch == "\n":
            at_line_start = True
            i += 1
            continue
        if ch in " \t\r":
            i += 1
            continue
        if (ch == "-" and sql.startswith("--", i)) or (rules.hash_comments and ch == "#"):
            j = sql.find("\n", i)
            i = n if j < 0 else j
            continue
        if ch == "/" and sql.startswith("/*", i):
            i = _skip_block_comment(sql, i, rules.nested_comments)
            continue
        if block_mode is None:
            block_mode = bool(rules.blocks and _BLOCK_START.match(sql, i))
        if ch == "'":
            escapes = rules.backslash_escapes or (
                rules.escape_string_prefix and i > 0 and sql[i - 1] in "eE" and (i < 2 or not _is_word(sql[i - 2]))
            )
            i = _skip_quoted(sql, i, "'", escapes)
            prev_word = ""
            continue
        if ch == '"':
            i = _skip_quoted(sql, i, '"', rules.backslash_escapes)
            prev_word = ""
            continue
        if ch == "`" and rules.backticks:
            i = _skip_quoted(sql, i, "`", False)
            continue
        if ch == "[" and rules.brackets:
            j = sql.find("]", i + 1)
            i = n if j < 0 else j + 1
            continue
        if ch == "$" and rules.dollar_quotes:
            m = _DOLLAR_TAG.match(sql, i)
            if m and (i == 0 or not _is_word(sql[i - 1])):
                close = sql.find(m.group(0), m.end())
                i = n if close < 0 else close + len(m.group(0))
                continue
        if sql.startswith(delimiter, i) and (delimiter != ";" or depth <= 0):
            flush(i)
            i += len(delimiter)
            start = i
            continue
        if ch.isalpha() or ch == "_":
            m = _WORD.match(sql, i)
            assert m is not None
            word = m.group(0).upper()
            if block_mode:
                if word in ("BEGIN", "CASE") and not (word == "BEGIN" and prev_word == "END"):
                    depth += 1
                elif word == "END":
                    nxt = _WORD.match(sql, _skip_ws(sql, m.end()))
                    follower = nxt.group(0).upper() if nxt else ""
                    if follower not in _LOOP_ENDS:
                        depth -= 1
            prev_word = word
            i = m.end()
            continue
        i += 1
    flush(n)
    return out


def _is_word(ch: str) -> bool:
    return ch.isalnum() or ch in "_$"


def _skip_ws(sql: str, i: int) -> int:
    while i < len(sql) and sql[i] in " \t\r\n":
        i += 1
    return i


def _skip_quoted(sql: str, i: int, quote: str, backslash: bool) -> int:
    j = i + 1
    n = len(sql)
    while j < n:
        c = sql[j]
        if backslash and c == "\\":
            j += 2
            continue
        if c == quote:
            if j + 1 < n and sql[j + 1] == quote:
                j += 2
                continue
            return j + 1
        j += 1
    return n


def _skip_block_comment(sql: str, i: int, nested: bool) -> int:
    depth = 0
    j = i
    n = len(sql)
    while j < n:
        if sql.startswith("/*", j):
            depth = depth + 1 if nested or depth == 0 else depth
            j += 2
            continue
        if sql.startswith("*/", j):
            depth -= 1
            j += 2
            if depth <= 0:
                return j
            continue
        j += 1
    return n


def _has_code(text: str, rules: SplitRules) -> bool:
    """True if ``text`` holds anything besides comments."""
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch in " \t\r\n":
            i += 1
        elif text.startswith("--", i) or (rules.hash_comments and ch == "#"):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            i = _skip_block_comment(text, i, rules.nested_comments)
        else:
            return True
    return False
