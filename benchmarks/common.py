"""What every benchmark records beside its timings: the machine, the versions, peak host memory, the machine's
matmul peak, and the host-memory setting of JAX processes; and writing the JSON report.

No JAX or torch import at module level: benchmarks/run.py imports this without starting either, and the
worker processes set XLA_FLAGS and malloc options before JAX starts.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import resource
import statistics
import time
from typing import Any

from vdcore.files import write_json
from vdcore.host_memory import keep_freed_memory

VERSIONED = ("jax", "jaxlib", "torch", "pyro-ppl")
MATMUL_SIZE = 2048


def add_host_memory_flag(parser: argparse.ArgumentParser) -> None:
    """``--glibc_malloc_defaults``: time JAX without vdcore.host_memory.keep_freed_memory."""
    parser.add_argument(
        "--glibc_malloc_defaults",
        action="store_true",
        help="do not apply vdcore.host_memory.keep_freed_memory in JAX processes (the training CLI applies it)",
    )


def apply_host_memory(glibc_malloc_defaults: bool) -> bool:
    """Keep freed memory unless told not to; call before the first JAX computation (threads pick their malloc
    arena on their first allocation). Returns whether the setting is in force."""
    return False if glibc_malloc_defaults else keep_freed_memory()


def machine_fields() -> dict[str, Any]:
    """What every report records of the machine it ran on."""
    return {
        "machine": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }


def versions() -> dict[str, str]:
    """Installed versions of jax, jaxlib, torch and pyro-ppl ('' where absent), read without importing them."""
    found = {}
    for name in VERSIONED:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = ""
    return found


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, MiB (Linux reports ru_maxrss in KiB, macOS in bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if platform.system() == "Darwin" else 2**10)


def _gflops_summary(seconds: list[float], size: int) -> dict[str, Any]:
    rates = [2 * size**3 / s / 1e9 for s in seconds]
    return {"size": size, "best_gflops": max(rates), "median_gflops": statistics.median(rates), "gflops": rates}


def jax_device() -> str:
    """Where JAX runs, in words: 'cpu: XLA, 2 cores' or 'gpu: NVIDIA H100 80GB HBM3' (platform: device kind)."""
    import jax

    device = jax.devices()[0]
    if device.platform == "cpu":
        return f"cpu: XLA, {os.cpu_count()} cores"
    return f"{device.platform}: {device.device_kind}"


def torch_device() -> str:
    """Where the torch sides run, in words: the CPU, with torch's thread count."""
    import torch

    return f"cpu: torch, {torch.get_num_threads()} threads"


def jax_matmul_peak(size: int = MATMUL_SIZE, reps: int = 7) -> dict[str, Any]:
    """GFLOP/s of a (size x size) float32 matmul in JAX, best and median of `reps` after a warm-up call."""
    import jax

    a = jax.random.normal(jax.random.key(0), (size, size))
    b = jax.random.normal(jax.random.key(1), (size, size))
    f = jax.jit(lambda x, y: x @ y)
    f(a, b).block_until_ready()
    seconds = []
    for _ in range(reps):
        start = time.perf_counter()
        f(a, b).block_until_ready()
        seconds.append(time.perf_counter() - start)
    return {"library": "jax", "device": jax_device(), **_gflops_summary(seconds, size)}


def torch_matmul_peak(size: int = MATMUL_SIZE, reps: int = 7) -> dict[str, Any]:
    """GFLOP/s of a (size x size) float32 matmul in torch on the CPU, best and median of `reps` after a warm-up."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    seconds = []
    for _ in range(reps):
        start = time.perf_counter()
        a @ b
        seconds.append(time.perf_counter() - start)
    return {"library": "torch", "device": torch_device(), **_gflops_summary(seconds, size)}


def write_report(out: str, report: dict[str, Any]) -> dict[str, Any]:
    """Write ``report`` as JSON to ``out`` (nothing for '') and say where; returns the report."""
    if out:
        print(f"wrote {write_json(out, report)}")
    return report
