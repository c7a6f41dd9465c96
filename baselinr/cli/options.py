"""Options shared by every ``baselinr`` command group (migrate, backup, job).

Declared once here so each group spells ``--config``, ``--output``,
``--lock-timeout`` and ``--migrations`` the same way.
"""

from __future__ import annotations

import click

config_option = click.option(
    "--config",
    "-c",
    "config_path",
    envvar="BASELINR_CONFIG",
    metavar="PATH",
    help="Baselinr config.yml (its storage.connection is used). Env: BASELINR_CONFIG.",
)
output_option = click.option(
    "--output", "-o", type=click.Choice(["text", "json"]), default="text", show_default=True, help="Output format."
)
lock_option = click.option(
    "--lock-timeout",
    type=float,
    default=60.0,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait for another runner's migration lock.",
)
migrations_option = click.option(
    "--migrations",
    "migrations_package",
    default=None,
    metavar="PACKAGE",
    hidden=True,
    help="Import path of the versions package (default: Baselinr's own).",
)
