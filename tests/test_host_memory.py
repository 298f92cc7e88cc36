"""vdcore.host_memory: after keep_freed_memory, a large block freed by a worker thread is reused, not re-faulted.

That is the pattern of XLA:CPU's per-execution buffers (allocated and freed on its worker threads);
`python -m benchmarks.run --glibc_malloc_defaults` measures the training steps without it, for comparison.
"""

import platform
import subprocess
import sys

import pytest
from conftest import REPO_ROOT

BLOCK_BYTES = 96 * 2**20
BLOCK_PAGES = BLOCK_BYTES // 4096

# Runs in a fresh process (the setting is process-wide). A worker thread mallocs, writes and frees a
# 96 MiB block once to warm up and then 3 more times; prints the minor page faults per later cycle.
PROBE = f"""
import ctypes, resource, sys, threading
from vdcore.host_memory import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else None
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
faults = []
def cycles():
    for k in range(4):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        block = libc.malloc({BLOCK_BYTES})
        ctypes.memset(block, 1, {BLOCK_BYTES})
        libc.free(block)
        if k:
            faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
worker = threading.Thread(target=cycles)
worker.start()
worker.join()
print(applied, sum(faults) / len(faults))
"""


def _faults_per_cycle(mode: str) -> tuple[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    return out[-2], float(out[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt settings exist only in glibc")
def test_a_freed_large_block_is_reused_after_keep_freed_memory():
    applied, kept = _faults_per_cycle("keep")
    _, default = _faults_per_cycle("default")
    assert applied == "True"
    assert default > 0.9 * BLOCK_PAGES, default  # glibc's defaults: mmap, munmap, fresh pages every time
    assert kept < 0.01 * BLOCK_PAGES, kept
