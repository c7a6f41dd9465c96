"""One ``baselinr`` invocation's state, carried on click's context object.

``baselinr.cli.main`` makes a fresh ``Session`` for every run and hands it to
click as ``obj``; commands reach it with ``current()``. It holds what the
error reporter needs after a command has failed: the output format the
command asked for (errors become JSON too under ``--output json``) and the
secrets of the config it loaded (redacted from every message). Config is
loaded here and only here (``Session.settings``), and a command's
``MigrationManager`` is built here (``Session.manager``). Nothing is kept at
module level, so ``main`` can run many times in one process.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from baselinr.errors import BaselinrError, ConfigError, redact

if TYPE_CHECKING:
    from baselinr.config import Settings
    from baselinr.storage.migrations.manager import MigrationManager


@dataclass
class Session:
    """What one invocation has learnt so far; created by ``main``, filled by the command it runs."""

    output: str = "text"  # the format of the command's report: text | json | markdown
    secrets: tuple[str, ...] = ()
    # The config's warnings (an unknown key): printed after the command, or as part of its error
    # line, so that an error stays one line.
    warnings: tuple[str, ...] = ()
    command: str | None = None  # the command path that ran (``baselinr migrate apply``), for its trace span
    log_format: str = "text"  # --log-format: json makes every stderr line (and log record) one JSON object

    def use(self, output: str) -> Session:
        """The command's ``--output``: errors follow it (JSON under json, one line otherwise)."""
        self.output = output
        return self

    def redact(self, text: str) -> str:
        return redact(text, self.secrets)

    def settings(self, config_path: str | None) -> Settings:
        """The validated config of ``--config``; its secrets are redacted from then on."""
        if not config_path:
            raise ConfigError("No config file given.", hint="Pass --config config.yml or set BASELINR_CONFIG.")
        from baselinr.config import load_config

        settings = load_config(config_path)
        self.secrets = tuple(settings.storage.connection.secrets)
        self.warnings = settings.warnings
        return settings

    def manager(
        self,
        config_path: str | None,
        *,
        lock_timeout: float = 60.0,
        migrations_package: str | None = None,
        settings: Settings | None = None,
        **guard: Any,
    ) -> MigrationManager:
        """A ``MigrationManager`` for ``--config`` (or ``settings`` loaded already) and ``--migrations``."""
        from baselinr.storage.migrations.chain import DEFAULT_PACKAGE
        from baselinr.storage.migrations.manager import MigrationManager

        settings = settings if settings is not None else self.settings(config_path)
        return MigrationManager.from_settings(
            settings, lock_timeout=lock_timeout, migrations_package=migrations_package or DEFAULT_PACKAGE, **guard
        )

    def report_error(self, exc: BaselinrError) -> None:
        """An error as one line on stderr (and as one JSON document on stdout with --output json)."""
        from baselinr.cli.render import emit_json, markers, one_line

        message = one_line(self.redact(" Note: ".join([str(exc), *self.warnings])))
        if self.output == "json":
            emit_json({"ok": False, "error": message, "exit_code": exc.exit_code, "error_type": type(exc).__name__})
        self.say("error", message, f"{markers(sys.stderr)['error']} {message}")


    def report_warnings(self) -> None:
        """The config's warnings, on stderr, one line each (after a command that did not fail)."""
        if self.warnings:
            from baselinr.cli.render import markers, one_line

            for warning in self.warnings:
                line = one_line(self.redact(warning))
                self.say("warning", line, f"{markers(sys.stderr)['warn']} {line}")

    def say(self, level: str, message: str, text: str | None = None) -> None:
        """One line on stderr: ``text`` (default ``message``) as it is, or under ``--log-format json``
        a JSON object (``baselinr.logs``) with ``level`` and ``message``."""
        if self.log_format == "json":
            import logging

            logging.getLogger("baselinr.cli").log(logging.ERROR if level == "error" else logging.WARNING, message)
        else:
            print(message if text is None else text, file=sys.stderr, flush=True)


def current(output: str | None = None) -> Session:
    """This invocation's session (a fresh one when a command runs outside ``main``), set to ``output``."""
    ctx = click.get_current_context()
    session = ctx.ensure_object(Session)
    session.command = ctx.command_path
    return session.use(output) if output is not None else session
