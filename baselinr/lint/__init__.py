"""Migration lint: find destructive and locking hazards in pending migrations.

The public surface: ``lint`` (units in, ``LintReport`` out), ``Unit``, and
the typed results ``Finding`` / ``LintReport``. ``sources`` builds units
from files or from a ``MigrationManager``'s plan; ``rules`` holds the rules
per dialect. Called by ``baselinr migrate lint`` (``baselinr.cli.lint``).
"""

from baselinr.lint.findings import ERROR, WARNING, Finding, LintedUnit, LintReport
from baselinr.lint.linter import Unit, lint

__all__ = ["ERROR", "WARNING", "Finding", "LintReport", "LintedUnit", "Unit", "lint"]
