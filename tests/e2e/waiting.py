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
