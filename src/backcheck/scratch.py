"""Large scratch arrays, lent out and kept between checks.

Fresh memory is paid for when first touched, one page fault per page; a check over a million elements would
otherwise touch tens of megabytes of it on every run, and leave the function under test fresh memory for its
own temporaries on every call. Buffers are lent, never shared: two checks at once (threads, or a check inside
a checked function) each get their own. A few are kept for the next check, up to :data:`KEEP_BYTES`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

#: Buffers of fewer elements are allocated as usual (small allocations are reused by the allocator).
LEND_FROM = 1 << 16
#: The most memory kept for the next check.
KEEP_BYTES = 64 << 20

_kept: list[np.ndarray] = []
_lock = threading.Lock()


@contextmanager
def lend(n: int) -> Iterator[np.ndarray]:
    """A float64 buffer of ``n`` elements (its contents undefined) for the duration of the block."""
    if n < LEND_FROM:
        yield np.empty(n)
        return
    buf = _take(n)
    try:
        yield buf[:n]
    finally:
        _give(buf)


def _take(n: int) -> np.ndarray:
    with _lock:
        fits = [k for k, b in enumerate(_kept) if b.size >= n]
        if fits:
            return _kept.pop(min(fits, key=lambda k: _kept[k].size))
    return np.empty(n)


def _give(buf: np.ndarray) -> None:
    with _lock:
        _kept.append(buf)
        while sum(b.nbytes for b in _kept) > KEEP_BYTES:
            _kept.pop(min(range(len(_kept)), key=lambda k: _kept[k].size))  # (by position: == compares arrays)


def release() -> None:
    """Free every kept buffer."""
    with _lock:
        _kept.clear()


__all__ = ["KEEP_BYTES", "LEND_FROM", "lend", "release"]
