"""Options shared by every ``baselinr`` command group (migrate, backup, job).

Declared once here so each group spells ``--config``, ``--output``,
``--lock-timeout``, ``--ddl-lock-timeout`` and ``--migrations`` the same way.
"""

from __future__ import annotations

import math
from typing import Any

import click

# Versions are stored in an INTEGER column; a target beyond it is a typo.
MAX_VERSION = 2**31 - 1
MAX_LOCK_TIMEOUT = 86400.0


class Seconds(click.ParamType[float]):
    """A finite number of seconds, 0..``MAX_LOCK_TIMEOUT``: ``nan`` or ``inf`` would wait forever."""

    name = "seconds"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        try:
            seconds = float(value)
        except (TypeError, ValueError, OverflowError):
            self.fail(f"{str(value)[:40]!r} is not a number of seconds", param, ctx)
        if not math.isfinite(seconds) or not 0 <= seconds <= MAX_LOCK_TIMEOUT:
            self.fail(f"{str(value)[:40]} is not between 0 and {MAX_LOCK_TIMEOUT:g} seconds", param, ctx)
        return seconds


VERSION = click.IntRange(min=0, max=MAX_VERSION)

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
    type=Seconds(),
    default=60.0,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait for another runner's migration lock (0 to 86400).",
)
ddl_lock_options = (
    click.option(
        "--ddl-lock-timeout",
        type=Seconds(),
        default=2.0,
        show_default=True,
        metavar="SECONDS",
        help="How long each migration's DDL may wait for a table lock before it backs off and tries again "
        "(0 to 86400; 0: as long as the server would). A migration's own lock_timeout wins.",
    ),
    click.option(
        "--ddl-lock-tries",
        type=click.IntRange(1, 100),
        default=5,
        show_default=True,
        metavar="N",
        help="How many times a migration is tried when its DDL times out waiting for a lock (1 to 100).",
    ),
)


def ddl_lock_option(fn: Any) -> Any:
    """``--ddl-lock-timeout`` and ``--ddl-lock-tries``, for the commands that run migrations."""
    for option in reversed(ddl_lock_options):
        fn = option(fn)
    return fn


migrations_option = click.option(
    "--migrations",
    "migrations_package",
    default=None,
    metavar="PACKAGE",
    hidden=True,
    help="Import path of the versions package (default: Baselinr's own).",
)
