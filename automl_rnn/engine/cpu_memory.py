"""Keep freed memory in the process for reuse, so CPU training takes fewer page faults.

A training step on long sequences allocates and frees tensors of several MB. glibc's malloc
serves blocks above its mmap threshold straight from the kernel and hands them back when they
are freed, and it trims the top of its heap when enough of it is free; the next step then
faults every page in again (the kernel zeroes each one first). On a 16 x 4096 batch that is
about ten thousand page faults a step and 10-30% of its time (``benchmarks/arch_speed.py``).
PyTorch's GPU allocator caches blocks for the same reason. ``keep_freed_memory`` raises the
mmap threshold to glibc's ceiling (32 MB) and the trim threshold to 1 GB, so freed blocks stay
in the heap and are reused; the process's resident memory then stays near its peak.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 2**20
"""Blocks up to this size come from the heap (glibc's largest mmap threshold on 64 bits)."""
TRIM_THRESHOLD = 2**30
"""The heap gives memory back to the kernel only when this much is free at its top."""


@functools.cache
def keep_freed_memory() -> bool:
    """Set glibc's malloc to keep freed blocks (see the module docstring), once per process.

    Returns True when the settings took effect; False where the C library is not glibc (macOS,
    Windows, musl), which is left as it is.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return False
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
