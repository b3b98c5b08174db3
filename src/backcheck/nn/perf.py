"""Process-level performance settings.

numpy allocates a fresh buffer for every intermediate array.  With glibc's default malloc
settings, the multi-megabyte buffers of a training step (im2col matrices, activations) are
returned to the operating system when freed and page-faulted back in on the next step, which can
double the time of a small convolutional step.  :func:`tune_malloc` raises glibc's mmap and trim
thresholds so freed buffers are kept and reused, the same effect the PyTorch CPU tuning guide gets
from preloading jemalloc or tcmalloc.  It changes the whole process (a little more resident memory
is kept), so it is explicit: :func:`backcheck.nn.fit` calls it unless ``tune_allocator=False``, and
setting the environment variable ``BACKCHECK_NO_MALLOC_TUNING=1`` disables it everywhere.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

__all__ = ["tune_malloc"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_TUNED: bool | None = None


def tune_malloc(mmap_threshold: int = 32 * 1024 * 1024, trim_threshold: int = 256 * 1024 * 1024) -> bool:
    """Keep freed large buffers in the heap for reuse (glibc only; elsewhere a no-op).

    Parameters
    ----------
    mmap_threshold : int
        Allocations below this many bytes come from the heap instead of fresh ``mmap`` pages
        (glibc caps it at 32 MiB on 64-bit systems).
    trim_threshold : int
        Free memory at the top of the heap is returned to the system only beyond this size.

    Returns
    -------
    bool
        True if the settings were applied (now or by an earlier call).

    Examples
    --------
    >>> isinstance(tune_malloc(), bool)
    True
    """
    global _TUNED
    if _TUNED is not None:
        return _TUNED
    _TUNED = False
    if os.environ.get("BACKCHECK_NO_MALLOC_TUNING") or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(_M_TRIM_THRESHOLD, trim_threshold))
    _TUNED = ok
    return ok
