"""Lazily loaded subcommands change nothing a user sees.

``--help`` of every group, each command's ``--help`` and shell completion, run as
real ``python -m baselinr`` processes, are what the same groups print with every
command of their registry (the ones defined in place and the ``"module:attribute"``
entries of ``lazy``) registered up front, as plain click groups. The registry is
read from the CLI itself, never from a copy kept here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import click
import pytest

from baselinr.cli.app import cli
from baselinr.cli.lazy import LazyGroup, load_command
from tests.support.cli import ROOT

WIDTH = "100"  # the terminal width of the processes and of the expected text


@pytest.fixture(autouse=True)
def _width(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", WIDTH)  # click reads it for the expected text too


def _baselinr(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "baselinr", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": WIDTH, **env},
        timeout=60,
    )


def registry(group: click.Group) -> dict[str, click.Command]:
    """Every subcommand ``group`` declares, loaded: the ones defined in place and its lazy entries."""
    found = dict(group.commands)
    if isinstance(group, LazyGroup):
        found |= {name: load_command(target) for name, target in group.lazy.items()}
    return found


def eager(group: click.Group) -> click.Group:
    """``group`` as a plain click group with its whole registry registered up front."""
    return click.Group(
        group.name,
        commands=registry(group),
        params=group.params,
        help=group.help,
        epilog=group.epilog,
        short_help=group.short_help,
        options_metavar=group.options_metavar,
        context_settings=group.context_settings,
        no_args_is_help=group.no_args_is_help,
    )


def groups(group: click.Group = cli, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Group]]:
    """Every group of the CLI with its command path (``()`` is ``baselinr`` itself)."""
    yield path, group
    for name, command in registry(group).items():
        if isinstance(command, click.Group):
            yield from groups(command, (*path, name))


GROUPS = dict(groups())


def context(path: tuple[str, ...], command: click.Command) -> click.Context:
    """The context click gives ``command`` on ``baselinr PATH``: under its parents' real groups,
    with its context settings (``-h``), parsing nothing."""
    ctx = None
    for depth in range(len(path)):
        ctx = GROUPS[path[:depth]].make_context(("baselinr", *path)[depth], [], parent=ctx, resilient_parsing=True)
    return command.make_context(path[-1] if path else "baselinr", [], parent=ctx, resilient_parsing=True)


def test_every_lazy_entry_loads_the_command_it_names() -> None:
    lazy = {
        (path, name): target
        for path, group in GROUPS.items()
        if isinstance(group, LazyGroup)
        for name, target in group.lazy.items()
    }
    assert {name for _, name in lazy} >= {"backup", "job", "lint", "test"}
    for (path, name), target in lazy.items():
        assert load_command(target).name == name, (path, target)
        assert name not in GROUPS[path].commands or GROUPS[path].commands[name] is load_command(target)


@pytest.mark.parametrize("path", list(GROUPS), ids=lambda p: " ".join(("baselinr", *p)))
def test_group_help_lists_every_command_of_its_registry(path: tuple[str, ...]) -> None:
    plain = eager(GROUPS[path])
    done = _baselinr(*path, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout == plain.get_help(context(path, plain)) + "\n"
    listed = done.stdout.split("Commands:", 1)[1].splitlines()
    for name in registry(GROUPS[path]):
        assert any(line.split()[:1] == [name] for line in listed), name


def test_every_command_help_is_its_own() -> None:
    """Each command's ``--help`` in a fresh process, which loads only the modules on its path."""
    leaves = [
        (*path, name) for path, group in GROUPS.items() for name, c in registry(group).items() if not isinstance(c, click.Group)
    ]
    assert len(leaves) >= 20
    for path in leaves:
        command = registry(GROUPS[path[:-1]])[path[-1]]
        done = _baselinr(*path, "--help")
        assert done.returncode == 0, (path, done.stderr)
        assert done.stdout == command.get_help(context(path, command)) + "\n", path


@pytest.mark.parametrize("path", list(GROUPS), ids=lambda p: " ".join(("baselinr", *p)))
def test_completion_offers_every_command_of_the_registry(path: tuple[str, ...]) -> None:
    words = " ".join(("baselinr", *path, ""))
    done = _baselinr(_BASELINR_COMPLETE="bash_complete", COMP_WORDS=words, COMP_CWORD=str(len(path) + 1))
    assert done.returncode == 0, done.stderr
    offered = [line.split(",", 1)[1] for line in done.stdout.splitlines() if line.startswith("plain,")]
    assert offered == sorted(registry(GROUPS[path]))
