"""Keep freed host memory in the process, so XLA:CPU's per-step buffers stop costing page faults.

XLA:CPU allocates every execution's temporaries (hundreds of MB to GB for a training step)
with glibc's allocator and frees them at the end. glibc serves allocations above 32 MB, and
any large one made from a worker thread's arena, with a fresh `mmap` and returns it with
`munmap`, so each step touches brand-new pages: a page fault per 4 KiB, zero-filled by the
kernel (about a quarter of a VDSM step's wall time on 2 CPU cores; benchmarks/README.md).

`keep_freed_memory()` sets, through `mallopt`, one malloc arena for all threads, no `mmap`
for large blocks and no trimming of the heap's top below 2 GiB (the largest value `mallopt`
takes), so a step's buffers come back from the heap already mapped. It must run before the
first JAX computation: threads pick their arena on their first allocation. The cost is that
the process keeps its peak heap until it exits, which a training process does anyway.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

# glibc's mallopt parameter numbers (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
M_ARENA_MAX = -8
TRIM_THRESHOLD_BYTES = 2**31 - 1  # mallopt takes an int


def keep_freed_memory() -> bool:
    """Apply the glibc settings above; returns False (and changes nothing) where libc is not glibc."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    settings = ((M_ARENA_MAX, 1), (M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
    return all(libc.mallopt(ctypes.c_int(param), ctypes.c_int(value)) == 1 for param, value in settings)
