"""The engine's single error vocabulary, each family with its process exit code.

Raised by the library (config, storage, migrations, backup) and caught once,
at the CLI boundary (``baselinr.cli``), which prints the message on one line
and exits with ``exit_code``. Library callers catch ``BaselinrError``.

    BaselinrError                     (exit 1)
    ├── ValidationFailed              (exit 1)  schema invalid or behind
    ├── UsageError                    (exit 2)  bad arguments, bad migration chain
    │   └── ConfigError               (exit 2)  config file missing or invalid
    ├── DatabaseUnavailable           (exit 3)  cannot connect
    │   └── LockTimeout               (exit 3)  another runner holds the lock
    └── MigrationFailed               (exit 4)  a migration raised while applying
"""

from __future__ import annotations

from collections.abc import Iterable

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_MIGRATION_FAILED = 4


class BaselinrError(Exception):
    """Root of every error the engine raises on purpose."""

    exit_code = EXIT_INVALID

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        """The message and the hint as two sentences (a full stop between them if the message has none)."""
        if self.hint:
            stop = "" if self.message.rstrip().endswith((".", "!", "?")) else "."
            return f"{self.message}{stop} {self.hint}"
        return self.message


class ValidationFailed(BaselinrError):
    """The schema does not match what the code expects."""

    exit_code = EXIT_INVALID


class UsageError(BaselinrError):
    """The request cannot be carried out as asked (arguments, migration chain)."""

    exit_code = EXIT_USAGE


class ConfigError(UsageError):
    """The config file is missing, unreadable or incomplete."""


class DatabaseUnavailable(BaselinrError):
    """The storage database cannot be reached."""

    exit_code = EXIT_UNAVAILABLE


class AuthenticationFailed(DatabaseUnavailable):
    """The server refused the credentials: trying again will not help, and may lock the account."""


class LockTimeout(DatabaseUnavailable):
    """Another runner held the migration lock for longer than we would wait."""


class MigrationFailed(BaselinrError):
    """A migration raised while it was being applied or rolled back."""

    exit_code = EXIT_MIGRATION_FAILED

    def __init__(self, message: str, *, version: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.version = version


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each secret replaced by ``***`` where it stands as a value: in a URL's
    user info (as written or percent-encoded), after ``password=`` in a DSN, quoted as a
    parameter, or on its own. Not inside a longer word nor as a DSN's key: with the password ``p``,
    ``postgres://`` stays as it is, and with ``host``, ``localhost``."""
    import re
    from urllib.parse import quote, quote_plus

    for secret in secrets:
        if not secret:
            continue
        for form in sorted({secret, quote(secret, safe=""), quote_plus(secret)}, key=len, reverse=True):
            # Not inside a word, and not a DSN's key ("host=" when the password is "host").
            text = re.sub(rf"(?<![A-Za-z0-9_]){re.escape(form)}(?![A-Za-z0-9_=])", "***", text)
    return text
