"""The ``baselinr`` command line: parse, call the library, print, exit.

Thin on purpose: every command calls ``MigrationManager`` (or the backup
module) and renders the result. Each run of ``main`` makes one ``Session``
(``baselinr.cli.session``) and hands it to click as the context object; the
command records its output format and its config's secrets there, and
nothing is kept at module level. Errors are caught once, in ``main``: a
``BaselinrError`` is printed as one line (one JSON document on stdout too
under ``--output json``) and becomes the exit code of DESIGN.md; a usage
mistake click finds is exit 2, one line, the same way, and so is a file or
directory this user may not open (a backup to restore); a connection the
server dropped is exit 3. ``--debug`` adds the traceback and changes nothing
else.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from baselinr.cli.app import cli

if TYPE_CHECKING:
    import logging

    from baselinr.cli.session import Session
    from baselinr.errors import BaselinrError


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the process exit code. The whole run is one span when
    ``OTEL_*`` switches tracing on (``baselinr.tracing``), named after the command it ran."""
    from baselinr import tracing
    from baselinr.cli.session import Session

    args = sys.argv[1:] if argv is None else argv
    # Until the command reads its own --output, errors follow what the line asks for.
    session = Session(output="json" if _wants_json(args) else "text", log_format=_log_format(args))
    handler = _json_logs() if session.log_format == "json" else None
    try:
        _warn(session, tracing.start())
        with tracing.span("baselinr") as span:
            code = _run(args, session)
            tracing.annotate(span, command=session.command, exit_code=code)
            tracing.end_command(span, session.command or "baselinr", code)
        _warn(session, tracing.finish())
    finally:
        if handler is not None:
            import logging

            logging.getLogger().removeHandler(handler)
    return code


def _warn(session: Session, problem: str | None) -> None:
    """A tracing problem as one warning line on stderr (tracing never changes a command's result)."""
    if problem is not None:
        from baselinr.cli.render import markers

        session.say("warning", problem, f"{markers(sys.stderr)['warn']} {problem}")


def _log_format(args: list[str]) -> str:
    """``--log-format`` as the line gives it (read before click, so that every error follows it), else
    ``BASELINR_LOG_FORMAT``; click checks the value itself when it parses the line."""
    import os

    fmt = os.environ.get("BASELINR_LOG_FORMAT", "text")
    for i, arg in enumerate(args):
        if arg == "--":
            break
        if arg == "--log-format" and i + 1 < len(args):
            fmt = args[i + 1]
        elif arg.startswith("--log-format="):
            fmt = arg.removeprefix("--log-format=")
    return "json" if fmt.strip().lower() == "json" else "text"


def _json_logs() -> logging.Handler:
    """Log records (the engine's from INFO, others' from WARNING) as JSON lines on stderr; the handler."""
    import logging

    from baselinr.logs import JsonLines, install

    install()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines())
    root = logging.getLogger()
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.WARNING:
        root.setLevel(logging.WARNING)
    logging.getLogger("baselinr").setLevel(logging.INFO)
    return handler


def _run(args: list[str], session: Session) -> int:
    """Run the command of ``args``; its exit code. Nothing escapes as a traceback."""
    import click

    from baselinr.errors import BaselinrError, UsageError

    debug = "--debug" in args

    def fail(error: BaselinrError) -> int:
        if debug:
            import traceback  # only --debug prints one: not worth importing on every run

            traceback.print_exc(file=sys.stderr)
        session.report_error(error)
        return error.exit_code

    try:
        cli.main(args=args, prog_name="baselinr", standalone_mode=False, obj=session)
    except click.exceptions.Exit as exc:
        session.report_warnings()
        return int(exc.exit_code)
    except SystemExit as exc:
        session.report_warnings()
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except click.exceptions.Abort:
        print("Aborted.", file=sys.stderr)
        return 130
    except click.ClickException as exc:
        return fail(UsageError(_one_line(exc)))
    except BaselinrError as exc:
        return fail(exc)
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    except PermissionError as exc:
        # A file or directory the user named (a backup, a destination) that this user may not open.
        return fail(_permission_denied(exc))
    except Exception as exc:  # noqa: BLE001 - the boundary: nothing escapes as a traceback
        lost = _connection_lost(exc)
        if lost is not None:
            return fail(lost)
        return fail(
            BaselinrError(
                f"Unexpected error: {exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                hint="Rerun with --debug for details.",
            )
        )
    session.report_warnings()
    return 0


def _wants_json(args: list[str]) -> bool:
    """Whether ``--output json`` (also ``-o json``, ``--output=json``, ``-ojson``)
    is the last output format given, as click reads it."""
    fmt = "text"
    for i, arg in enumerate(args):
        if arg == "--":
            break
        if arg in ("--output", "-o") and i + 1 < len(args):
            fmt = args[i + 1]
        elif arg.startswith("--output="):
            fmt = arg.removeprefix("--output=")
        elif arg.startswith("-o") and not arg.startswith("--") and len(arg) > 2:
            fmt = arg[2:]
    return fmt == "json"


def _one_line(exc: object) -> str:
    """Click's usage message on one line, with where to find help."""
    import click

    message = " ".join(str(getattr(exc, "format_message", lambda: str(exc))()).split())
    ctx = getattr(exc, "ctx", None)
    if isinstance(exc, click.UsageError) and ctx is not None:
        message += f" (see '{ctx.command_path} --help')"
    return message[:500]


def _permission_denied(exc: PermissionError) -> BaselinrError:
    """Exit 2 naming the path, its mode and owner where they can be read, and what to do."""
    import os

    from baselinr.errors import UsageError

    path = str(exc.filename) if exc.filename is not None else None
    if path is None:
        return UsageError(f"Permission denied: {exc.strerror or exc}", hint="Check the permissions of the files named.")
    try:
        st = os.stat(path)
        mode = f" (mode {st.st_mode & 0o777:04o}, owner uid {st.st_uid})"
    except OSError:
        mode = ""
    return UsageError(
        f"Permission denied: this user cannot open {path}{mode}",
        hint=f"Give this user access to it and to the directories above it (e.g. chmod u+rwX {path}), or run as its owner.",
    )


def _connection_lost(exc: BaseException) -> BaselinrError | None:
    """A DB-API error that means the server went away (or never answered):
    exit 3 with the driver's own first line, not "Unexpected error"."""
    sqlalchemy = sys.modules.get("sqlalchemy")
    # The bare driver's connection (storage/dbapi.py) marks a driver error that lost the connection.
    lost = getattr(exc, "connection_invalidated", False) is True
    if sqlalchemy is not None and isinstance(exc, sqlalchemy.exc.DBAPIError):
        lost = exc.connection_invalidated or isinstance(exc, sqlalchemy.exc.InterfaceError)
    if not lost:
        return None
    from baselinr.errors import DatabaseUnavailable
    from baselinr.storage.connection import first_line

    return DatabaseUnavailable(
        f"Lost the connection to the database: {first_line(getattr(exc, 'orig', None) or exc)}",
        hint="Check that the server is running (behind PgBouncer: that its pool_mode is not statement).",
    )
