"""The deflate (gzip) implementation behind backup files: ISA-L where it is installed, else zlib.

Used by ``streams`` only. Both write and read the same format, a standard
gzip member (``wbits`` 31) that ``gzip(1)`` and Python's ``gzip`` module
read, so a backup written with one is read by the other. ISA-L's
``isal_zlib`` (the ``isal`` package, a dependency on the platforms it has
wheels for) compresses at level 1 about three times as fast as zlib, into
smaller files, and decompresses about twice as fast; that is the most of
a backup's CPU time. Levels: ISA-L has 0-3, zlib 0-9; both mean level 1
by ``LEVEL``. A decompression error is always a ``zlib.error``, whichever
implementation raised it, so callers need to know of one only.
"""

from __future__ import annotations

import importlib
import zlib
from types import ModuleType
from typing import Any

_impl: ModuleType
try:
    _impl = importlib.import_module("isal.isal_zlib")
    IMPLEMENTATION = "isa-l"
except ImportError:  # pragma: no cover - platforms without an isal wheel
    _impl = zlib
    IMPLEMENTATION = "zlib"
_ERRORS: tuple[type[Exception], ...] = (getattr(_impl, "error", zlib.error), zlib.error)

LEVEL = 1
GZIP_WBITS = 31


def compressobj(level: int = LEVEL) -> Any:
    """A compressor that writes one gzip member."""
    return _impl.compressobj(level, _impl.DEFLATED, GZIP_WBITS)


def decompressobj() -> Any:
    """A decompressor for one gzip member (``eof``, ``unused_data``, ``unconsumed_tail`` as zlib's)."""
    return _impl.decompressobj(GZIP_WBITS)


def decompress(decompressor: Any, data: bytes, max_length: int) -> bytes:
    """``decompressor.decompress(data, max_length)``, any error raised as ``zlib.error`` with its message."""
    try:
        return bytes(decompressor.decompress(data, max_length))
    except _ERRORS as exc:
        if isinstance(exc, zlib.error):
            raise
        raise zlib.error(str(exc)) from None
