"""Bounded polling for the end-to-end tests: wait for a condition or fail."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """A condition did not become true within its time limit."""


def wait_for(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.2,
) -> T:
    """Call ``probe`` until it returns a truthy value, and return that value.

    Exceptions raised by ``probe`` count as "not yet" and are reported, with
    the last value seen, if ``timeout`` seconds pass first.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = probe()
        except Exception as exc:  # noqa: BLE001 - reported on timeout
            last = f"{type(exc).__name__}: {exc}"
        else:
            if value:
                return value
            last = value
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"timed out after {timeout:g}s waiting for {what}; last seen: {last!r}")
        time.sleep(interval)


def forbidden(log: str) -> bool:
    """True when an operator log shows the API server refusing it (403 / Forbidden): the log's own
    timestamps (``23:55:26,403``) are taken out first, so a millisecond of 403 is not a refusal."""
    import re

    text = re.sub(r"\d{2}:\d{2}:\d{2}[,.]\d{3}", "", log)
    return "Forbidden" in text or re.search(r"\b403\b", text) is not None
