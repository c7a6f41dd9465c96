"""Run the ``baselinr`` CLI in-process or as a real subprocess, and find its commands, for tests."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

from baselinr.cli import main
from baselinr.cli.app import cli

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Result:
    code: int
    out: str
    err: str


def run(capsys: pytest.CaptureFixture[str], *args: str) -> Result:
    """In-process: fast, same code path as the console script."""
    capsys.readouterr()
    code = main(list(args))
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def run_process(*args: str, env: dict[str, str] | None = None, cwd: str | Path | None = None, timeout: float = 120) -> Result:
    """A real ``python -m baselinr`` process."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "baselinr", *args], capture_output=True, text=True, env=full_env, cwd=cwd, timeout=timeout
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def command_at(*path: str) -> click.Command:
    """The command at ``path`` (``"migrate", "lint"``), resolved as click resolves it on a command line
    (a subcommand kept in its own module is imported then), never read from a group's ``commands``."""
    command: click.Command = cli
    ctx = click.Context(cli, info_name="baselinr")
    for name in path:
        assert isinstance(command, click.Group), f"{ctx.command_path} has no subcommands"
        found = command.get_command(ctx, name)
        assert found is not None, f"{ctx.command_path} has no command {name}"
        command, ctx = found, click.Context(found, parent=ctx, info_name=name)
    return command
