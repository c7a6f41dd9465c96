"""Typed lint results: a ``Finding`` per hazard, a ``LintReport`` per run.

Built by ``baselinr.lint.linter``; rendered as text, JSON or Markdown only by
``baselinr.cli.lint``. Nothing here formats a sentence for a decision: the
CLI and tests read ``rule``, ``severity`` and ``acknowledged``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    """One hazard in one statement of one migration."""

    rule: str
    severity: str  # error | warning
    version: int | None  # None for a file that names no version
    source: str  # the migration's script or the file linted
    statement_index: int  # 1-based position in the migration's statements
    statement: str
    advice: str
    table: str | None = None
    acknowledged: bool = False
    reason: str | None = None  # the acknowledgement's reason

    @property
    def blocking(self) -> bool:
        return self.severity == ERROR and not self.acknowledged

    def acknowledge(self, reason: str) -> Finding:
        return replace(self, acknowledged=True, reason=reason)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LintedUnit:
    """A migration (or file) that was linted, and how many statements it had."""

    version: int | None
    source: str
    statements: int


@dataclass(frozen=True)
class LintReport:
    """Everything one ``lint`` run found, in migration and statement order."""

    dialect: str
    units: list[LintedUnit] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """False when an error-level finding is not acknowledged (exit 1)."""
        return not any(f.blocking for f in self.findings)

    def count(self, severity: str, acknowledged: bool = False) -> int:
        return sum(1 for f in self.findings if f.severity == severity and f.acknowledged == acknowledged)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dialect": self.dialect,
            "ok": self.ok,
            "migrations": [asdict(u) for u in self.units],
            "findings": [f.to_dict() for f in self.findings],
            "errors": self.count(ERROR),
            "warnings": self.count(WARNING),
            "acknowledged": sum(1 for f in self.findings if f.acknowledged),
        }
