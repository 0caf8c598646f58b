"""Large numpy temporaries without page faults: a performance setting, with no effect on results.

glibc serves every allocation above its mmap threshold (at most 32 MB) with a fresh mmap and
returns it on free, so array operations of tens of MB, repeated thousands of times by a brute
force, spend about a third of their time in the kernel faulting pages in. Inside `retained()`
glibc serves them from the heap and keeps freed memory for reuse (the process's peak memory is
unchanged: the same arrays are alive at once). Elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from contextlib import contextmanager

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
DEFAULT_TRIM_THRESHOLD, DEFAULT_MMAP_MAX = 128 * 1024, 65536


def _libc():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "gnu_get_libc_version") else None
    except OSError:
        return None


@contextmanager
def retained():
    libc = _libc()
    if libc is None:
        yield
        return
    libc.mallopt(M_MMAP_MAX, 0)
    libc.mallopt(M_TRIM_THRESHOLD, 1 << 30)
    try:
        yield
    finally:
        libc.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
        libc.mallopt(M_TRIM_THRESHOLD, DEFAULT_TRIM_THRESHOLD)
