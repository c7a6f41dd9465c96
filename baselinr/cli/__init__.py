"""The ``baselinr`` command line: parse, call the library, print, exit.

Thin on purpose: every command calls ``MigrationManager`` (or the backup
module) and renders the result. Errors from the library (``BaselinrError``)
are caught once, in ``main``, printed as one line and turned into the exit
code of DESIGN.md; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import sys

from baselinr.cli.app import cli


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the process exit code."""
    import click

    from baselinr.errors import EXIT_INVALID, EXIT_USAGE, BaselinrError

    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        cli.main(args=args, prog_name="baselinr", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except click.exceptions.Abort:
        print("Aborted.", file=sys.stderr)
        return 130
    except click.ClickException as exc:
        exc.show()
        return EXIT_USAGE
    except BaselinrError as exc:
        if debug:
            raise
        from baselinr.cli.app import report_error

        report_error(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    except Exception as exc:
        if debug:
            raise
        from baselinr.cli.app import report_error

        report_error(
            BaselinrError(
                f"Unexpected error: {exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                hint="Rerun with --debug for details.",
            )
        )
        return EXIT_INVALID
    return 0
