"""Progress of long work (per table, rows so far), as a callback the library calls.

``writer``, ``reader`` and ``restore`` call an optional ``ProgressCallback``;
the CLI passes a ``TerminalProgress`` only when stderr is a terminal and the
output is text, so JSON output and logs never get progress lines.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

ProgressCallback = Callable[[str, str, int, "int | None"], None]
"""``(phase, table, rows_done, rows_total_or_None)``; called often, must be cheap."""


class TerminalProgress:
    """One self-overwriting stderr line, redrawn at most a few times a second."""

    def __init__(self, stream: TextIO | None = None, interval: float = 0.2) -> None:
        self.stream = stream or sys.stderr
        self.interval = interval
        self._last = 0.0
        self._current: tuple[str, str] | None = None
        self._width = 0

    def __call__(self, phase: str, table: str, rows: int, total: int | None) -> None:
        now = time.monotonic()
        key = (phase, table)
        finished = total is not None and rows >= total
        if key == self._current and now - self._last < self.interval and not finished:
            return
        if key != self._current and self._current is not None:
            self.stream.write("\n")
            self._width = 0
        self._current = key
        self._last = now
        of = f" / {total:,}" if total is not None else ""
        pct = f" ({100 * rows // total}%)" if total else ""
        line = f"  {phase} {table}: {rows:,}{of} rows{pct}"
        self.stream.write("\r" + line.ljust(self._width))
        self._width = len(line)
        self.stream.flush()

    def close(self) -> None:
        if self._current is not None:
            self.stream.write("\n")
            self.stream.flush()
            self._current = None
