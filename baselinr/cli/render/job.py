"""The JSON result of an operator Job step (``baselinr job …``), fitted to a termination message.

Called by ``baselinr.cli.job``: Kubernetes keeps at most 4096 bytes of a
container's termination message, so long messages are cut and long lists
shortened until the document fits; the fields the operator reads
(``version``, ``command``, ``ok``, ``exit_code``, the versions) always stay.
"""

from __future__ import annotations

import json
from typing import Any

RESULT_LIMIT = 4000  # Kubernetes keeps at most 4096 bytes of a termination message


def fit(data: dict[str, Any], limit: int = RESULT_LIMIT) -> str:
    """``data`` as compact JSON of at most ``limit`` bytes: long messages are cut, long lists shortened."""
    text = json.dumps(data, default=str, separators=(",", ":"), ensure_ascii=False)
    if len(text.encode()) <= limit:
        return text
    short = dict(data)
    for width, items in ((400, 10), (200, 5), (100, 2), (60, 1)):
        for key in ("errors", "warnings"):
            values = [str(v) for v in short.get(key) or []]
            if values:
                kept = [_cut(v, width) for v in values[:items]]
                if len(values) > items:
                    kept.append(f"... and {len(values) - items} more")
                short[key] = kept
        if short.get("error"):
            short["error"] = _cut(str(data["error"]), width * 4)
        text = json.dumps(short, default=str, separators=(",", ":"), ensure_ascii=False)
        if len(text.encode()) <= limit:
            return text
    minimal = {k: short.get(k) for k in ("version", "command", "ok", "exit_code", "current_version", "code_version")}
    minimal["error"] = _cut(str(short.get("error") or "result too long"), 200)
    return json.dumps(minimal, default=str, separators=(",", ":"), ensure_ascii=False)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."
