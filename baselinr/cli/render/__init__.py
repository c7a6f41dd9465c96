"""Rendering for every ``baselinr`` command: result objects in, lines (or JSON) out.

The command modules (``baselinr.cli.app``, ``backup``, ``backup_clone``,
``job``, ``lint``) parse options, call the library and hand its result to a
function here; nothing here calls the library or decides anything. This
module holds what every format shares: ``markers`` (the guide's emoji, or
``[OK]`` / ``[WARNING]`` … where the stream cannot encode them),
``emit_json``, ``echo`` and ``one_line``. One module per area holds the
rest:

- ``migrate``: text of status, apply / rollback (and their dry runs), validate, repair, baseline, new
- ``markdown``: the pull-request documents of ``apply --dry-run`` and ``validate``
- ``lint``: ``migrate lint`` as text and Markdown (its findings table is reused by ``markdown``)
- ``backup``: ``backup …`` and ``backup clone …`` as text
- ``job``: the operator Jobs' JSON result, fitted to a termination message

A new command adds its text function to the area's module (or a new module
here) and its JSON is its result's ``to_dict()``; a new column of an existing
report is a change to that one function.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, TextIO

import click

_EMOJI = MappingProxyType({"ok": "✅", "dry": "🔍", "warn": "⚠️ ", "error": "❌"})
_PLAIN = MappingProxyType({"ok": "[OK]", "dry": "[DRY RUN]", "warn": "[WARNING]", "error": "[ERROR]"})


def markers(stream: TextIO | None = None) -> Mapping[str, str]:
    """The line markers ``stream`` (default stdout) can print: the guide's emoji, or plain ones."""
    stream = stream or sys.stdout
    try:
        "".join(_EMOJI.values()).encode(stream.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return _PLAIN
    return _EMOJI


def emit_json(data: Any, stream: TextIO | None = None) -> None:
    print(json.dumps(data, indent=2, default=str, ensure_ascii=False), file=stream or sys.stdout)


def echo(lines: list[str]) -> None:
    """Print rendered lines on stdout."""
    click.echo("\n".join(lines))


def one_line(text: str) -> str:
    """``text`` on one line: control characters (a value's ``\\r``, ``\\n``) are shown escaped."""
    return "".join(c if c.isprintable() or c == " " else c.encode("unicode_escape").decode("ascii") for c in text)
