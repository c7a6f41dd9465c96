"""Acknowledgements: ``-- baselinr-lint: ignore <rule-id> <reason>`` comments.

Found anywhere in a migration's SQL or its module's source (docstring or
comment, ``--`` or ``#``). Read by ``linter``, which marks matching findings
acknowledged for that migration; an acknowledgement without a reason counts
as none and is itself reported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ACK = re.compile(r"baselinr-lint:\s*ignore[ \t]+([A-Za-z0-9_-]+)[ \t]*([^\n]*)")


@dataclass(frozen=True)
class Ack:
    rule: str
    reason: str  # empty when the comment gave none
    line: str


def parse_acks(text: str) -> list[Ack]:
    """Every acknowledgement comment in ``text``, in order."""
    acks = []
    for m in _ACK.finditer(text):
        reason = m.group(2).strip().rstrip('"').strip()
        acks.append(Ack(m.group(1).lower(), reason, m.group(0).strip()))
    return acks
