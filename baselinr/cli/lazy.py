"""A click group whose subcommands are imported when they are first needed.

``baselinr.cli.app`` builds the ``baselinr`` and ``baselinr migrate`` groups
with it, so that ``baselinr migrate status`` does not import the modules of
``backup``, ``job``, ``migrate lint`` or ``migrate test`` (and what they pull
in) on every run. A group lists its lazy subcommands by name next to the ones
defined in place; click asks ``list_commands`` and ``get_command`` for every
use of a subcommand (running it, ``--help``, shell completion, suggestions),
so a lazy command is imported there, once, and from then on it is an ordinary
registered command. The command lists, help texts and completions are the
same as with every command registered up front.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import click


class LazyGroup(click.Group):
    """A ``click.Group`` with subcommands in ``lazy``: name -> ``"module:attribute"``, imported on first use."""

    def __init__(self, *args: Any, lazy: Mapping[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy: dict[str, str] = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            self.add_command(load_command(self.lazy[cmd_name]), cmd_name)
        return super().get_command(ctx, cmd_name)


def load_command(target: str) -> click.Command:
    """The click command at ``"module:attribute"`` (a mistyped target fails loudly: it is our own code)."""
    module_name, _, attribute = target.partition(":")
    command = getattr(importlib.import_module(module_name), attribute)
    if not isinstance(command, click.Command):
        raise TypeError(f"{target} is not a click command")
    return command
